"""The one table of upstream providers."""

from __future__ import annotations

from . import anthropic, gemini, openai, openai_compatible, openai_responses, openrouter
from .base import ProviderModule

# registry name -> module (an account's provider, or "openai-responses" for Responses-only OpenAI models)
PROVIDERS: dict[str, ProviderModule] = {
    "anthropic": anthropic,
    "openai": openai,
    "openai-responses": openai_responses,
    "gemini": gemini,
    "openrouter": openrouter,
    "openai-compatible": openai_compatible,
}


def get(name: str) -> ProviderModule:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
