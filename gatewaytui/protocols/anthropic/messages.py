"""Messages both ways: a client's ``messages`` into internal turns, internal turns into an upstream's
``messages`` (tool results first in their user turn, consecutive turns of one role merged).

A ``role: system`` message (Claude Code sends one mid-conversation, with the
``mid-conversation-system-*`` beta, for model names it does not know as Claude) becomes a ``system``
turn at its position. Encoding for an Anthropic upstream leaves such turns to ``request.encode_request``,
which folds them into the top-level ``system`` (the form every Anthropic model accepts)."""

from __future__ import annotations

from typing import Any

from ...model import Message, Opaque, Text
from ..base import expect_type, require
from .blocks import decode_block, encode_part
from .spec import NAME

ROLES = ("user", "assistant", "system")


def decode_message(m: Any, path: str) -> Message:
    expect_type(m, dict, path)
    role = m.get("role")
    require(role in ROLES, f"{path}.role: must be 'user', 'assistant' or 'system'", f"{path}.role")
    content = m.get("content")
    if isinstance(content, str):
        return Message(role, [Text(content)])
    expect_type(content, list, f"{path}.content")
    if role == "system":
        return Message(role, [_system_block(b, f"{path}.content.{j}") for j, b in enumerate(content)])
    return Message(role, [decode_block(b, f"{path}.content.{j}") for j, b in enumerate(content)])


def _system_block(b: Any, path: str) -> Text | Opaque:
    """A system turn's block: text, or kept whole for Anthropic (other upstreams take only the text)."""
    block = expect_type(b, dict, path)
    if block.get("type") == "text":
        return Text(expect_type(block.get("text"), str, f"{path}.text"), block.get("cache_control"))
    require(isinstance(block.get("type"), str), f"{path}.type: field required", f"{path}.type")
    return Opaque(NAME, block)


def encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue  # folded into the top-level system by encode_request
        blocks = [b for b in (encode_part(p) for p in m.content) if b is not None]
        if m.role == "user":  # tool results must come first in their user turn
            blocks.sort(key=lambda b: b.get("type") != "tool_result")
        if not blocks:
            continue
        if out and out[-1]["role"] == m.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": m.role, "content": blocks})
    return out
