"""Tool-call arguments and shortened names, as the OpenAI Chat, Responses and Gemini wires share them.

A call's arguments travel as JSON text that models sometimes cut short, encode twice or fill with
something that is not an object; internally they are always an object. Upstreams also limit tool
names and call ids, so over-long ones are cut and given a hash suffix that keeps them distinct.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..codec import dumps_str, loads
from ..model import ToolCall

INVALID = object()  # what ``try_json`` returns for text that is not JSON


def try_json(text: str) -> Any:
    """The parsed value, or ``INVALID``."""
    try:
        return loads(text)
    except ValueError:
        return INVALID


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object the text holds, or None (not JSON, or JSON but not an object)."""
    value = try_json(text)
    return value if isinstance(value, dict) else None


def arguments_object(text: str) -> dict[str, Any]:
    """Strict reading of an ``arguments`` string: {} when blank, the object, else ``{"raw": text}``."""
    if not text.strip():
        return {}
    value = json_object(text)
    return value if value is not None else {"raw": text}


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """A function-call ``arguments`` string as an object: parsed, repaired, or wrapped as {"raw": ...}."""
    if raw is None or not raw.strip():
        return {}
    value = try_json(raw)
    if value is INVALID:
        value = try_json(repair_json(raw))
    if isinstance(value, str):  # double-encoded: "{\"a\":1}"
        inner = try_json(value)
        if isinstance(inner, dict):
            return inner
    return value if isinstance(value, dict) else {"raw": raw}


def repair_json(text: str) -> str:
    """Best-effort fix of truncated JSON: close strings and brackets, drop trailing commas."""
    out: list[str] = []
    closers: list[str] = []
    in_string = escaped = False
    for ch in text.strip():
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            _drop_trailing_comma(out)
            if closers:
                closers.pop()
        out.append(ch)
    if in_string:
        if escaped:
            out.pop()
        out.append('"')
    _drop_trailing_comma(out)
    if out and out[-1] == ":":
        out.append("null")
    out.extend(reversed(closers))
    return "".join(out)


def _drop_trailing_comma(out: list[str]) -> None:
    i = len(out) - 1
    while i >= 0 and out[i].isspace():
        i -= 1
    if i >= 0 and out[i] == ",":
        del out[i:]


def arguments_text(call: ToolCall) -> str:
    """The ``arguments`` string for a call: the original text when it is valid JSON (or could not
    be repaired), else the repaired object."""
    raw = call.raw_arguments
    if raw and (try_json(raw) is not INVALID or call.arguments == {"raw": raw}):
        return raw
    return dumps_str(call.arguments)


def shorten(
    text: str, limit: int, *, key: str | None = None, digest: Callable[..., Any] = hashlib.sha256
) -> str:
    """``text`` cut to ``limit`` characters, ending in ``_`` and 8 hex digits of the hash of ``key``
    (``text`` itself unless given), so that different long values stay different."""
    suffix = digest((text if key is None else key).encode()).hexdigest()[:8]
    return f"{text[: limit - 9]}_{suffix}"
