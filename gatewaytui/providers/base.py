"""The uniform shape of an upstream provider module, and what they share.

Every module in ``gatewaytui.providers`` offers the same names and is listed in ``registry``:

``NAME``                       registry name ("anthropic", "openai", "gemini", ...)
``WIRE``                       the client protocol whose bodies it accepts untouched (passthrough)
``DEFAULT_BASE_URL``
``build_request(req, upstream_model, creds) -> UpstreamRequest``
``parse_response(body: bytes, req) -> ChatResponse``
``StreamParser(req)``          ``.feed(chunk: bytes) -> list[Event]``, ``.finish() -> list[Event]``;
                               emits the internal grammar (see ``model.events``) whatever the upstream did,
                               and a ``StreamError`` for an in-band upstream error
``classify_error(status, headers, body) -> UpstreamError``
``read_quota(headers) -> dict | None``   rate-limit / quota facts the upstream reported, if any
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..codec import loads
from ..model import ChatRequest, ChatResponse, Event, GatewayError, kind_for_status


@dataclass(slots=True)
class Credentials:
    """What a provider needs to reach one upstream account."""

    base_url: str
    api_key: str | None = None
    oauth_token: str | None = None  # OAuth access token (sent as a bearer token)
    headers: dict[str, str] = field(default_factory=dict)  # extra headers configured for the account


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool = False
    passthrough: bool = False


# Why an upstream attempt failed; drives cooldowns and failover (see README "Account health").
#   about the account: rate_limit, quota, overloaded, server, connection (nothing answered), auth (the
#     provider's own invalid-credential code), model_not_found (the model is missing on this account)
#   maybe the request's, maybe the account's: forbidden (a 401/403 without an invalid-credential code),
#     timeout (no answer within the deadline). They go back to the client and touch the account only when
#     several different tenants meet them in a row (``pool.Pool.failure``).
#   the request's own: bad_request (400s, a 404 for something the body names, 413), too_large (an answer
#     past the configured size)
CAUSES = (
    "rate_limit",
    "quota",
    "overloaded",
    "server",
    "auth",
    "model_not_found",
    "forbidden",
    "bad_request",
    "too_large",
    "connection",
    "timeout",
)
RETRYABLE = frozenset(
    ("rate_limit", "quota", "overloaded", "server", "auth", "model_not_found", "connection")
)


@dataclass(slots=True)
class UpstreamError(Exception):
    status: int
    cause: str
    message: str
    retry_after: float | None = None
    body: Any = None  # the upstream's parsed error body, if JSON

    @property
    def retryable(self) -> bool:
        """May another account succeed where this one failed (before any byte reached the client)?

        Only for failures about the account: one the request caused (or may have caused) would only be
        repeated on every account."""
        return self.cause in RETRYABLE

    def to_gateway_error(self) -> GatewayError:
        """The error as the client should see it when no failover is possible."""
        if self.cause == "timeout":
            return GatewayError("timeout", self.message, status=504, retry_after=self.retry_after)
        if self.cause == "forbidden":  # the upstream refused this request; the client's own key is fine
            return GatewayError("permission", self.message, status=403, retry_after=self.retry_after)
        if self.cause in ("connection", "server", "too_large") and self.status < 500:
            status = 502
        else:
            status = self.status
        kind = kind_for_status(status) if status != 502 else "api_error"
        if self.cause == "auth":  # the account's credentials failed; not the client's fault
            status, kind = 502, "api_error"
        code = "model_not_found" if self.cause == "model_not_found" else None
        return GatewayError(kind, self.message, status=status, retry_after=self.retry_after, code=code)


class StreamParserLike(Protocol):
    def feed(self, chunk: bytes) -> list[Event]: ...
    def finish(self) -> list[Event]: ...


class ProviderModule(Protocol):
    """What every provider module offers (see the module docstring); ``registry.PROVIDERS`` holds them."""

    NAME: str
    WIRE: str

    @property
    def DEFAULT_BASE_URL(self) -> str | None: ...  # noqa: N802 - None: the account must name one

    def build_request(self, req: ChatRequest, upstream_model: str, creds: Credentials) -> UpstreamRequest: ...

    def parse_response(self, body: bytes, req: ChatRequest) -> ChatResponse: ...

    def StreamParser(self, req: ChatRequest | None = None) -> StreamParserLike: ...  # noqa: N802

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError: ...

    def read_quota(self, headers: Mapping[str, str]) -> dict[str, Any] | None: ...


def parse_retry_after(headers: Mapping[str, str], cap: float = 3600.0) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return min(cap, max(0.0, float(ms) / 1000))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return min(cap, max(0.0, parsed.timestamp() - time.time()))


def parse_json_body(body: bytes) -> Any:
    try:
        return loads(body) if body else None
    except Exception:
        return None


def error_message(parsed: Any, body: bytes, status: int) -> str:
    """Best human message from common error envelopes (Anthropic, OpenAI, Gemini)."""
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        if isinstance(parsed.get("message"), str):
            return parsed["message"]
    text = body[:300].decode("utf-8", "replace").strip()
    return text or f"upstream returned HTTP {status}"


def classify_status(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The common status-code classification providers start from."""
    parsed = parse_json_body(body)
    message = error_message(parsed, body, status)
    retry_after = parse_retry_after(headers)
    if status == 429:
        cause = "rate_limit"
    elif status == 529 or status == 503:
        cause = "overloaded"
    elif status >= 500 or status == 408:
        cause = "server"
    elif status in (401, 403):
        cause = "forbidden"  # a provider's classify_error names the codes that mean bad credentials
    elif status == 404 and "model" in message.lower():
        cause = "model_not_found"
    else:
        cause = "bad_request"
    return UpstreamError(status=status, cause=cause, message=message, retry_after=retry_after, body=parsed)


def join_url(base_url: str, path: str) -> str:
    """Join without doubling a version segment the operator already put in the base URL."""
    base = base_url.rstrip("/")
    for version in ("/v1", "/v1beta", "/api/v1"):
        if base.endswith(version) and path.startswith(version + "/"):
            return base + path[len(version) :]
    return base + path
