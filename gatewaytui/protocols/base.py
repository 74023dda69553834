"""The uniform shape of a client protocol module.

Every module in ``gatewaytui.protocols`` offers the same names, so the server treats them alike:

``NAME``                     the protocol's registry name ("anthropic", "openai_chat", ...)
``STREAM_CONTENT_TYPE``      media type of its streamed answer
``decode_request(body, *, model=None, stream=None, headers=None) -> ChatRequest``
                             client JSON body -> internal request; raises ``GatewayError``
                             ("invalid_request") for anything malformed
``encode_response(resp, req) -> dict``
                             internal response -> client JSON body
``StreamEncoder(req, request_id)``
                             ``.encode(event) -> bytes`` for each internal stream event,
                             ``.keepalive() -> bytes`` (b"" where the protocol allows none),
                             ``.finish() -> bytes`` trailing bytes after the last event
``encode_error(err, request_id) -> dict``
                             a ``GatewayError`` in the protocol's error envelope
"""

from __future__ import annotations

from typing import Any, Protocol

from ..model import ChatRequest, ChatResponse, Event, GatewayError


class StreamEncoderLike(Protocol):
    def encode(self, event: Event) -> bytes: ...
    def keepalive(self) -> bytes: ...
    def finish(self) -> bytes: ...


class ProtocolModule(Protocol):
    NAME: str
    STREAM_CONTENT_TYPE: str

    def decode_request(
        self,
        body: dict[str, Any],
        *,
        model: str | None = None,
        stream: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> ChatRequest: ...

    def encode_response(self, resp: ChatResponse, req: ChatRequest) -> dict[str, Any]: ...

    def StreamEncoder(self, req: ChatRequest, request_id: str) -> StreamEncoderLike: ...  # noqa: N802

    def encode_error(self, err: GatewayError, request_id: str) -> dict[str, Any]: ...


def require(cond: bool, message: str, param: str | None = None) -> None:
    """Raise an ``invalid_request`` error unless ``cond`` holds."""
    if not cond:
        raise GatewayError("invalid_request", message, param=param)


def expect_type(value: Any, types: type | tuple[type, ...], path: str) -> Any:
    """Check a JSON value's type (bool is never an int here) and return it."""
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
    if not ok:
        names = " or ".join(_json_name(t) for t in _as_tuple(types))
        got = "but it is missing or null" if value is None else f"got {_json_name(type(value))}"
        raise GatewayError("invalid_request", f"{path}: expected {names}, {got}", param=path)
    return value


def optional(body: dict[str, Any], key: str, types: type | tuple[type, ...], path: str | None = None) -> Any:
    value = body.get(key)
    if value is None:
        return None
    return expect_type(value, types, path or key)


def number(body: dict[str, Any], key: str, lo: float, hi: float, path: str | None = None) -> float | None:
    value = optional(body, key, (int, float), path)
    if value is None:
        return None
    if not (lo <= value <= hi):
        raise GatewayError(
            "invalid_request", f"{path or key}: must be between {lo} and {hi}", param=path or key
        )
    return float(value)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _json_name(t: type) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(t, t.__name__)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>;base64,<payload>`` -> (mime, payload); None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url[5:].partition(",")
    if not sep or ";base64" not in head:
        raise GatewayError("invalid_request", "data URLs must be base64 encoded (data:<mime>;base64,...)")
    return head.split(";", 1)[0] or "application/octet-stream", payload


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


CARRIER = "gwtui1:"


def carry(family: str | None, signature: str | None, redacted: str | None = None) -> str | None:
    """Wrap another family's reasoning signature so it can ride through a client and come back labelled.

    Only the gateway reads these; they are never sent to an upstream that did not produce them.
    """
    if redacted is not None:
        return f"{CARRIER}{family}:r:{redacted}"
    if signature:
        return f"{CARRIER}{family}:s:{signature}"
    return None


def uncarry(value: str | None) -> tuple[str, str, str] | None:
    """``(family, "s" | "r", value)`` for a carried signature, else None."""
    if not value or not value.startswith(CARRIER):
        return None
    family, _, rest = value[len(CARRIER) :].partition(":")
    mark, _, inner = rest.partition(":")
    if not family or mark not in ("s", "r"):
        return None
    return family, mark, inner


def is_web_search(raw: dict[str, Any]) -> bool:
    """Whether a provider-native tool, of any family, is the provider's web search."""
    kind = raw.get("type")
    if isinstance(kind, str):
        return kind.startswith("web_search")
    return "googleSearch" in raw or "google_search" in raw
