"""The Chat error envelope ``{"error": {message, type, param, code}}`` both ways."""

from __future__ import annotations

from typing import Any

from ...model import GatewayError, StreamError, kind_for_status
from ...model.errors import STATUS_BY_KIND

# kind -> (error.type, error.code); err.code overrides the code when set (an unknown model's 404 carries
# ``model_not_found`` that way; any other missing thing is plain ``not_found``).
ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "billing": ("insufficient_quota", "insufficient_quota"),
    "permission": ("invalid_request_error", "permission_denied"),
    "not_found": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "unavailable": ("server_error", "service_unavailable"),
    "timeout": ("server_error", "timeout"),
    "overloaded": ("server_error", "server_overloaded"),
}
_KIND_BY_CODE = {
    "invalid_api_key": "authentication",
    "insufficient_quota": "billing",
    "rate_limit_exceeded": "rate_limit",
    "requests": "rate_limit",
    "tokens": "rate_limit",
    "model_not_found": "not_found",
    "not_found": "not_found",
    "permission_denied": "permission",
    "server_error": "api_error",
    "service_unavailable": "unavailable",
    "server_overloaded": "overloaded",
    "invalid_request_error": "invalid_request",
    "context_length_exceeded": "invalid_request",
}


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    etype, code = ERROR_TYPES.get(err.kind, ("server_error", None))
    return {"error": {"message": err.message, "type": etype, "param": err.param, "code": err.code or code}}


def decode_error(obj: Any) -> StreamError:
    """An in-band ``{"error": {...}}`` (OpenAI, OpenRouter, vLLM shapes) as a stream error."""
    if not isinstance(obj, dict):
        return StreamError("api_error", str(obj) if obj else "upstream stream error", 502)
    message = obj.get("message")
    if not isinstance(message, str) or not message:
        message = "upstream stream error"
    code, etype = obj.get("code"), obj.get("type")
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        kind = kind_for_status(code)
    else:
        kind = _KIND_BY_CODE.get(str(code), _KIND_BY_CODE.get(str(etype), "api_error"))
    return StreamError(kind, message, STATUS_BY_KIND.get(kind, 500))
