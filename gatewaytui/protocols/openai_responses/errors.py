"""The Responses error envelope (OpenAI's, as on the Chat wire) and upstream error codes."""

from __future__ import annotations

from typing import Any

from ...codec import dumps
from ...model import GatewayError
from ..openai_chat.errors import ERROR_TYPES

ERRORS = ERROR_TYPES  # kind -> (error.type, default error.code): OpenAI's table, as on the Chat wire
_CONTEXT_HINTS = (
    "context length",
    "context window",
    "context_length",
    "prompt is too long",
    "maximum context",
)


def error_kind(code: Any) -> tuple[str, int]:
    """An upstream Responses error code as a gateway error kind and status."""
    if code == "rate_limit_exceeded":
        return "rate_limit", 429
    if code == "insufficient_quota":
        return "billing", 402
    if code in ("context_length_exceeded", "invalid_prompt") or (
        isinstance(code, str) and code.startswith("invalid_")
    ):
        return "invalid_request", 400
    if code in ("server_is_overloaded", "server_overloaded", "service_unavailable", "slow_down"):
        return "unavailable", 503
    return "api_error", 500


def error_code(kind: str, message: str, code: str | None = None) -> str | None:
    if code:
        return code
    if kind in ("invalid_request", "request_too_large") and any(h in message.lower() for h in _CONTEXT_HINTS):
        return "context_length_exceeded"
    return ERRORS.get(kind, ("server_error", None))[1]


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    etype = ERRORS.get(err.kind, ("server_error", None))[0]
    return {
        "error": {
            "message": err.message,
            "type": etype,
            "param": err.param,
            "code": error_code(err.kind, err.message, err.code),
        }
    }


def error_bytes(err: GatewayError, request_id: str) -> bytes:
    return dumps(encode_error(err, request_id))
