"""The one table of upstream providers."""

from __future__ import annotations

from types import ModuleType

from . import anthropic

PROVIDERS: dict[str, ModuleType] = {
    "anthropic": anthropic,
}


def get(name: str) -> ModuleType:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
