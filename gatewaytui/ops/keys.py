"""A tenant minting its own key (``POST /tenant/keys``): the request's spec, and the bounds of the caller.

A new key never gets more than the key that asks for it: a subscription key mints only subscription keys,
and the caller's model list, RPM limit and expiry bound the new key's.
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
    ),
    (_one_expiry,),
    doc="every field bounded by the calling key: never more models, RPM or lifetime than it has",
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

    rpm = args.get("rpm")
    own_rpm = caller.get("rpm")
    if own_rpm and (rpm is None or rpm > own_rpm):
        if rpm is not None:
            raise GatewayError(
                "permission", f"rpm: at most {own_rpm}, the limit of the key making this request"
            )
        rpm = own_rpm
    return {
        "kind": kind,
        "label": args.get("label"),
        "expires_at": None if expires_at is None else float(expires_at),
        "models": models,
        "rpm": rpm,
    }
