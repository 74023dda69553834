"""Who is calling: tenant keys (any protocol's header) and the operator's admin token."""

from __future__ import annotations

import hmac
from typing import Any

from quart import request

from ..model import GatewayError
from ..runtime import Runtime


def presented_key(headers: Any, query: Any = None) -> str | None:
    """The key as any protocol sends it: x-api-key, Authorization: Bearer, x-goog-api-key, api-key, ?key=."""
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        value = headers.get(name)
        if value:
            return value.strip()
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if query is not None:
        value = query.get("key")
        if value:
            return value.strip()
    return None


def require_route(key: dict[str, Any], route: str) -> None:
    """Subscription keys are for the tool routes only (their tiers' quotas are counted there)."""
    if route == "v1" and key["kind"] == "subscription":
        raise GatewayError(
            "permission",
            "subscription keys may only call the tool routes (/claudecode, /cline, /cursor, /roocode); "
            "use a pay-per-token key for this route",
        )


def tenant_key(rt: Runtime, *, allow_query: bool = False) -> dict[str, Any]:
    """Authenticate the current request's tenant key (raises GatewayError 401)."""
    return rt.keyring.authenticate(presented_key(request.headers, request.args if allow_query else None))


def require_admin(rt: Runtime) -> None:
    """The admin token, compared in constant time. No token configured: admin API disabled (fail closed)."""
    expected = rt.cfg.server.admin_token
    if not expected:
        raise GatewayError(
            "permission", f"the admin API is disabled: set {rt.cfg.server.admin_token_env} to enable it"
        )
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else (request.headers.get("x-admin-token") or "")
    if not given or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        raise GatewayError("authentication", "admin token required (Authorization: Bearer <token>)")
