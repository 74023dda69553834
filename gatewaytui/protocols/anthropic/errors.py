"""The Anthropic error envelope ``{"type": "error", "error": {type, message}}`` and its error types."""

from __future__ import annotations

from typing import Any

from ...codec import dumps
from ...model import GatewayError

ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "billing": "billing_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "unavailable": "api_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}
KIND_BY_ERROR_TYPE = {v: k for k, v in ERROR_TYPES.items() if k != "unavailable"}


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(err.kind, "api_error"), "message": err.message},
        "request_id": request_id,
    }


def error_bytes(err: GatewayError, request_id: str) -> bytes:
    return dumps(encode_error(err, request_id))
