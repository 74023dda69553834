"""Anthropic Messages: ``POST /v1/messages`` (also ``?beta=true``).

Both directions of the wire live here: client bodies in and out (``decode_request``,
``encode_response``, ``StreamEncoder``, ``encode_error``) and upstream bodies out and in
(``encode_request``, ``decode_response``), used by the Anthropic provider. Parsing an upstream
event stream into internal events is the provider's job (``providers/anthropic.py``).

``request`` holds the request bodies, ``messages`` the turns and content blocks inside them,
``tools`` the tool definitions, ``response`` and ``stream`` the answers, ``usage`` and ``errors``
their envelopes.
"""

from .blocks import encode_part
from .errors import ERROR_TYPES, KIND_BY_ERROR_TYPE, encode_error, error_bytes
from .request import FORWARD_HEADERS, decode_request, encode_request
from .response import decode_response, encode_response
from .spec import NAME, STREAM_CONTENT_TYPE
from .stream import StreamEncoder
from .tools import WEB_SEARCH_TOOL, encode_tool
from .usage import decode_usage, encode_usage

__all__ = [
    "ERROR_TYPES",
    "FORWARD_HEADERS",
    "KIND_BY_ERROR_TYPE",
    "NAME",
    "STREAM_CONTENT_TYPE",
    "WEB_SEARCH_TOOL",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_error",
    "encode_part",
    "encode_request",
    "encode_response",
    "encode_tool",
    "encode_usage",
    "error_bytes",
]
