"""Google Gemini generateContent: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``.

Requests arrive in camelCase or in proto snake_case (Google's curl samples); both decode alike. The
model and the stream flag come from the URL, not the body. A streamed answer is SSE (``?alt=sse``:
``data: <json>`` frames, nothing else) or a JSON array sent piece by piece; the server tells the
encoder which through ``req.extras["gemini_sse"]``.

``request`` holds the request bodies, ``contents`` the turns inside them, ``tools`` and ``schema`` the
function declarations, ``signatures`` the thought-signature carrier, ``fields`` the camel/snake
field access, ``response`` and ``stream`` the answers, ``usage`` and ``errors`` their envelopes.
"""

from .contents import NON_PAYLOAD_KEYS, encode_model_parts
from .errors import KIND_BY_STATUS, STATUS_BY_KIND, encode_error
from .fields import bare_model, get_field
from .request import decode_request, encode_request
from .response import (
    FINISH_BY_STOP,
    REFUSAL_FINISH,
    decode_response,
    encode_response,
    first_candidate,
    function_call,
    is_blocked,
    mint_call_id,
    mint_response_id,
    stop_reason,
)
from .schema import schema_for_gemini, schema_from_gemini
from .signatures import carry_signature, uncarry_signature
from .spec import ARRAY_CONTENT_TYPE, MINTED_ID_PREFIX, NAME, SKIP_SIGNATURE, STREAM_CONTENT_TYPE
from .stream import StreamEncoder
from .tools import TOOL_NAMES_KEY, gemini_tool_name
from .usage import decode_usage, encode_usage

__all__ = [
    "ARRAY_CONTENT_TYPE",
    "FINISH_BY_STOP",
    "KIND_BY_STATUS",
    "MINTED_ID_PREFIX",
    "NAME",
    "NON_PAYLOAD_KEYS",
    "REFUSAL_FINISH",
    "SKIP_SIGNATURE",
    "STATUS_BY_KIND",
    "STREAM_CONTENT_TYPE",
    "TOOL_NAMES_KEY",
    "StreamEncoder",
    "bare_model",
    "carry_signature",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_error",
    "encode_model_parts",
    "encode_request",
    "encode_response",
    "encode_usage",
    "first_candidate",
    "function_call",
    "gemini_tool_name",
    "get_field",
    "is_blocked",
    "mint_call_id",
    "mint_response_id",
    "schema_for_gemini",
    "schema_from_gemini",
    "stop_reason",
    "uncarry_signature",
]
