"""OpenAI Chat Completions: ``POST /v1/chat/completions``.

Both directions of the wire live here: client bodies in and out (``decode_request``,
``encode_response``, ``StreamEncoder``, ``encode_error``) and upstream bodies out and in
(``encode_request``, ``decode_response``), used by the OpenAI-style providers. Parsing an upstream
chunk stream into internal events is the provider's job (``providers/openai.py``).

``request`` and ``messages`` hold the request bodies, ``tools`` the tool definitions, names and ids,
``response`` and ``stream`` the answers, ``usage`` and ``errors`` their envelopes.
"""

from ..arguments import arguments_text, parse_arguments, repair_json
from .errors import ERROR_TYPES, decode_error, encode_error
from .request import EXTRA_FIELDS, REASONING_EFFORTS, decode_request, encode_request
from .response import (
    FINISH_REASONS,
    chat_id,
    decode_response,
    encode_response,
    finish_reason,
    reasoning_text,
    stop_reason,
)
from .spec import NAME, STREAM_CONTENT_TYPE, THINKING_FAMILY
from .stream import StreamEncoder
from .tools import (
    _TOOL_NAME_OK,
    MAX_CALL_ID,
    MAX_TOOL_NAME,
    TOOL_NAMES_KEY,
    original_tool_name,
    upstream_call_id,
    upstream_tool_name,
)
from .usage import decode_usage, encode_usage

__all__ = [
    "ERROR_TYPES",
    "EXTRA_FIELDS",
    "FINISH_REASONS",
    "MAX_CALL_ID",
    "MAX_TOOL_NAME",
    "NAME",
    "REASONING_EFFORTS",
    "STREAM_CONTENT_TYPE",
    "THINKING_FAMILY",
    "TOOL_NAMES_KEY",
    "_TOOL_NAME_OK",
    "StreamEncoder",
    "arguments_text",
    "chat_id",
    "decode_error",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_error",
    "encode_request",
    "encode_response",
    "encode_usage",
    "finish_reason",
    "original_tool_name",
    "parse_arguments",
    "reasoning_text",
    "repair_json",
    "stop_reason",
    "upstream_call_id",
    "upstream_tool_name",
]
