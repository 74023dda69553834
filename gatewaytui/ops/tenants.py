"""Tenant actions: tenants, their keys, their credit, their tier and their spending caps.

Each action is checked by its spec (``spec.validated``), writes the database through a ``*_rows``
function that the CLI also runs on its own connection, then updates the running gateway's memory and
publishes an event.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..billing.plans import check_tier
from ..billing.pricing import format_usd
from ..catalog import Catalog
from ..model import GatewayError
from ..store import keys as key_store
from ..store import ledger as ledger_store
from ..store import requests as request_store
from ..store import tenants as tenant_store
from .keys import LIMIT_FIELDS, LIMIT_RULES
from .spec import Bounds, Field, Spec, bad, integer, string, validated

if TYPE_CHECKING:
    from ..runtime import Runtime

CREDIT_KINDS = ("topup", "adjustment", "refund")
TENANT = string("tenant", required=True, max_length=200, doc="an existing tenant's name")
CREATE = Field("create", "boolean", doc="create the tenant if there is none of that name (else 404)")


def _positive_topup(args: dict[str, Any]) -> None:
    if args.get("kind", "topup") == "topup" and args.get("amount_micro", 1) <= 0:
        raise bad("credit: a top-up must be a positive amount", "amount_micro")


def _tenant_name(args: dict[str, Any]) -> None:
    for key in ("tenant", "name"):
        if key in args and not args[key].strip():
            raise bad("tenant name must be 1-200 characters", key)


def _credit_ceiling(args: dict[str, Any], bounds: Bounds) -> None:
    amount = args.get("amount_micro")
    if amount is not None and abs(amount) > bounds.max_credit_micro:
        raise bad(
            f"credit: {format_usd(abs(amount))} is more than one credit may be "
            f"({format_usd(bounds.max_credit_micro)}, [billing] max_credit_usd)",
            "amount_micro",
        )


def _known_models(args: dict[str, Any], bounds: Bounds) -> None:
    if bounds.catalog is None:
        return
    for name in args.get("models") or ():
        try:
            bounds.catalog.resolve(name)
        except GatewayError:
            known = ", ".join(sorted(bounds.catalog.models)) or "none"
            raise bad(
                f"mint_key: no model {name[:100]!r} on this gateway; known: {known}", "models"
            ) from None


def _positive_cap(args: dict[str, Any]) -> None:
    if args.get("cap_micro") is not None and args["cap_micro"] <= 0:
        raise bad("set_cap: a cap must be a positive amount (or null to clear it)", "cap_micro")


CREATE_TENANT = Spec("create_tenant", (string("name", required=True, max_length=200),), (_tenant_name,))
MINT_KEY = Spec(
    "mint_key",
    (
        TENANT,
        string("kind", choices=key_store.KINDS),
        string("label", nullable=True, max_length=200),
        integer("rpm", nullable=True, minimum=1),
        Field("models", "strings", nullable=True, doc="model allow-list (names the gateway serves)"),
        Field("expires_at", "number", nullable=True, doc="Unix time"),
        *LIMIT_FIELDS,
        CREATE,
    ),
    (_tenant_name, *LIMIT_RULES),
    checks=(_known_models,),
)
REVOKE_KEY = Spec("revoke_key", (string("key_id", required=True), integer("tenant_id", nullable=True)))
CREDIT = Spec(
    "credit",
    (
        TENANT,
        integer("amount_micro", required=True, doc="micro-USD; negative only for an adjustment"),
        string("kind", choices=CREDIT_KINDS),
        string("note", nullable=True, max_length=500),
        string("idempotency_key", nullable=True, max_length=200),
        CREATE,
    ),
    (_tenant_name, _positive_topup),
    checks=(_credit_ceiling,),
)
SET_TIER = Spec("set_tier", (TENANT, string("tier", required=True, nullable=True)), (_tenant_name,))
SET_CAP = Spec(
    "set_cap",
    (
        TENANT,
        integer("cap_micro", required=True, nullable=True, doc="micro-USD; null clears"),
        string("model", nullable=True),
    ),
    (_tenant_name, _positive_cap),
)
SET_TENANT_TPM = Spec(
    "set_tenant_tpm",
    (
        TENANT,
        integer(
            "tpm",
            required=True,
            nullable=True,
            minimum=1,
            maximum=LIMIT_FIELDS[2].maximum,
            doc="tokens per minute across the tenant's keys; null: [limits] tenant_tpm_default",
        ),
    ),
    (_tenant_name,),
)


# ------------------------------------------------------------------ database work (shared with the CLI)


def tenant_row(conn: sqlite3.Connection, name: str, create: bool = False) -> tuple[dict[str, Any], bool]:
    """The tenant of that name, and whether it was created now: an unknown name is a 404 unless
    ``create`` (so a typo never makes a tenant)."""
    if create:
        return tenant_store.get_or_create(conn, name)
    row = tenant_store.by_name(conn, name.strip())
    if row is None:
        raise GatewayError(
            "not_found",
            f"no tenant named {name[:200]!r}; create it first (create=true, or --create on the command line)",
            param="tenant",
        )
    return row, False


def mint_rows(
    conn: sqlite3.Connection, tenant: str, create: bool = False, **key: Any
) -> tuple[dict[str, Any], bool, dict[str, Any], str]:
    """Mint a key (creating the tenant only when ``create``): (tenant row, tenant created, key row, secret)."""
    t, created = tenant_row(conn, tenant, create)
    row, secret = key_store.mint(conn, t["id"], **key)
    return t, created, row, secret


def credit_rows(
    conn: sqlite3.Connection,
    tenant: str,
    amount_micro: int,
    kind: str,
    idem: str,
    note: str | None,
    origin: str,
    create: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Append one ledger entry (once per idempotency key): (tenant row, whether it was new)."""
    t, _ = tenant_row(conn, tenant, create)
    fresh = ledger_store.append(conn, t["id"], kind, amount_micro, idem, note=note, origin=origin)
    return t, fresh


