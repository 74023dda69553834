"""The client protocol table, the one path -> protocol table, and how each protocol's errors become HTTP
responses.

Every client path the gateway answers is named here once: the chat lane (``lane.py``) serves the chat
paths, and the Quart app (``app.py``) uses ``protocol_for_path`` to answer any other path's errors in the
caller's protocol shape.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from quart import Response

from ..codec import dumps
from ..model import GatewayError
from ..protocols import anthropic, gemini, openai_chat, openai_responses
from ..protocols.base import ProtocolModule

PROTOCOLS: dict[str, ProtocolModule] = {
    "anthropic": anthropic,
    "openai_chat": openai_chat,
    "openai_responses": openai_responses,
    "gemini": gemini,
}

TOOL_ROUTES = ("claudecode", "cline", "cursor", "roocode")  # tool-tuned Anthropic routes: /{route}/...
# A chat path, at the root; the tool routes take the Anthropic ones under their prefix. SDKs append their
# path to the base URL a user gives, with or without /v1 (Cline: base .../cline -> /cline/messages), so
# both spellings are served.
CHAT_PATHS: dict[str, str] = {
    "/v1/messages": "anthropic",
    "/messages": "anthropic",
    "/v1/chat/completions": "openai_chat",
    "/chat/completions": "openai_chat",
    "/v1/responses": "openai_responses",
    "/responses": "openai_responses",
}
GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")
GEMINI_VERBS = ("generateContent", "streamGenerateContent")  # the lane's chat routes
GEMINI_METHODS = (*GEMINI_VERBS, "countTokens")  # every method a Gemini model path may name (all POST)


@dataclass(slots=True, frozen=True)
class Route:
    protocol: str
    route: str = "v1"  # "v1" or a tool route (claudecode, cline, cursor, roocode)
    model: str | None = None  # Gemini names the model and the verb in the path
    stream: bool | None = None


def split_tool(path: str) -> tuple[str, str]:
    """(tool route, the rest of the path) for a path under a tool route, else ("v1", path)."""
    head, sep, rest = path[1:].partition("/")
    if sep and head in TOOL_ROUTES:
        return head, "/" + rest
    return "v1", path


def chat_route(path: str) -> Route | None:
    """The chat route a path names, or None (not a chat path)."""
    protocol = CHAT_PATHS.get(path)
    if protocol is not None:
        return Route(protocol)
    tool, rest = split_tool(path)
    if tool != "v1":
        return Route("anthropic", tool) if CHAT_PATHS.get(rest) == "anthropic" else None
    for prefix in GEMINI_PREFIXES:
        if path.startswith(prefix):
            model, _, verb = path[len(prefix) :].partition(":")
            if verb in GEMINI_VERBS and model:
                return Route("gemini", "v1", model, verb == "streamGenerateContent")
    return None


def chat_paths() -> list[str]:
    """Every chat path, in the OpenAPI document's spelling."""
    paths = [*CHAT_PATHS]
    paths += [f"/{{route}}{p}" for p, protocol in CHAT_PATHS.items() if protocol == "anthropic"]
    paths += [f"{prefix}{{model}}:{verb}" for prefix in GEMINI_PREFIXES for verb in GEMINI_VERBS]
    return paths


def protocol_for_path(path: str) -> str:
    """The protocol whose error shape a path's caller expects (chat, counting or any other path; under a
    tool route or a mistyped one)."""
    route = chat_route(path)
    if route is not None:
        return route.protocol
    if path.startswith("/v1beta/") or (path.startswith(GEMINI_PREFIXES[1]) and ":" in path):
        return "gemini"
    under_prefix = "/" + path[1:].partition("/")[2]
    for candidate in (path, under_prefix):
        for chat_path, protocol in CHAT_PATHS.items():
            if candidate == chat_path or candidate.startswith(chat_path + "/"):
                return protocol
    return "openai_chat"


class RequestIds:
    """The gateway's own request ids: ``req_`` and 24 hex digits, never repeated within a process.

    48 bits drawn from ``os.urandom`` name the process (drawn again in a forked child), and the other 48
    count its requests through a bijection of the 48-bit counter (an odd multiplier and an offset, both
    random), so ids do not show how many requests came before. Nothing here uses the ``random`` module:
    its global state is shared with whatever else seeds it in the process (Hypothesis seeds it per example,
    and ids drawn from it repeated), and a counter cannot repeat where random draws can.
    """

    BITS = 48
    MASK = (1 << BITS) - 1

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        draw = int.from_bytes(os.urandom(18), "big")
        self._prefix = draw & self.MASK
        self._multiplier = (draw >> self.BITS) & self.MASK | 1
        self._offset = draw >> (2 * self.BITS)
        self._count = itertools.count()

    def __call__(self) -> str:
        n = (next(self._count) * self._multiplier + self._offset) & self.MASK
        return f"req_{self._prefix:012x}{n:012x}"


new_request_id = RequestIds()
os.register_at_fork(after_in_child=new_request_id.reseed)


@dataclass(slots=True)
class Reply:
    """An answer, independent of the framework: the chat lane sends it over ASGI, Quart routes convert it."""

    status: int
    body: bytes | AsyncIterator[bytes]
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    ready: bool = False  # a stream whose first chunk is ready: headers and first chunk go out together

    def quart(self) -> Response:
        response = Response(
            self.body, status=self.status, headers=self.headers, content_type=self.content_type
        )
        if not isinstance(self.body, bytes):
            response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut long streams
        return response


def error_reply(
    protocol: str, err: GatewayError, request_id: str, extra_headers: dict[str, str] | None = None
) -> Reply:
    mod = PROTOCOLS.get(protocol, PROTOCOLS["anthropic"])
    body: Any = mod.encode_error(err, request_id)
    headers = {"request-id": request_id, "x-request-id": request_id, **err.headers(), **(extra_headers or {})}
    status = err.status
    if protocol == "gemini" and isinstance(body.get("error"), dict):
        status = int(body["error"].get("code") or status)  # Gemini has no 529: its envelope says 503
    if err.kind in ("api_error", "unavailable") and err.status >= 500 and "retry-after" not in headers:
        headers["x-should-retry"] = "true" if err.kind == "unavailable" else "false"
    return Reply(status, dumps(body), headers=headers)


def error_response(
    protocol: str, err: GatewayError, request_id: str, extra_headers: dict[str, str] | None = None
) -> Response:
    return error_reply(protocol, err, request_id, extra_headers).quart()
