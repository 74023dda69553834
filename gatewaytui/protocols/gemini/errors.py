"""The Gemini error envelope (google.rpc.Status) and its status names."""

from __future__ import annotations

from typing import Any

from ...model import GatewayError

STATUS_BY_KIND = {
    "invalid_request": "INVALID_ARGUMENT",
    "authentication": "UNAUTHENTICATED",
    "billing": "FAILED_PRECONDITION",
    "permission": "PERMISSION_DENIED",
    "not_found": "NOT_FOUND",
    "request_too_large": "INVALID_ARGUMENT",
    "rate_limit": "RESOURCE_EXHAUSTED",
    "api_error": "INTERNAL",
    "overloaded": "UNAVAILABLE",
    "unavailable": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED",
}
KIND_BY_STATUS = {
    "INVALID_ARGUMENT": "invalid_request",
    "FAILED_PRECONDITION": "invalid_request",
    "OUT_OF_RANGE": "invalid_request",
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "permission",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "rate_limit",
    "UNAVAILABLE": "overloaded",
    "DEADLINE_EXCEEDED": "timeout",
}


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    status = STATUS_BY_KIND.get(err.kind, "INTERNAL")
    error: dict[str, Any] = {
        "code": 503 if err.status == 529 else err.status,
        "message": err.message,
        "status": status,
    }
    details: list[dict[str, Any]] = []
    if err.retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{max(1, round(err.retry_after))}s",
            }
        )
    if request_id:
        details.append({"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id})
    if details:
        error["details"] = details
    return {"error": error}
