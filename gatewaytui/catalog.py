"""The model catalog: names and aliases clients may ask for, resolved to a configured model.

Routing settings the operator can change at run time (persisted in the settings table): the default
model (used when a request names none), extra aliases, the haiku lane (``claude-haiku-*`` requests
sent to another model, e.g. a cheaper OpenRouter one) and model fallbacks (the models that serve a
request when no account of its own model can).
"""

from __future__ import annotations

from typing import Any

from .config import FallbackConfig, ModelConfig, RoutingConfig
from .model import GatewayError

GEMINI_PREFIX = "models/"
MAX_PREFIXES = 2  # more "models/" prefixes than this name no model (and must not cost a deep recursion)


class Catalog:
    def __init__(
        self,
        models: list[ModelConfig],
        routing: RoutingConfig,
        fallbacks: list[FallbackConfig] | None = None,
    ) -> None:
        self.models: dict[str, ModelConfig] = {m.name: m for m in models}
        self.config_aliases: dict[str, str] = {a: m.name for m in models for a in m.aliases}
        self.extra_aliases: dict[str, str] = {}
        self.default_model = routing.default_model or (models[0].name if models else "")
        self.haiku_model = routing.haiku_model
        self.fallbacks: dict[str, list[str]] = {}  # model name -> model names, in order
        self.set_fallbacks({f.model: f.then for f in fallbacks or []})

    def set_fallbacks(self, chains: dict[str, list[str]]) -> None:
        """Replace every fallback chain; names and aliases become model names, unknown ones are dropped."""
        out: dict[str, list[str]] = {}
        for model, then in chains.items():
            own = self._direct(model)
            if own is None or not isinstance(then, list):
                continue
            names = [m.name for m in (self._direct(n) for n in then if isinstance(n, str)) if m is not None]
            names = [n for i, n in enumerate(names) if n != own.name and n not in names[:i]]
            if names:
                out[own.name] = names
        self.fallbacks = out

    def fallback_chain(self, model: ModelConfig) -> list[ModelConfig]:
        """The models that may serve a request for ``model`` when none of its accounts can, in order."""
        return [self.models[n] for n in self.fallbacks.get(model.name, []) if n in self.models]

    def apply_settings(self, settings: dict[str, Any]) -> None:
        if isinstance(settings.get("default_model"), str) and settings["default_model"] in self.models:
            self.default_model = settings["default_model"]
        if isinstance(settings.get("haiku_model"), str):
            self.haiku_model = settings["haiku_model"]
        if isinstance(settings.get("aliases"), dict):
            self.extra_aliases = {k: v for k, v in settings["aliases"].items() if v in self.models}
        if isinstance(settings.get("fallbacks"), dict):  # the operator's chains replace the config's
            self.set_fallbacks(settings["fallbacks"])

    @property
    def aliases(self) -> dict[str, str]:
        return {**self.config_aliases, **self.extra_aliases}

    def resolve(self, name: str | None) -> ModelConfig:
        if not name:
            if self.default_model in self.models:
                return self.models[self.default_model]
            raise GatewayError("invalid_request", "model: field required (no default model is configured)")
        bare = name
        for _ in range(
            MAX_PREFIXES + 1
        ):  # Gemini names: "models/x", once more when a path and body both add it
            found = self._lookup(bare)
            if found is not None:
                return found
            if not bare.startswith(GEMINI_PREFIX):
                break
            bare = bare[len(GEMINI_PREFIX) :]
        shown = name if len(name) <= 200 else f"{name[:200]}..."
        raise GatewayError(
            "not_found", f"model {shown!r} is not available on this gateway", code="model_not_found"
        )

    def _lookup(self, name: str) -> ModelConfig | None:
        if self.haiku_model and "haiku" in name and name not in self.models and self.haiku_model != name:
            lane = self._direct(self.haiku_model)
            if lane is not None:
                return lane
        return self._direct(name)

    def _direct(self, name: str) -> ModelConfig | None:
        """A configured model by name, alias or ``auto`` (no haiku lane, no prefix stripping)."""
        if name in self.models:
            return self.models[name]
        alias = self.aliases.get(name)
        if alias:
            return self.models[alias]
        if name == "auto" and self.default_model in self.models:
            return self.models[self.default_model]
        return None

    def provider_module(self, model: ModelConfig) -> str:
        """The provider module that reaches this model ("openai-responses" for Responses-only models)."""
        if model.provider == "openai" and model.api == "responses":
            return "openai-responses"
        return model.provider

    def names(self) -> list[tuple[str, ModelConfig]]:
        """Every name a client may use, with the model it means (aliases included, ``auto`` always)."""
        out = [(m.name, m) for m in self.models.values()]
        out += [(a, self.models[t]) for a, t in self.aliases.items() if t in self.models]
        if "auto" not in self.aliases and self.default_model in self.models:
            out.append(("auto", self.models[self.default_model]))
        return out
