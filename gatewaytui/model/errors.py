"""Gateway errors: one kind vocabulary, rendered by each protocol in its own shape."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "billing",
    "rate_limit",
    "api_error",
    "overloaded",
    "unavailable",
    "timeout",
]

STATUS_BY_KIND: dict[str, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "billing": 402,
    "permission": 403,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limit": 429,
    "api_error": 500,
    "unavailable": 503,
    "timeout": 504,
    "overloaded": 529,
}

KIND_BY_STATUS: dict[int, str] = {v: k for k, v in STATUS_BY_KIND.items()}


def kind_for_status(status: int) -> str:
    if status in KIND_BY_STATUS:
        return KIND_BY_STATUS[status]
    if status == 408:
        return "timeout"
    if status >= 500:
        return "api_error"
    return "invalid_request"


class GatewayError(Exception):
    """An error with a kind, a status and a message fit for the client."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status if status is not None else STATUS_BY_KIND.get(kind, 500)
        self.retry_after = retry_after
        self.code = code
        self.param = param

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        seconds = max(1, int(self.retry_after + 0.999))
        return {"retry-after": str(seconds)}
