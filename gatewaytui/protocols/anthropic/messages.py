"""Messages both ways: a client's ``messages`` into internal turns, internal turns into an upstream's
``messages`` (tool results first in their user turn, consecutive turns of one role merged)."""

from __future__ import annotations

from typing import Any

from ...model import Message, Text
from ..base import expect_type, require
from .blocks import decode_block, encode_part


def decode_message(m: Any, path: str) -> Message:
    expect_type(m, dict, path)
    role = m.get("role")
    require(role in ("user", "assistant"), f"{path}.role: must be 'user' or 'assistant'", f"{path}.role")
    content = m.get("content")
    if isinstance(content, str):
        return Message(role, [Text(content)])
    expect_type(content, list, f"{path}.content")
    return Message(role, [decode_block(b, f"{path}.content.{j}") for j, b in enumerate(content)])


def encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
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
