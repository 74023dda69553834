"""Request and response bodies for the console's request detail: opt-in, redacted, size-capped.

With ``[console] store_bodies = true`` the relay starts a ``Capture`` with the client's JSON body, feeds it
the bytes it sends back (``respond``, or ``tee`` around a stream), and settlement journals ``entry`` with the
usage row. Nothing secret is kept: values under secret-looking keys (``api_key``, ``authorization``, ``token``,
``secret``, ``password``...) become ``[redacted]``, and key-shaped strings anywhere in the text (``sk-...``,
``gw-...``, ``AIza...``, bearer tokens) are replaced too. Each body keeps at most ``body_limit_kb``; the rest is
cut with a marker that says how much was left out.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

REDACTED = "[redacted]"
SECRET_KEY = re.compile(
    r"^(x[-_])?(api[-_]?key|key|authorization|password|passwd|secret|client[-_]secret|credentials?"
    r"|((access|refresh|id|api|auth|bearer|session)[-_]?)?token)$",
    re.I,
)
SECRET_TEXT = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|gw-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*)"
)
INSERT = (
    "INSERT OR REPLACE INTO request_bodies (request_id, request, response, request_bytes, response_bytes,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?)"
)


def redact(value: Any) -> Any:
    """A copy of a JSON value with the string values of secret-looking keys replaced (a tool schema's
    ``"key": {...}`` property stays as it was)."""
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and isinstance(v, str) and v and SECRET_KEY.search(k)
            else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def scrub(text: str) -> str:
    """Key-shaped strings replaced, wherever they appear."""
    return SECRET_TEXT.sub(REDACTED, text)


def cap(data: bytes, limit: int, total: int | None = None) -> str:
    """At most ``limit`` bytes as text (cut on a character boundary), with a marker for what was left out
    (``total``: the whole body's size, when only its start was kept)."""
    total = len(data) if total is None else total
    if total <= limit:
        return data.decode("utf-8", "replace")
    kept = data[:limit].decode("utf-8", "ignore")
    return kept + f"\n…[{total - limit:,} more bytes not kept]"


class Capture:
    """One request's bodies on their way to the store."""

    __slots__ = ("limit", "request", "response", "response_bytes")

    def __init__(self, body: Any, limit: int) -> None:
        self.limit = limit
        if isinstance(body, bytes | bytearray | memoryview):  # the chat lane hands the relay raw bytes
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError:  # not JSON: kept as text (key-shaped strings scrubbed on write)
                self.request = bytes(body)
                self.response = bytearray()
                self.response_bytes = 0
                return
        self.request = orjson.dumps(redact(body), option=orjson.OPT_INDENT_2)
        self.response = bytearray()
        self.response_bytes = 0

    @classmethod
    def begin(cls, console: Any, body: Any) -> Capture | None:
        """A capture if the configuration asks for bodies (``[console] store_bodies``), else None."""
        if not getattr(console, "store_bodies", False):
            return None
        return cls(body, max(1, int(getattr(console, "body_limit_kb", 64))) * 1024)

    def respond(self, chunk: bytes) -> None:
        self.response_bytes += len(chunk)
        room = self.limit - len(self.response)
        if room > 0:
            self.response += chunk[:room]

    async def tee(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass a streamed body through, keeping what the client was sent. Closing this closes ``body`` at once
        (its cleanup settles the request: it must not wait for the garbage collector)."""
        try:
            async for chunk in body:
                self.respond(chunk)
                yield chunk
        finally:
            await body.aclose()  # type: ignore[attr-defined]

    def entry(self, request_id: str) -> tuple[str, tuple[Any, ...]]:
        """The journal entry (statement, parameters) settlement writes with the usage row."""
        response = cap(bytes(self.response), self.limit, self.response_bytes)
        return INSERT, (
            request_id,
            scrub(cap(self.request, self.limit)),
            scrub(_pretty(response)),
            len(self.request),
            self.response_bytes,
            time.time(),
        )


def _pretty(text: str) -> str:
    """A JSON response indented for reading; anything else (a stream's events) as it was sent."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


def get(conn: sqlite3.Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM request_bodies WHERE request_id = ?", (request_id,)).fetchone()
    return dict(row) if row is not None else None
