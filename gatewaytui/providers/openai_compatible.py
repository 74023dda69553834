"""Any server speaking OpenAI Chat Completions (vLLM, Ollama, llama.cpp, DeepSeek, Groq, ...).

No default base URL: the account must name one (``http://host:8000/v1`` or ``http://host:8000``;
``/v1`` is added unless the URL already names a version; a URL ending in ``/chat/completions`` is
used as is). Translated requests use the widely supported ``max_tokens``, send reasoning
history back as ``reasoning_content``, and fold mid-conversation instructions into the leading system
message (many local chat templates refuse a system message after the first turn).
"""

from __future__ import annotations

from ..model import ChatRequest
from . import openai
from .base import Credentials, UpstreamRequest

NAME = "openai-compatible"
WIRE = "openai_chat"
DEFAULT_BASE_URL: str | None = None

FLAVOR = openai.Flavor(max_tokens_field="max_tokens", reasoning_history="reasoning_content", mid_system=False)


def build_request(req: ChatRequest, upstream_model: str, creds: Credentials) -> UpstreamRequest:
    return openai.build_request(req, upstream_model, creds, FLAVOR)


parse_response = openai.parse_response
StreamParser = openai.StreamParser
classify_error = openai.classify_error
read_quota = openai.read_quota
