"""The operator domain: what an operator can do to a running gateway, checked once, whoever asks.

    spec.py      typed action specs: fields, bounds, rules; ``Spec.parse`` is an action's one validator,
                 ``Spec.schema`` its OpenAPI request body
    tenants.py   tenants, keys, credit, tiers, caps (+ the database work the CLI shares)
    accounts.py  upstream accounts: add, change, enable, prefer, reset, remove; status, quota, usage views
    routing.py   strategy, default and haiku models, aliases, presets
    keys.py      a tenant minting its own key: the bounds its current key sets
    snapshot.py  what a console frame shows; one request in full
    actions.py   the registry of console actions by name, and ``run_action``

The CLI, the console (in process or attached) and the admin and tenant HTTP APIs all call these; the
HTTP layer (``gatewaytui.server``) only reads bodies and writes responses. Nothing here imports
``gatewaytui.server``, Quart or the console.
"""

from .accounts import (
    add_account,
    clear_preferred,
    prefer_account,
    remove_account,
    reset_account,
    set_account_enabled,
    update_account,
)
from .actions import ACTIONS, run_action
from .routing import set_alias, set_default_model, set_haiku_model, set_preset, set_strategy
from .tenants import create_tenant, credit, mint_key, revoke_key, set_cap, set_tier, tenants_overview

__all__ = [
    "ACTIONS",
    "add_account",
    "clear_preferred",
    "create_tenant",
    "credit",
    "mint_key",
    "prefer_account",
    "remove_account",
    "reset_account",
    "revoke_key",
    "run_action",
    "set_account_enabled",
    "set_alias",
    "set_cap",
    "set_default_model",
    "set_haiku_model",
    "set_preset",
    "set_strategy",
    "set_tier",
    "tenants_overview",
    "update_account",
]
