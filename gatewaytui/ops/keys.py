"""A tenant minting its own key (``POST /tenant/keys``): the request's spec, and the bounds of the caller.

A new key never gets more than the key that asks for it: a subscription key mints only subscription keys,
and the caller's model list, RPM and token-rate limits, spend budget and expiry bound the new key's.

The limit fields (``budget_micro``, ``budget_period``, ``tpm``) and their rule are shared with the
operator's ``mint_key`` spec: one validator whoever mints.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..model import GatewayError
from ..store import keys as key_store
from .spec import Field, Spec, bad, integer, string

if TYPE_CHECKING:
    from ..runtime import Runtime

MAX_KEYS = 100
MAX_RPM = 100_000
MAX_DAYS = 3650
MAX_TPM = 1_000_000_000
MAX_BUDGET_MICRO = 10**15  # a billion dollars: past this a budget is a typo


def _budget_period(args: dict[str, Any]) -> None:
    period = args.get("budget_period")
    if period is None:
        return
    try:
        key_store.check_period(period)
    except ValueError as exc:
        raise bad(str(exc), "budget_period") from None
    if args.get("budget_micro") is None:
        raise bad("budget_period: a budget period needs budget_micro", "budget_period")


LIMIT_FIELDS = (
    integer(
        "budget_micro",
        nullable=True,
        minimum=1,
        maximum=MAX_BUDGET_MICRO,
        doc="spend budget in micro-USD per budget_period (held like credit); null: none",
    ),
    string(
        "budget_period",
        nullable=True,
        max_length=10,
        doc="day (default) or month (calendar, UTC), or a rolling window of <N>h hours, e.g. 24h",
    ),
    integer(
        "tpm", nullable=True, minimum=1, maximum=MAX_TPM, doc="tokens per minute (input + output); null: none"
    ),
)
LIMIT_RULES = (_budget_period,)


def _one_expiry(args: dict[str, Any]) -> None:
    if args.get("expires_at") is not None and args.get("expires_in_days") is not None:
        raise bad("give expires_at or expires_in_days, not both")
    days = args.get("expires_in_days")
    if days is not None and days <= 0:
        raise bad(f"expires_in_days: a number of days between 0 and {MAX_DAYS}", "expires_in_days")
    at = args.get("expires_at")
    now = time.time()
    if at is not None and not now < at < now + MAX_DAYS * 86400:
        raise bad("expires_at: a Unix time in the future (within 10 years)", "expires_at")


TENANT_KEY = Spec(
    "key",
    (
        string("kind", choices=key_store.KINDS, doc="default: the calling key's kind"),
        string("label", nullable=True, max_length=200, printable=True),
        Field("expires_at", "number", nullable=True, doc="Unix time, within 10 years"),
        Field("expires_in_days", "number", nullable=True, maximum=MAX_DAYS),
        Field("models", "strings", nullable=True, max_items=100, doc="model names or aliases"),
        integer("rpm", nullable=True, minimum=1, maximum=MAX_RPM),
        *LIMIT_FIELDS,
    ),
    (_one_expiry, *LIMIT_RULES),
    doc="every field bounded by the calling key: never more models, RPM, tokens per minute, budget or "
    "lifetime than it has (a budget only over the same period)",
)


def key_request(rt: Runtime, caller: dict[str, Any], body: Any) -> dict[str, Any]:
    """The arguments of ``mint_key`` for a key the caller's key may mint; 400 or 403 otherwise."""
    args = TENANT_KEY.parse(body)
    kind = args.get("kind", caller["kind"])
    if caller["kind"] == "subscription" and kind != "subscription":
        raise GatewayError(
            "permission", "a subscription key cannot mint a pay-per-token key; use a pay-per-token key"
        )
    expires_at = args.get("expires_at")
    if args.get("expires_in_days") is not None:
        expires_at = time.time() + float(args["expires_in_days"]) * 86400
    if caller.get("expires_at") and (expires_at is None or expires_at > caller["expires_at"]):
        expires_at = caller["expires_at"]

    own_models = caller.get("models") or []
    models = args.get("models")
    if models is not None:
        names = []
        for m in models:
            try:
                names.append(rt.catalog.resolve(m).name)
            except GatewayError:
                raise bad(f"models: {m[:100]!r} is not a model on this gateway", "models") from None
        if own_models and not set(names) <= set(own_models):
            raise GatewayError("permission", "models: a key may only allow models its creator's key allows")
        models = sorted(set(names))
    models = models or (list(own_models) or None)

    rpm = _at_most(args.get("rpm"), caller.get("rpm"), "rpm")
    tpm = _at_most(args.get("tpm"), caller.get("tpm"), "tpm")
    budget, period = args.get("budget_micro"), args.get("budget_period")
    own_budget = caller.get("budget_micro")
    if own_budget is not None:
        own_period = caller.get("budget_period") or "day"
        if budget is not None and (period or "day") != own_period:
            raise GatewayError(
                "permission",
                f"budget_period: must be {own_period}, the period of the key making this request's budget",
            )
        budget, period = _at_most(budget, own_budget, "budget_micro"), own_period
    return {
        "kind": kind,
        "label": args.get("label"),
        "expires_at": None if expires_at is None else float(expires_at),
        "models": models,
        "rpm": rpm,
        "tpm": tpm,
        "budget_micro": budget,
        "budget_period": period if budget is not None else None,
    }


def _at_most(value: int | None, own: int | None, name: str) -> int | None:
    """A limit bounded by the caller's own (inherited when not given): never more than it has."""
    if not own:
        return value
    if value is not None and value > own:
        raise GatewayError("permission", f"{name}: at most {own}, the limit of the key making this request")
    return own if value is None else value
