"""Response objects both ways: the complete object typed clients expect, and an upstream's read back."""

from __future__ import annotations

import time
from typing import Any

from ...model import ChatRequest, ChatResponse, GatewayError, Opaque, Part, Text, Thinking, ToolCall, Usage
from ..arguments import arguments_object
from .errors import error_kind
from .items import call_item, carry, uncarry
from .request import encode_text
from .spec import NAME
from .tools import encode_tool, encode_tool_choice
from .usage import decode_usage, encode_usage


def response_id(internal_id: str) -> str:
    if internal_id.startswith("resp_"):
        return internal_id
    for prefix in ("msg_", "chatcmpl-", "req_"):
        if internal_id.startswith(prefix):
            internal_id = internal_id[len(prefix) :]
            break
    return "resp_" + (internal_id or "gateway")


def output_item_id(prefix: str, resp_id: str, index: int) -> str:
    return f"{prefix}_{resp_id[len('resp_') :]}_{index}"


def status_for(stop_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    if stop_reason == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    if stop_reason == "refusal":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _echo(req: ChatRequest) -> dict[str, Any]:
    """Request settings a Response object repeats back."""
    raw = req.raw if req.protocol == NAME and req.raw is not None else None
    custom_names = {t.name for t in req.tools if t.custom}
    if raw is not None:
        tools = raw.get("tools") or []
        tool_choice = raw.get("tool_choice") or "auto"
        instructions = raw.get("instructions")
        text_format = (raw.get("text") or {}).get("format") or {"type": "text"}
        reasoning = raw.get("reasoning") or {}
        summary = reasoning.get("summary")
    else:
        tools = [t for t in (encode_tool(t, req) for t in req.tools) if t is not None]
        tool_choice = encode_tool_choice(req.tool_choice, custom_names) if req.tool_choice else "auto"
        instructions = req.system_text() or None
        text_format = encode_text(req.response_format, None).get("format") or {"type": "text"}
        summary = "auto" if req.thinking and req.thinking.include else None
    metadata = req.extras.get("metadata")
    return {
        "instructions": instructions,
        "max_output_tokens": req.max_tokens,
        "parallel_tool_calls": not (req.tool_choice is not None and req.tool_choice.parallel is False),
        "previous_response_id": None,
        "reasoning": {"effort": req.thinking.effort if req.thinking else None, "summary": summary},
        "store": False,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": {"format": text_format, "verbosity": req.extras.get("verbosity") or "medium"},
        "tool_choice": tool_choice,
        "tools": tools,
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "truncation": req.extras.get("truncation") or "disabled",
        "user": None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


def response_object(
    req: ChatRequest,
    *,
    resp_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    error: dict[str, Any] | None = None,
    incomplete: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete Response object: every field typed clients (openai-python, Codex serde) expect."""
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        **_echo(req),
        "usage": encode_usage(usage) if usage is not None else None,
    }


def message_item(item_id: str, texts: list[str], status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": t, "annotations": [], "logprobs": []} for t in texts]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, t: Thinking) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": t.text}] if t.text else []
    return {"type": "reasoning", "id": item_id, "summary": summary, "encrypted_content": carry(t)}


def encode_response(resp: ChatResponse, req: ChatRequest) -> dict[str, Any]:
    resp_id = response_id(resp.id)
    output: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            output.append(message_item(output_item_id("msg", resp_id, len(output)), list(texts)))
            texts.clear()

    for p in resp.content:
        if isinstance(p, Text):
            texts.append(p.text)
            continue
        flush()
        if isinstance(p, ToolCall):
            output.append(call_item(p, output_item_id("ctc" if p.custom else "fc", resp_id, len(output))))
        elif isinstance(p, Thinking):
            output.append(reasoning_item(output_item_id("rs", resp_id, len(output)), p))
        elif isinstance(p, Opaque) and p.family == NAME and "item" in p.data:
            output.append(p.data["item"])
    flush()
    status, incomplete = status_for(resp.stop_reason)
    return response_object(
        req,
        resp_id=resp_id,
        model=resp.model or req.model,
        created_at=int(time.time()),
        status=status,
        output=output,
        usage=resp.usage,
        incomplete=incomplete,
    )


def decode_response(body: dict[str, Any]) -> ChatResponse:
    """An upstream Response object as an internal response."""
    status = body.get("status")
    if status == "failed":
        err: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        err_kind, status_code = error_kind(err.get("code"))
        raise GatewayError(err_kind, err.get("message") or "upstream response failed", status=status_code)
    content: list[Part] = []
    refused = False
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    content.append(Text(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refused = True
                    content.append(Text(part.get("refusal") or ""))
        elif kind == "function_call":
            arguments = item.get("arguments") or ""
            content.append(
                ToolCall(
                    id=item.get("call_id") or item.get("id") or "",
                    name=item.get("name") or "",
                    arguments=arguments_object(arguments),
                    raw_arguments=arguments or None,
                )
            )
        elif kind == "custom_tool_call":
            content.append(
                ToolCall(
                    id=item.get("call_id") or item.get("id") or "",
                    name=item.get("name") or "",
                    arguments={"input": item.get("input") or ""},
                    custom=True,
                )
            )
        elif kind == "reasoning":
            text = "\n\n".join(s.get("text") or "" for s in item.get("summary") or [] if isinstance(s, dict))
            thinking = uncarry(text, item.get("encrypted_content"))
            if thinking.text or thinking.signature or thinking.redacted is not None:
                content.append(thinking)
        else:
            content.append(Opaque(NAME, {"item": item}))
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=content,
        stop_reason=stop_reason_for(status, body.get("incomplete_details"), content, refused),
        usage=decode_usage(body.get("usage"), body.get("output")),
    )


def stop_reason_for(status: Any, incomplete: Any, content: list[Part], refused: bool = False) -> Any:
    if status == "incomplete":
        reason = (incomplete or {}).get("reason") if isinstance(incomplete, dict) else None
        return "refusal" if reason == "content_filter" else "max_tokens"
    if any(isinstance(p, ToolCall) for p in content):
        return "tool_use"
    return "refusal" if refused else "end_turn"
