"""OpenRouter: an OpenAI Chat Completions upstream with its own reasoning controls.

Differences from api.openai.com: ``max_tokens`` rather than ``max_completion_tokens``, the
unified ``reasoning`` object instead of ``reasoning_effort``, and reasoning history sent back as
``reasoning``. Streamed ``delta.reasoning`` / ``reasoning_details`` are read by the shared parser.
"""

from __future__ import annotations

from ..model import ChatRequest
from . import openai
from .base import Credentials, UpstreamRequest

NAME = "openrouter"
WIRE = "openai_chat"
DEFAULT_BASE_URL = "https://openrouter.ai/api"  # -> https://openrouter.ai/api/v1/chat/completions

FLAVOR = openai.Flavor(
    max_tokens_field="max_tokens", reasoning_history="reasoning", reasoning_object=True, model_rules=False
)


def build_request(req: ChatRequest, upstream_model: str, creds: Credentials) -> UpstreamRequest:
    return openai.build_request(req, upstream_model, creds, FLAVOR)


parse_response = openai.parse_response
StreamParser = openai.StreamParser
classify_error = openai.classify_error
read_quota = openai.read_quota
