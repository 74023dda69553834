"""The action registry: every operator action the console can run, by name, with its spec.

``run_action(rt, name, args)`` is what the in-process console, ``gatewaytui attach`` (through
``POST /admin/console/<name>``) and the OpenAPI document share. The arguments are checked by the action's
own spec (the same one the admin API and the CLI use); the result is JSON-ready.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model import GatewayError
from . import accounts, routing, tenants
from .spec import Spec

if TYPE_CHECKING:
    from ..runtime import Runtime


@dataclass(frozen=True, slots=True)
class Action:
    spec: Spec
    fn: Callable[..., Awaitable[Any]]
    shape: Callable[[Any], Any] = lambda result: result


def _key_result(result: tuple[dict[str, Any], str]) -> dict[str, Any]:
    key, secret = result
    return {"key": key, "secret": secret}


def _entries() -> dict[str, Action]:
    table = [
        Action(tenants.CREATE_TENANT, tenants.create_tenant),
        Action(tenants.MINT_KEY, tenants.mint_key, _key_result),
        Action(tenants.REVOKE_KEY, tenants.revoke_key, lambda done: {"revoked": done}),
        Action(tenants.CREDIT, tenants.credit, lambda balance: {"balance_micro": balance}),
        Action(tenants.SET_TIER, tenants.set_tier, tenants.tenant_view),
        Action(tenants.SET_CAP, tenants.set_cap, tenants.tenant_view),
        Action(tenants.SET_TENANT_TPM, tenants.set_tenant_tpm, tenants.tenant_view),
        Action(accounts.ADD_ACCOUNT, accounts.add_account),
        Action(accounts.UPDATE_ACCOUNT, accounts.update_account),
        Action(accounts.SET_ACCOUNT_ENABLED, accounts.set_account_enabled),
        Action(accounts.RESET_ACCOUNT, accounts.reset_account),
        Action(accounts.PREFER_ACCOUNT, accounts.prefer_account),
        Action(accounts.REMOVE_ACCOUNT, accounts.remove_account, lambda _: {"removed": True}),
        Action(routing.SET_STRATEGY, routing.set_strategy, lambda _: {}),
        Action(routing.SET_DEFAULT_MODEL, routing.set_default_model, lambda _: {}),
        Action(routing.SET_HAIKU_MODEL, routing.set_haiku_model, lambda _: {}),
        Action(routing.SET_ALIAS, routing.set_alias, lambda aliases: {"aliases": aliases}),
        Action(routing.SET_PRESET, routing.set_preset),
        Action(routing.SET_FALLBACKS, routing.set_fallbacks, lambda chains: {"fallbacks": chains}),
    ]
    return {a.spec.name: a for a in table}


ACTIONS: dict[str, Action] = _entries()


async def run_action(rt: Runtime, name: str, args: Any) -> Any:
    """Check ``args`` against the action's spec and run it; the result is JSON-ready."""
    action = ACTIONS.get(name)
    if action is None:
        raise GatewayError("not_found", f"no console action {name!r}; one of {', '.join(ACTIONS)}")
    if not isinstance(args, dict):
        action.spec.parse(args)  # raises: not an object
    try:
        result = await action.fn(rt, **args)
    except (ValueError, sqlite3.IntegrityError) as exc:  # a store's own invariant
        raise GatewayError("invalid_request", f"{name}: {exc}") from None
    return action.shape(result)
