"""The one table of upstream providers."""

from __future__ import annotations

import importlib
from types import ModuleType

# registry name -> module (an account's provider, or "openai-responses" for Responses-only OpenAI models)
MODULES = {
    "anthropic": "anthropic",
    "openai": "openai",
    "openai-responses": "openai_responses",
    "gemini": "gemini",
    "openrouter": "openrouter",
    "openai-compatible": "openai_compatible",
}

PROVIDERS: dict[str, ModuleType] = {}
for _name, _module in MODULES.items():
    try:
        PROVIDERS[_name] = importlib.import_module(f"gatewaytui.providers.{_module}")
    except ModuleNotFoundError as _exc:  # pragma: no cover - every provider ships; guards partial checkouts
        if _exc.name != f"gatewaytui.providers.{_module}":
            raise


def get(name: str) -> ModuleType:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