def tier_rows(conn: sqlite3.Connection, tenant: str, tier: str | None) -> dict[str, Any]:
    """Put an existing tenant on a tier (or off it)."""
    tenant_row(conn, tenant)
    return tenant_store.set_tier(conn, tenant, tier)


def cap_rows(
    conn: sqlite3.Connection, tenant: str, cap_micro: int | None, model: str | None
) -> dict[str, Any]:
    """Set or clear an existing tenant's cap."""
    tenant_row(conn, tenant)
    return tenant_store.set_cap(conn, tenant, cap_micro, model)


def tpm_rows(conn: sqlite3.Connection, tenant: str, tpm: int | None) -> dict[str, Any]:
    """Set or clear an existing tenant's token rate."""
    tenant_row(conn, tenant)
    return tenant_store.set_tpm(conn, tenant, tpm)


def cap_model(catalog: Catalog, model: str | None) -> str | None:
    """A cap's model as the gateway names it (config names and aliases, the operator's aliases)."""
    return None if model is None else catalog.resolve(model).name


def _store(fn: Any) -> Any:
    """Run a store call; its own ``ValueError`` becomes a 400."""
    try:
        return fn()
    except ValueError as exc:
        raise bad(str(exc)) from None


# ------------------------------------------------------------------ actions


@validated(CREATE_TENANT)
async def create_tenant(rt: Runtime, name: str) -> dict[str, Any]:
    tenant, created = await rt.write(lambda c: _store(lambda: tenant_store.get_or_create(c, name)))
    rt.seen.saw_tenant(tenant)
    if created:
        rt.bus.publish("tenant.created", tenant_id=tenant["id"], name=tenant["name"])
    return tenant


@validated(MINT_KEY)
async def mint_key(
    rt: Runtime,
    tenant: str,
    *,
    kind: str = "payg",
    label: str | None = None,
    expires_at: float | None = None,
    models: list[str] | None = None,
    rpm: int | None = None,
    budget_micro: int | None = None,
    budget_period: str | None = None,
    tpm: int | None = None,
    create: bool = False,
) -> tuple[dict[str, Any], str]:
    """Mint a key (creating the tenant only when ``create``); returns (public key info, secret shown once)."""
    key = {
        "kind": kind,
        "label": label,
        "expires_at": expires_at,
        "models": models,
        "rpm": rpm,
        "budget_micro": budget_micro,
        "budget_period": budget_period,
        "tpm": tpm,
    }
    t, created, row, secret = await rt.write(lambda c: _store(lambda: mint_rows(c, tenant, create, **key)))
    rt.seen.saw_tenant(t)
    rt.seen.saw_key(row)
    if created:
        rt.bus.publish("tenant.created", tenant_id=t["id"], name=t["name"])
    rt.keyring.put(row)
    rt.bus.publish("key.created", key_id=row["id"], tenant=row["tenant"], kind=kind, label=label)
    return key_store.public(row), secret


