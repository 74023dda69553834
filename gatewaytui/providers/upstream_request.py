"""The HTTP request a provider sends upstream: a JSON POST with the account's credentials."""

from __future__ import annotations

from typing import Any

from ..codec import dumps
from ..model import ChatRequest
from .base import Credentials, UpstreamRequest


def bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def json_post(
    url: str,
    body: dict[str, Any],
    req: ChatRequest,
    creds: Credentials,
    *,
    auth: dict[str, str],
    passthrough: bool,
    headers: dict[str, str] | None = None,
    sse: bool = True,
) -> UpstreamRequest:
    """Headers in this order, later ones winning: the JSON content type, the wire's own ``headers``,
    the credentials (``auth``), the account's configured headers; and ``accept: text/event-stream``
    when the answer is streamed as SSE."""
    out = {"content-type": "application/json", **(headers or {}), **auth, **creds.headers}
    if req.stream and sse:
        out["accept"] = "text/event-stream"
    return UpstreamRequest(url=url, headers=out, body=dumps(body), stream=req.stream, passthrough=passthrough)
