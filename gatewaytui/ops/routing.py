"""Routing actions and views: the strategy, the default and haiku models, aliases, per-route presets,
model fallbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import MAX_FALLBACKS, ROUTES, STRATEGIES, fallback_problem
from ..model import GatewayError
from ..store import settings as settings_store
from .spec import Field, Spec, bad, string, validated

if TYPE_CHECKING:
    from ..runtime import Runtime

SET_STRATEGY = Spec("set_strategy", (string("strategy", required=True, choices=STRATEGIES),))
SET_DEFAULT_MODEL = Spec("set_default_model", (string("name", required=True),))
SET_HAIKU_MODEL = Spec("set_haiku_model", (string("name", required=True, doc="empty: the lane is off"),))


def _alias_not_blank(args: dict[str, Any]) -> None:
    if "alias" in args and not args["alias"].strip():
        raise bad("alias: must not be empty", "alias")


SET_ALIAS = Spec(
    "set_alias",
    (string("alias", required=True), string("target", required=True, nullable=True, doc="null removes")),
    (_alias_not_blank,),
)
SET_PRESET = Spec(
    "set_preset",
    (
        string("route", required=True),
        string("system", required=True),
        Field("defaults", "object", nullable=True),
    ),
)
SET_FALLBACKS = Spec(
    "set_fallbacks",
    (
        string(
            "model", required=True, max_length=200, doc="the model (name or alias) whose requests fall back"
        ),
        Field(
            "then",
            "strings",
            required=True,
            nullable=True,
            max_items=MAX_FALLBACKS,
            doc="the models tried in order when no account of it can serve; null or [] removes the chain",
        ),
    ),
)


@validated(SET_STRATEGY)
async def set_strategy(rt: Runtime, strategy: str) -> None:
    await rt.write(lambda c: settings_store.put(c, "strategy", strategy))
    rt.pool.strategy = strategy
    rt.bus.publish("routing.changed", strategy=strategy)


@validated(SET_DEFAULT_MODEL)
async def set_default_model(rt: Runtime, name: str) -> None:
    if name not in rt.catalog.models:
        raise GatewayError(
            "not_found", f"no model {name!r}; configured: {', '.join(rt.catalog.models)}", param="name"
        )
    await rt.write(lambda c: settings_store.put(c, "default_model", name))
    rt.catalog.default_model = name
    rt.bus.publish("routing.changed", default_model=name)


@validated(SET_HAIKU_MODEL)
async def set_haiku_model(rt: Runtime, name: str) -> None:
    if name and name not in rt.catalog.models and name not in rt.catalog.aliases:
        raise GatewayError(
            "not_found", f"no model {name!r}; configured: {', '.join(rt.catalog.models)}", param="name"
        )
    await rt.write(lambda c: settings_store.put(c, "haiku_model", name))
    rt.catalog.haiku_model = name
    rt.bus.publish("routing.changed", haiku_model=name)


@validated(SET_ALIAS)
async def set_alias(rt: Runtime, alias: str, target: str | None) -> dict[str, str]:
    aliases = dict(rt.catalog.extra_aliases)
    if target is None:
        aliases.pop(alias, None)
    else:
        if target not in rt.catalog.models:
            raise GatewayError("not_found", f"no model {target!r}", param="target")
        if alias in rt.catalog.models:
            raise bad(f"{alias!r} is a model name, not an alias", "alias")
        aliases[alias] = target
    await rt.write(lambda c: settings_store.put(c, "aliases", aliases))
    rt.catalog.extra_aliases = aliases
    rt.bus.publish("routing.changed", aliases=aliases)
    return rt.catalog.aliases


@validated(SET_PRESET)
async def set_preset(
    rt: Runtime, route: str, system: str, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    if route not in ROUTES:
        raise GatewayError("not_found", f"no preset route {route!r}; one of {', '.join(ROUTES)}")
    rt.presets[route] = {"system": system, "defaults": defaults or {}}
    presets = dict(rt.presets)
    await rt.write(lambda c: settings_store.put(c, "presets", presets))
    rt.bus.publish("routing.changed", preset=route)
    return rt.presets[route]


@validated(SET_FALLBACKS)
async def set_fallbacks(rt: Runtime, model: str, then: list[str] | None) -> dict[str, list[str]]:
    """Set (or with ``then`` empty or null, remove) one model's fallback chain; returns every chain."""
    cat = rt.catalog
    own = cat.resolve(model).name  # 404 in the caller's shape for an unknown model
    chains = dict(cat.fallbacks)
    if then:
        problem = fallback_problem(own, then, {name for name, _ in cat.names()})
        if problem:
            raise bad(f"set_fallbacks: {problem[0]}: {problem[1]}", problem[0])
        chains[own] = then
    else:
        chains.pop(own, None)
    cat.set_fallbacks(chains)
    stored = dict(cat.fallbacks)
    await rt.write(lambda c: settings_store.put(c, "fallbacks", stored))
    rt.bus.publish("routing.changed", fallbacks=stored)
    return stored


# ------------------------------------------------------------------ the admin API's routing settings

ROUTING = Spec(
    "routing",
    (
        string("strategy", choices=STRATEGIES),
        string("default_model"),
        string("haiku_model", nullable=True, doc="empty or null: the lane is off"),
        Field("aliases", "object", doc="{alias: model name, or null to remove}"),
        Field("fallbacks", "object", doc="{model: [fallback models in order], or null to remove}"),
    ),
)


def routing_view(rt: Runtime) -> dict[str, Any]:
    cat = rt.catalog
    return {
        "strategy": rt.pool.strategy,
        "default_model": cat.default_model,
        "haiku_model": cat.haiku_model or "",
        "aliases": cat.aliases,
        "fallbacks": cat.fallbacks,
        "models": list(cat.models),
    }


async def change_routing(rt: Runtime, body: Any) -> dict[str, Any]:
    """Several routing settings at once (each through its own action); returns the new view."""
    args = ROUTING.parse(body)
    aliases: dict[str, Any] = args.get("aliases") or {}
    for alias, target in aliases.items():
        if not alias or (target is not None and not isinstance(target, str)):
            raise bad("aliases: expected {alias: model name or null}")
    fallbacks: dict[str, Any] = args.get("fallbacks") or {}
    for model, then in fallbacks.items():
        SET_FALLBACKS.parse({"model": model, "then": then})  # every chain checked before any is applied
    if "strategy" in args:
        await set_strategy(rt, args["strategy"])
    if "default_model" in args:
        await set_default_model(rt, args["default_model"])
    if "haiku_model" in args:
        await set_haiku_model(rt, args["haiku_model"] or "")
    for alias, target in aliases.items():
        await set_alias(rt, alias, target)
    for model, then in fallbacks.items():
        await set_fallbacks(rt, model, then)
    return routing_view(rt)
