"""Message bodies both ways: the gateway's answer to a client, an upstream's answer as internal."""

from __future__ import annotations

from typing import Any

from ...model import ChatRequest, ChatResponse, Opaque, Part, Text, Thinking, ToolCall
from ..base import carry
from .blocks import encode_part
from .spec import NAME
from .usage import decode_usage, encode_usage


def encode_response(resp: ChatResponse, req: ChatRequest | None = None) -> dict[str, Any]:
    content = []
    for p in resp.content:
        if isinstance(p, Thinking):
            if p.family not in (None, NAME):  # foreign reasoning: a carried signature Anthropic never sees
                content.append(
                    {
                        "type": "thinking",
                        "thinking": p.text,
                        "signature": carry(p.family, p.signature, p.redacted) or "",
                    }
                )
            elif p.redacted is not None:
                content.append({"type": "redacted_thinking", "data": p.redacted})
            else:
                content.append({"type": "thinking", "thinking": p.text, "signature": p.signature or ""})
            continue
        block = encode_part(p)
        if block is None and isinstance(p, Text):
            block = {"type": "text", "text": p.text}
        if block is not None:
            content.append(block)
    return {
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": resp.stop_reason,
        "stop_sequence": resp.stop_sequence,
        "usage": encode_usage(resp.usage),
    }


def decode_response(body: dict[str, Any]) -> ChatResponse:
    """An Anthropic message JSON as an internal response (the Anthropic provider uses this)."""
    content: list[Part] = []
    for b in body.get("content") or []:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            content.append(Text(b.get("text") or ""))
        elif kind == "tool_use":
            args = b.get("input")
            content.append(ToolCall(id=b.get("id") or "", name=b.get("name") or "", arguments=args or {}))
        elif kind == "thinking":
            content.append(Thinking(text=b.get("thinking") or "", signature=b.get("signature"), family=NAME))
        elif kind == "redacted_thinking":
            content.append(Thinking(redacted=b.get("data"), family=NAME))
        else:
            content.append(Opaque(NAME, b))
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=content,
        stop_reason=body.get("stop_reason") or "end_turn",
        stop_sequence=body.get("stop_sequence"),
        usage=decode_usage(body.get("usage")),
    )
