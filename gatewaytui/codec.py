"""Wire codecs shared by protocols and providers: JSON and Server-Sent Events framing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from .model.errors import GatewayError


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def loads_request(data: bytes, *, max_depth: int = 64) -> Any:
    """Parse a client body strictly: valid UTF-8 JSON, no NaN, bounded nesting, no repeated keys, an object."""
    if not data:
        raise GatewayError("invalid_request", "request body is empty; expected a JSON object")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in str(exc):  # orjson reads bytes as UTF-8 and says so in Python's terms ("str is not...")
            raise GatewayError("invalid_request", "request body is not valid UTF-8; JSON must be") from None
        raise GatewayError("invalid_request", f"request body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise GatewayError("invalid_request", "request body must be a JSON object")
    keys, colons = _check_depth(obj, max_depth)
    # Each object member has exactly one ':' outside strings, and orjson keeps one member per name: more
    # separators than members (the strings' own colons aside) means a repeated key. A colon spelled \u003a
    # is in the strings but not in the text; only then is the exact (slower) check needed.
    if b"\\u003a" in data or b"\\u003A" in data:
        repeated = _repeats_a_key(data)
    else:
        repeated = data.count(b":") - colons > keys
    if repeated:
        raise GatewayError("invalid_request", "request JSON repeats a key within one object")
    return obj


def _check_depth(obj: Any, limit: int) -> tuple[int, int]:
    """Walk level by level; raise past ``limit``. Returns (object members, colons inside strings)."""
    keys = colons = 0
    level: list[Any] = [obj]
    depth = 1
    while level:
        if depth > limit:
            raise GatewayError("invalid_request", f"request JSON is nested deeper than {limit} levels")
        deeper: list[Any] = []
        for node in level:
            if type(node) is dict:
                keys += len(node)
                for name in node:
                    if ":" in name:
                        colons += name.count(":")
                values: Any = node.values()
            else:
                values = node
            for v in values:
                t = type(v)
                if t is str:
                    if ":" in v:
                        colons += v.count(":")
                elif t is dict or t is list:
                    deeper.append(v)
        level = deeper
        depth += 1
    return keys, colons


def _repeats_a_key(data: bytes) -> bool:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            raise _Repeated
        return out

    try:
        json.loads(data, object_pairs_hook=pairs)
    except _Repeated:
        return True
    return False


class _Repeated(Exception):
    pass


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` is JSON-encoded unless already bytes."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


MAX_SSE_FRAME = 16 << 20  # bytes: the longest SSE line, and the most data one frame may carry


class FrameTooLarge(ValueError):
    """An upstream SSE line or frame is longer than the decoder's limit."""


class SSEDecoder:
    """Incremental SSE parser: feed bytes, get complete ``(event, data)`` frames.

    Handles CRLF, multi-line data, comments (ignored) and frames split across chunks. The bytes of an
    unterminated line are held as a list and joined once its newline arrives (linear in the input), and
    at most ``max_frame`` of them: a longer line, or a frame whose data lines add up to more, raises
    ``FrameTooLarge`` (while iterating ``feed``).
    """

    __slots__ = ("_parts", "_held", "_event", "_data", "_size", "max_frame")

    def __init__(self, max_frame: int | None = None) -> None:
        self._parts: list[bytes] = []  # the unterminated line so far
        self._held = 0
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0  # bytes in _data
        self.max_frame = max_frame or MAX_SSE_FRAME

    def feed(self, chunk: bytes) -> Iterator[tuple[str | None, bytes]]:
        if self._parts:
            if b"\n" not in chunk:
                self._hold(chunk)
                return
            self._parts.append(chunk)
            buf = b"".join(self._parts)
            self._parts, self._held = [], 0
        else:
            buf = chunk
        start = 0
        if self._event is None and not self._data and b"\r" not in buf and len(buf) <= self.max_frame:
            # whole frames of the two usual shapes, "event: <name>\ndata: <data>" and "data: <data>", a split
            # each (what the line loop below would make of them; it takes the first other frame on)
            end = buf.rfind(b"\n\n")
            for whole in buf[:end].split(b"\n\n") if end > 0 else ():
                if whole.startswith(b"data: "):
                    if b"\n" in whole:
                        break
                    yield None, whole[6:]
                elif whole.startswith(b"event: "):
                    event, _, data = whole[7:].partition(b"\n")
                    if b"\n" in data or not data.startswith(b"data: "):
                        break
                    yield event.decode("utf-8", "replace"), data[6:]
                else:
                    break
                start += len(whole) + 2
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if len(line) > self.max_frame:
                self._too_large("line")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data or self._event is not None:
                    frame = (self._event, b"\n".join(self._data))
                    self._event, self._data, self._size = None, [], 0
                    yield frame
                continue
            if line[0:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._size += len(value) + 1
                if self._size > self.max_frame:
                    self._too_large("event")
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        if start < len(buf):
            self._hold(buf[start:] if start else buf)

    def _hold(self, part: bytes) -> None:
        self._held += len(part)
        if self._held > self.max_frame:
            self._too_large("line")
        self._parts.append(part)

    def _too_large(self, what: str) -> None:
        self._parts, self._held, self._event, self._data, self._size = [], 0, None, [], 0
        raise FrameTooLarge(f"upstream sent an SSE {what} longer than {self.max_frame} bytes")

    def flush(self) -> Iterator[tuple[str | None, bytes]]:
        """Emit a trailing frame that was not followed by a blank line (a cut stream)."""
        if self._parts:
            yield from self.feed(b"\n")
        if self._data:
            frame = (self._event, b"\n".join(self._data))
            self._event, self._data, self._size = None, [], 0
            yield frame