@validated(REVOKE_KEY)
async def revoke_key(rt: Runtime, key_id: str, tenant_id: int | None = None) -> bool:
    done, row = await rt.write(lambda c: (key_store.revoke(c, key_id, tenant_id), key_store.get(c, key_id)))
    if row is not None and (tenant_id is None or row["tenant_id"] == tenant_id):
        rt.seen.saw_key(row)
        rt.keyring.put(row)
    if done:
        rt.bus.publish("key.revoked", key_id=key_id)
    return done


@validated(CREDIT)
async def credit(
    rt: Runtime,
    tenant: str,
    amount_micro: int,
    *,
    kind: str = "topup",
    note: str | None = None,
    idempotency_key: str | None = None,
    create: bool = False,
) -> int:
    """Add (or with a negative adjustment, remove) credit; returns the new balance in micro-USD."""
    idem = idempotency_key or f"{kind}:{time.time_ns()}"
    origin = rt.wallet.origin
    t, fresh = await rt.write(
        lambda c: _store(lambda: credit_rows(c, tenant, amount_micro, kind, idem, note, origin, create))
    )
    tenant_id = t["id"]
    rt.seen.saw_tenant(t)
    if fresh:
        await rt.wallet.credit(tenant_id, amount_micro)
        rt.bus.publish(
            "tenant.balance",
            tenant_id=tenant_id,
            balance_micro=rt.wallet.balance[tenant_id],
            note=f"{kind} {format_usd(amount_micro)}",
        )
    return rt.wallet.balance[tenant_id]


@validated(SET_TIER)
async def set_tier(rt: Runtime, tenant: str, tier: str | None) -> dict[str, Any]:
    """Put a tenant on a subscription tier by hand (active until removed), or take it off (``None``)."""
    check_tier(rt.cfg.tiers, tier)
    row = await rt.write(lambda conn: _store(lambda: tier_rows(conn, tenant, tier)))
    rt.seen.saw_tenant(row)
    rt.plans.put(row)
    rt.bus.publish(
        "tenant.subscription", tenant_id=row["id"], tier=tier, status=row.get("subscription_status")
    )
    return row


@validated(SET_CAP)
async def set_cap(
    rt: Runtime, tenant: str, cap_micro: int | None, *, model: str | None = None
) -> dict[str, Any]:
    """Set (or clear with ``None``) a tenant's per-call cap: for one model, or for every model."""
    model = cap_model(rt.catalog, model)
    row = await rt.write(lambda conn: _store(lambda: cap_rows(conn, tenant, cap_micro, model)))
    rt.seen.saw_tenant(row)
    rt.plans.put(row)
    rt.bus.publish("tenant.caps", tenant_id=row["id"], model=model, cap_micro=cap_micro)
    return row


@validated(SET_TENANT_TPM)
async def set_tenant_tpm(rt: Runtime, tenant: str, tpm: int | None) -> dict[str, Any]:
    """Limit a tenant to ``tpm`` tokens per minute across its keys (``None``: the config's default)."""
    row = await rt.write(lambda conn: _store(lambda: tpm_rows(conn, tenant, tpm)))
    rt.seen.saw_tenant(row)
    rt.plans.put(row)
    rt.bus.publish("tenant.tpm", tenant_id=row["id"], tpm=tpm)
    return row


async def tenants_overview(rt: Runtime) -> list[dict[str, Any]]:
    """Every tenant with balance, holds in flight, token rate, keys (with budget use) and spend today (for
    the console and admin API)."""
    day_start = time.time() - (time.time() % 86400)

    def work(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, int]]:
        return (
            tenant_store.all_tenants(conn),
            key_store.listing(conn),
            request_store.spend_since(conn, day_start),
        )

    tenants, keys, spend = await rt.read(work)
    out = []
    for t in tenants:
        tid = t["id"]
        out.append(
            {
                "id": tid,
                "name": t["name"],
                "tier": t.get("tier"),
                "subscription_status": t.get("subscription_status"),
                "balance_micro": rt.wallet.balance[tid],
                "held_micro": rt.wallet.held[tid],
                "available_micro": rt.wallet.available(tid),
                "spend_today_micro": spend.get(tid, 0),
                **rt.limits.tenant_status(tid),  # tpm (its own or the default), tokens_last_minute
                "own_tpm": t.get("tpm"),  # None: the config's default applies
                "keys": [
                    key_store.public(k) | rt.limits.key_status(k) for k in keys if k["tenant_id"] == tid
                ],
            }
        )
    return out


def tenant_view(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "name", "tier", "subscription_status", "per_call_cap_micro", "model_caps", "tpm")
    return {k: row.get(k) for k in keep}
