"""The client protocol table, and how each one's errors become HTTP responses."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from quart import Response

from ..codec import dumps
from ..model import GatewayError
from ..protocols import anthropic

PROTOCOLS: dict[str, ModuleType] = {"anthropic": anthropic}


def _optional(name: str) -> None:
    import importlib

    try:
        PROTOCOLS[name] = importlib.import_module(f"gatewaytui.protocols.{name}")
    except ImportError:  # pragma: no cover - every protocol ships; this guards partial checkouts
        pass


for _name in ("openai_chat", "openai_responses", "gemini"):
    _optional(_name)


def new_request_id() -> str:
    return f"req_{random.getrandbits(96):024x}"  # 96 random bits without a getrandom() syscall per request


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
    mod = PROTOCOLS.get(protocol, anthropic)
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
