"""OpenAI Responses: ``POST /v1/responses`` (Codex, openai-python ``client.responses``).

The gateway is stateless: a request must carry the whole conversation in ``input``. Anything that
points at server-side state (``previous_response_id``, ``conversation``, ``item_reference``,
``background``) is refused with a clear 400.

Reasoning round-trips through ``encrypted_content``. OpenAI's own blobs are kept as they are
(family ``"openai"``); a signature from another family (an Anthropic thinking signature, say) is
wrapped in a gateway carrier, ``gwtui1:<family>:<s|r>:<value>``, so it comes back to the provider
that can verify it when the client replays the item.

``request`` holds the request bodies, ``items`` the conversation items inside them, ``tools`` the
tool definitions, ``response`` and ``stream`` the answers, ``usage`` and ``errors`` their envelopes.
"""

from .errors import ERRORS, encode_error, error_bytes, error_kind
from .items import carry, encode_content_part, uncarry
from .request import EXTRA_KEYS, FORWARD_HEADERS, UPSTREAM_EXTRA_TYPES, decode_request, encode_request
from .response import decode_response, encode_response, response_id, response_object, stop_reason_for
from .spec import CARRIER, FAMILY, NAME, STATELESS, STREAM_CONTENT_TYPE
from .stream import StreamEncoder
from .tools import encode_tool
from .usage import decode_usage, encode_usage

__all__ = [
    "CARRIER",
    "ERRORS",
    "EXTRA_KEYS",
    "FAMILY",
    "FORWARD_HEADERS",
    "NAME",
    "STATELESS",
    "STREAM_CONTENT_TYPE",
    "UPSTREAM_EXTRA_TYPES",
    "StreamEncoder",
    "carry",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_content_part",
    "encode_error",
    "encode_request",
    "encode_response",
    "encode_tool",
    "encode_usage",
    "error_bytes",
    "error_kind",
    "response_id",
    "response_object",
    "stop_reason_for",
    "uncarry",
]
