"""Chat completion bodies both ways, with the finish-reason mapping they share with the stream."""

from __future__ import annotations

import time
from typing import Any

from ...codec import dumps_str
from ...model import ChatRequest, ChatResponse, Part, StopReason, Text, Thinking, ToolCall
from ..arguments import arguments_text, parse_arguments
from .spec import THINKING_FAMILY
from .usage import decode_usage, encode_usage

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def chat_id(ident: str | None, fallback: str = "") -> str:
    ident = ident or fallback
    return ident if ident.startswith("chatcmpl-") else f"chatcmpl-{ident}"


def finish_reason(stop: StopReason | None, saw_tool_call: bool) -> str:
    reason = FINISH_REASONS.get(stop or "end_turn", "stop")
    if reason == "tool_calls" and not saw_tool_call:
        return "stop"  # never announce tool calls that were not sent
    return reason


def stop_reason(finish: str | None, saw_tool_call: bool, refusal: bool = False) -> StopReason:
    """An upstream ``finish_reason`` as a stop reason, checked against what actually arrived."""
    if finish == "length":
        return "max_tokens"
    if finish == "content_filter" or refusal:
        return "refusal"
    return "tool_use" if saw_tool_call else "end_turn"


def _encode_tool_call(p: ToolCall) -> dict[str, Any]:
    if p.custom:
        value = p.arguments.get("input")
        return {
            "id": p.id,
            "type": "custom",
            "custom": {"name": p.name, "input": value if isinstance(value, str) else ""},
        }
    return {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": arguments_text(p)}}


def wants_reasoning(req: ChatRequest | None) -> bool:
    return req is None or req.thinking is None or req.thinking.include


def encode_response(resp: ChatResponse, req: ChatRequest | None = None) -> dict[str, Any]:
    text = "".join(p.text for p in resp.content if isinstance(p, Text))
    calls = [_encode_tool_call(p) for p in resp.content if isinstance(p, ToolCall)]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    reasoning = "".join(p.text for p in resp.content if isinstance(p, Thinking))
    if reasoning and wants_reasoning(req):
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return {
        "id": chat_id(resp.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.model or (req.model if req else ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.stop_reason, bool(calls)),
            }
        ],
        "usage": encode_usage(resp.usage),
    }


def decode_response(body: dict[str, Any]) -> ChatResponse:
    """A ``chat.completion`` body as an internal response. All choices are merged into one."""
    thinking: list[Part] = []
    content: list[Part] = []
    calls: list[Part] = []
    finish = None
    refusal = False
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        msg = choice.get("message") or {}
        reasoning = reasoning_text(msg)
        if reasoning:
            thinking.append(Thinking(text=reasoning, family=THINKING_FAMILY))
        if isinstance(msg.get("content"), str) and msg["content"]:
            content.append(Text(msg["content"]))
        if isinstance(msg.get("refusal"), str) and msg["refusal"]:
            content.append(Text(msg["refusal"]))
            refusal = True
        for tc in msg.get("tool_calls") or []:
            if isinstance(tc, dict):
                calls.append(_response_tool_call(tc))
        finish = finish if finish == "tool_calls" else choice.get("finish_reason") or finish
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=thinking + content + calls,
        stop_reason=stop_reason(finish, bool(calls), refusal),
        usage=decode_usage(body.get("usage")),
    )


def _response_tool_call(tc: dict[str, Any]) -> ToolCall:
    if tc.get("type") == "custom":
        spec = tc.get("custom") or {}
        text = spec.get("input") if isinstance(spec.get("input"), str) else ""
        return ToolCall(
            id=tc.get("id") or "",
            name=spec.get("name") or "",
            arguments={"input": text},
            raw_arguments=text,
            custom=True,
        )
    fn = tc.get("function") or {}
    raw = fn.get("arguments")
    if isinstance(raw, dict):
        raw = dumps_str(raw)
    raw = raw if isinstance(raw, str) else None
    return ToolCall(
        id=tc.get("id") or "", name=fn.get("name") or "", arguments=parse_arguments(raw), raw_arguments=raw
    )


def reasoning_text(obj: dict[str, Any]) -> str:
    """Reasoning text of a message or delta: ``reasoning_content`` (DeepSeek, vLLM), ``reasoning``
    (OpenRouter), or the text/summary items of OpenRouter's ``reasoning_details``."""
    for key in ("reasoning_content", "reasoning"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    texts = []
    for item in obj.get("reasoning_details") or []:
        if isinstance(item, dict):
            value = item.get("text") if item.get("type") == "reasoning.text" else item.get("summary")
            if isinstance(value, str):
                texts.append(value)
    return "".join(texts)
