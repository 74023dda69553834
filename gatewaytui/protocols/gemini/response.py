"""GenerateContentResponse bodies both ways, and the finish reasons they share with the stream."""

from __future__ import annotations

import uuid
from typing import Any

from ...model import (
    ChatRequest,
    ChatResponse,
    GatewayError,
    Opaque,
    Part,
    StopReason,
    Text,
    Thinking,
    ToolCall,
)
from .contents import NON_PAYLOAD_KEYS, encode_model_parts
from .errors import KIND_BY_STATUS
from .spec import MINTED_ID_PREFIX, NAME
from .usage import decode_usage, encode_usage

FINISH_BY_STOP = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "pause_turn": "STOP",
    "max_tokens": "MAX_TOKENS",
    "refusal": "SAFETY",
}
REFUSAL_FINISH = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
}


def stop_reason(finish: str | None, saw_tool_call: bool) -> StopReason:
    """Gemini's finishReason as an internal stop reason; tool use is derived from what was emitted."""
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in REFUSAL_FINISH:
        return "refusal"
    return "tool_use" if saw_tool_call else "end_turn"


def show_thoughts(req: ChatRequest | None) -> bool:
    return req is None or req.thinking is None or req.thinking.include


def encode_response(resp: ChatResponse, req: ChatRequest | None = None) -> dict[str, Any]:
    parts = encode_model_parts(resp.content, for_client=True, show_thoughts=show_thoughts(req))
    candidate = {
        "content": {"role": "model", "parts": parts},
        "finishReason": FINISH_BY_STOP.get(resp.stop_reason, "STOP"),
        "index": 0,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": encode_usage(resp.usage),
        "modelVersion": resp.model,
        "responseId": resp.id,
    }


def decode_response(body: Any, *, names: dict[str, str] | None = None) -> ChatResponse:
    """A GenerateContentResponse (or a list of streamed ones, merged) as an internal response."""
    chunks = body if isinstance(body, list) else [body]
    resp = ChatResponse(id="", model="")
    finish: str | None = None
    blocked = False
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), dict):
            err = chunk["error"]
            kind = KIND_BY_STATUS.get(str(err.get("status")), "api_error")
            raise GatewayError(
                kind, str(err.get("message") or "upstream error"), status=502 if kind == "api_error" else None
            )
        resp.id = resp.id or str(chunk.get("responseId") or "")
        resp.model = resp.model or str(chunk.get("modelVersion") or "")
        if isinstance(chunk.get("usageMetadata"), dict):
            resp.usage = decode_usage(chunk["usageMetadata"])
        cand, parts = first_candidate(chunk)
        blocked = blocked or is_blocked(chunk)
        for part in parts:
            _append_response_part(resp.content, part, names or {})
        finish = cand.get("finishReason") or finish
    resp.id = resp.id or mint_response_id()
    saw_tool = any(isinstance(p, ToolCall) for p in resp.content)
    resp.stop_reason = "refusal" if blocked else stop_reason(finish, saw_tool)
    return resp


def first_candidate(chunk: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first candidate of a response and its parts, tolerating missing or malformed pieces."""
    candidates = chunk.get("candidates")
    cand = (
        candidates[0]
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict)
        else {}
    )
    content = cand.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return cand, [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def is_blocked(chunk: dict[str, Any]) -> bool:
    """The prompt was blocked: no candidates, a promptFeedback.blockReason."""
    feedback = chunk.get("promptFeedback")
    return not chunk.get("candidates") and isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def mint_response_id() -> str:
    return "resp_" + uuid.uuid4().hex[:24]


def function_call(call: dict[str, Any], names: dict[str, str], signature: str | None = None) -> ToolCall:
    """An upstream functionCall as a tool call: the client's tool name restored, an id minted if none."""
    name = str(call.get("name") or "")
    args = call.get("args")
    return ToolCall(
        id=str(call.get("id") or mint_call_id()),
        name=names.get(name, name),
        arguments=args if isinstance(args, dict) else {},
        signature=signature,
    )


def mint_call_id() -> str:
    return MINTED_ID_PREFIX + uuid.uuid4().hex[:20]


def _append_response_part(content: list[Part], part: dict[str, Any], names: dict[str, str]) -> None:
    """Add one upstream part, merging text deltas into the part before (as a stream would)."""
    sig = part.get("thoughtSignature")
    last = content[-1] if content else None
    text = part.get("text")
    if isinstance(text, str):
        if part.get("thought"):
            if isinstance(last, Thinking) and last.family == NAME and not last.signature and last.text:
                last.text += text
                last.signature = sig
            else:
                content.append(Thinking(text=text, signature=sig, family=NAME))
            return
        if sig:
            content.append(Thinking(signature=sig, family=NAME))
        elif isinstance(last, Text) and text:
            last.text += text
            return
        if text:
            content.append(Text(text))
        return
    call = part.get("functionCall")
    if isinstance(call, dict):
        content.append(function_call(call, names, sig))
    elif sig and not set(part) - NON_PAYLOAD_KEYS:
        content.append(Thinking(signature=sig, family=NAME))
    else:
        content.append(Opaque(NAME, part))
