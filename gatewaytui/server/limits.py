"""What a request may be: its header block, its body's size and how long the body may take to arrive.

The chat lane and the Quart app enforce the same bounds with the same errors.
"""

from __future__ import annotations

from ..config import ServerConfig
from ..model import GatewayError

# h11 bounds only an incomplete header block: complete ones up to ~128 KB would get through
MAX_HEADER_BYTES = 32 * 1024
BODY_TIMEOUT = 120.0


def max_body_bytes(server: ServerConfig) -> int:
    return int(server.max_body_mb * 1024 * 1024)


def check_header_size(size: int) -> None:
    if size > MAX_HEADER_BYTES:
        raise GatewayError(
            "request_too_large", f"request headers exceed {MAX_HEADER_BYTES // 1024} KB", status=431
        )


def body_too_large(server: ServerConfig) -> GatewayError:
    return GatewayError("request_too_large", f"request body exceeds the {server.max_body_mb:g} MB limit")


def method_not_allowed(method: str, path: str, why: str = "") -> GatewayError:
    return GatewayError(
        "invalid_request", f"method {method[:20]} not allowed on {path[:200]}{why}", status=405
    )


def internal_error() -> GatewayError:
    return GatewayError("api_error", "internal gateway error; the request was not billed")
