"""Operator actions: the one code path behind the console and the admin HTTP API.

Each action writes the database through the single writer, updates the running gateway's in-memory
state, and publishes an event. The CLI, which may run while the gateway does, writes the database
directly; the running gateway notices within a second (see ``Runtime._watch``).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from .billing.plans import check_tier
from .billing.pricing import format_usd
from .config import PROVIDERS
from .model import GatewayError
from .runtime import Runtime
from .store import accounts as account_store
from .store import keys as key_store
from .store import ledger as ledger_store
from .store import settings as settings_store
from .store import tenants as tenant_store


def _bad(message: str) -> GatewayError:
    return GatewayError("invalid_request", message)


async def create_tenant(rt: Runtime, name: str) -> dict[str, Any]:
    try:
        tenant, created = await rt.write(lambda c: tenant_store.get_or_create(c, name))
    except ValueError as exc:
        raise _bad(str(exc)) from None
    if created:
        rt.bus.publish("tenant.created", tenant_id=tenant["id"], name=tenant["name"])
    return tenant


async def mint_key(
    rt: Runtime,
    tenant: str,
    *,
    kind: str = "payg",
    label: str | None = None,
    expires_at: float | None = None,
    models: list[str] | None = None,
    rpm: int | None = None,
) -> tuple[dict[str, Any], str]:
    """Create the tenant if new and mint a key; returns (public key info, secret shown once)."""

    def work(conn: sqlite3.Connection) -> tuple[dict[str, Any], str]:
        t, _ = tenant_store.get_or_create(conn, tenant)
        return key_store.mint(
            conn, t["id"], kind=kind, label=label, expires_at=expires_at, models=models, rpm=rpm
        )

    try:
        row, secret = await rt.write(work)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    rt.keyring.put(row)
    rt.bus.publish("key.created", key_id=row["id"], tenant=row["tenant"], kind=kind, label=label)
    return key_store.public(row), secret


async def revoke_key(rt: Runtime, key_id: str, tenant_id: int | None = None) -> bool:
    done = await rt.write(lambda c: key_store.revoke(c, key_id, tenant_id))
    row = await rt.read(lambda c: key_store.get(c, key_id))
    if row is not None and (tenant_id is None or row["tenant_id"] == tenant_id):
        rt.keyring.put(row)
    if done:
        rt.bus.publish("key.revoked", key_id=key_id)
    return done


async def credit(
    rt: Runtime,
    tenant: str,
    amount_micro: int,
    *,
    kind: str = "topup",
    note: str | None = None,
    idempotency_key: str | None = None,
) -> int:
    """Add (or with a negative adjustment, remove) credit; returns the new balance in micro-USD."""
    if kind not in ("topup", "adjustment", "refund"):
        raise _bad("credit kind must be topup, adjustment or refund")
    if kind == "topup" and amount_micro <= 0:
        raise _bad("a top-up must be a positive amount")
    idem = idempotency_key or f"{kind}:{time.time_ns()}"

    def work(conn: sqlite3.Connection) -> tuple[int, bool]:
        t, _ = tenant_store.get_or_create(conn, tenant)
        fresh = ledger_store.append(
            conn, t["id"], kind, amount_micro, idem, note=note, origin=rt.wallet.origin
        )
        return t["id"], fresh

    tenant_id, fresh = await rt.write(work)
    if fresh:
        rt.wallet.credit(tenant_id, amount_micro)
        rt.bus.publish(
            "tenant.balance",
            tenant_id=tenant_id,
            balance_micro=rt.wallet.balance[tenant_id],
            note=f"{kind} {format_usd(amount_micro)}",
        )
    return rt.wallet.balance[tenant_id]


async def set_tier(rt: Runtime, tenant: str, tier: str | None) -> dict[str, Any]:
    """Put a tenant on a subscription tier by hand (active until removed), or take it off (``None``)."""
    check_tier(rt.cfg.tiers, tier)
    try:
        row = await rt.write(lambda conn: tenant_store.set_tier(conn, tenant, tier))
    except ValueError as exc:
        raise _bad(str(exc)) from None
    rt.plans.put(row)
    rt.bus.publish(
        "tenant.subscription", tenant_id=row["id"], tier=tier, status=row.get("subscription_status")
    )
    return row


async def set_cap(
    rt: Runtime, tenant: str, cap_micro: int | None, *, model: str | None = None
) -> dict[str, Any]:
    """Set (or clear with ``None``) a tenant's per-call cap: for one model, or for every model."""
    if model is not None:
        model = rt.catalog.resolve(model).name
    try:
        row = await rt.write(lambda conn: tenant_store.set_cap(conn, tenant, cap_micro, model))
    except ValueError as exc:
        raise _bad(str(exc)) from None
    rt.plans.put(row)
    rt.bus.publish("tenant.caps", tenant_id=row["id"], model=model, cap_micro=cap_micro)
    return row


async def tenants_overview(rt: Runtime) -> list[dict[str, Any]]:
    """Every tenant with balance, holds in flight, keys and spend today (for the console and admin API)."""
    day_start = time.time() - (time.time() % 86400)

    def work(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, int]]:
        from .store import requests as request_store

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
                "keys": [key_store.public(k) for k in keys if k["tenant_id"] == tid],
            }
        )
    return out


# ------------------------------------------------------------------ accounts


async def add_account(
    rt: Runtime,
    *,
    provider: str,
    label: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    priority: int = 0,
    weight: int = 1,
    models: list[str] | None = None,
    rpm: int | None = None,
    oauth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if provider not in PROVIDERS:
        raise _bad(f"unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
    if not api_key and not oauth:
        raise _bad("an account needs an api_key (or an OAuth flow)")
    if provider == "openai-compatible" and not base_url:
        raise _bad("openai-compatible accounts need a base_url")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise _bad("base_url must start with http:// or https://")
    _check_account_fields(priority=priority, weight=weight, models=models, rpm=rpm, label=label)
    assert rt.vault is not None
    label = label or f"{provider}-{int(time.time())}"
    secret = rt.vault.encrypt(api_key) if api_key else None
    oauth_enc = rt.vault.encrypt(__import__("json").dumps(oauth)) if oauth else None
    from .runtime import _default_base

    def work(conn: sqlite3.Connection) -> dict[str, Any]:
        if account_store.by_label(conn, label) is not None:
            raise ValueError(f"an account labelled {label!r} already exists")
        return account_store.insert(
            conn,
            label=label,
            provider=provider,
            base_url=base_url or _default_base(provider),
            auth="oauth" if oauth else "api_key",
            secret=secret,
            oauth=oauth_enc,
            priority=priority,
            weight=weight,
            models=models or [],
            rpm=rpm,
            enabled=1,
            source="db",
        )

    try:
        row = await rt.write(work)
    except (ValueError, sqlite3.IntegrityError) as exc:
        raise _bad(str(exc)) from None
    acc = rt.account_from_row(row)
    rt.pool.put(acc)
    rt.bus.publish("account.added", account=acc.id, label=acc.label, provider=provider)
    return acc.public()


def _account(rt: Runtime, ref: str) -> Any:
    acc = rt.pool.find(ref)
    if acc is None:
        raise GatewayError("not_found", f"no account {ref!r}")
    return acc


async def set_account_enabled(rt: Runtime, ref: str, enabled: bool) -> dict[str, Any]:
    acc = _account(rt, ref)
    acc.enabled = enabled
    acc.disabled_reason = None if enabled else "disabled by the operator"
    if enabled and acc.cause == "auth":
        acc.cause, acc.since, acc.failures = None, None, 0
    await rt.write(
        lambda c: account_store.update(c, acc.id, enabled=int(enabled), disabled_reason=acc.disabled_reason)
    )
    rt.pool.persist(acc)
    rt.bus.publish(
        "account.enabled" if enabled else "account.disabled",
        account=acc.id,
        label=acc.label,
        reason=acc.disabled_reason,
    )
    return acc.public()


def _check_account_fields(**fields: Any) -> None:
    """Reject values an account cannot have (bad operator input is a 400, never a crash later)."""
    for name in ("priority", "weight"):
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"{name} must be an integer")
    if fields.get("weight") is not None and fields["weight"] < 1:
        raise _bad("weight must be at least 1")
    rpm = fields.get("rpm")
    if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
        raise _bad("rpm must be a positive integer (or null for no limit)")
    models = fields.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise _bad("models must be a list of model names")
    label = fields.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip() or len(label) > 100):
        raise _bad("label must be a non-empty string of at most 100 characters")


UNSET: Any = object()


async def update_account(
    rt: Runtime,
    ref: str,
    *,
    label: str | None = None,
    priority: int | None = None,
    weight: int | None = None,
    models: list[str] | None = None,
    rpm: Any = UNSET,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Change an account's routing fields (``rpm=None`` removes the limit; leave a field out to keep it)."""
    acc = _account(rt, ref)
    _check_account_fields(
        priority=priority, weight=weight, models=models, rpm=None if rpm is UNSET else rpm, label=label
    )
    if base_url is not None and not (
        isinstance(base_url, str) and base_url.startswith(("http://", "https://"))
    ):
        raise _bad("base_url must start with http:// or https://")
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("label", label),
            ("priority", priority),
            ("weight", weight),
            ("models", models),
            ("base_url", base_url),
        )
        if v is not None
    }
    if rpm is not UNSET:
        changes["rpm"] = rpm
    if label is not None and label != acc.label and rt.pool.find(label) is not None:
        raise _bad(f"an account labelled {label!r} already exists")
    if changes:
        try:
            await rt.write(lambda c: account_store.update(c, acc.id, **changes))
        except sqlite3.IntegrityError as exc:
            raise _bad(str(exc)) from None
        for key, value in changes.items():
            setattr(acc, key, value)
        rt.bus.publish("account.updated", account=acc.id, label=acc.label, changes=sorted(changes))
    return acc.public()


async def reset_account(rt: Runtime, ref: str) -> dict[str, Any]:
    acc = _account(rt, ref)
    rt.pool.reset(acc)
    return acc.public()


async def prefer_account(rt: Runtime, ref: str) -> dict[str, Any]:
    """Make one account the preferred (active) one among those of its provider."""
    acc = _account(rt, ref)
    peers = [a for a in rt.pool.accounts.values() if a.provider == acc.provider]
    for a in peers:
        a.preferred = a is acc

    def work(conn: sqlite3.Connection) -> None:
        for a in peers:
            account_store.update(conn, a.id, preferred=int(a.preferred))

    await rt.write(work)
    rt.bus.publish("account.preferred", account=acc.id, label=acc.label)
    return acc.public()


async def clear_preferred(rt: Runtime, provider: str) -> None:
    """No preferred account for ``provider``: the routing strategy alone decides again."""
    peers = [a for a in rt.pool.accounts.values() if a.provider == provider and a.preferred]
    for a in peers:
        a.preferred = False

    def work(conn: sqlite3.Connection) -> None:
        for a in peers:
            account_store.update(conn, a.id, preferred=0)

    await rt.write(work)
    rt.bus.publish("account.preferred", account=None, provider=provider)


async def remove_account(rt: Runtime, ref: str) -> None:
    acc = _account(rt, ref)
    await rt.write(lambda c: account_store.update(c, acc.id, removed_at=time.time(), enabled=0))
    rt.pool.remove(acc.id)
    rt.bus.publish("account.removed", account=acc.id, label=acc.label)


async def account_usage(rt: Runtime, since: float | None = None) -> list[dict[str, Any]]:
    """Requests, tokens and cost per upstream account since ``since`` (default: the last 24 hours)."""
    start = time.time() - 86400 if since is None else since

    def work(conn: sqlite3.Connection) -> list[sqlite3.Row]:
        return conn.execute(
            "SELECT account_id, COUNT(*) AS requests, SUM(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok,"
            " SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors,"
            " SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
            " SUM(cache_read_tokens) AS cache_read_tokens,"
            " SUM(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write_tokens,"
            " SUM(cost_micro) AS cost_micro, MAX(started_at) AS last_used"
            " FROM requests WHERE started_at >= ? AND account_id IS NOT NULL GROUP BY account_id",
            (start,),
        ).fetchall()

    rows = {r["account_id"]: dict(r) for r in await rt.read(work)}
    now = time.time()
    out = []
    for acc in sorted(rt.pool, key=lambda a: (a.provider, a.label)):
        row = rows.pop(acc.id, None) or {}
        out.append(
            {
                "id": acc.id,
                "label": acc.label,
                "provider": acc.provider,
                "since": start,
                **{
                    k: int(row.get(k) or 0)
                    for k in (
                        "requests",
                        "ok",
                        "errors",
                        "input_tokens",
                        "output_tokens",
                        "cache_read_tokens",
                        "cache_write_tokens",
                        "cost_micro",
                    )
                },
                "last_used": row.get("last_used"),
                "inflight": acc.inflight,
                "rpm_used": acc.rpm_used(now),
                "served_since_start": acc.served,
                "errors_since_start": acc.errors,
            }
        )
    return out


async def refresh_quotas(rt: Runtime, ref: str | None = None) -> list[dict[str, Any]]:
    """Probe accounts (one, or every one) for fresh quota facts; see ``pool.probe``."""
    from .pool.probe import probe_all

    accounts = (
        [_account(rt, ref)] if ref is not None else sorted(rt.pool, key=lambda a: (a.provider, a.label))
    )
    if rt.http is None:
        raise GatewayError("unavailable", "the gateway is not running")
    return await probe_all(rt.http, rt.pool, rt.catalog, accounts, rt.oauth)


# ------------------------------------------------------------------ routing settings


async def set_strategy(rt: Runtime, strategy: str) -> None:
    from .config import STRATEGIES

    if strategy not in STRATEGIES:
        raise _bad(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    await rt.write(lambda c: settings_store.put(c, "strategy", strategy))
    rt.pool.strategy = strategy
    rt.bus.publish("routing.changed", strategy=strategy)


async def set_default_model(rt: Runtime, name: str) -> None:
    if name not in rt.catalog.models:
        raise GatewayError("not_found", f"no model {name!r}; configured: {', '.join(rt.catalog.models)}")
    await rt.write(lambda c: settings_store.put(c, "default_model", name))
    rt.catalog.default_model = name
    rt.bus.publish("routing.changed", default_model=name)


async def set_haiku_model(rt: Runtime, name: str) -> None:
    if name and name not in rt.catalog.models and name not in rt.catalog.aliases:
        raise GatewayError("not_found", f"no model {name!r}; configured: {', '.join(rt.catalog.models)}")
    await rt.write(lambda c: settings_store.put(c, "haiku_model", name))
    rt.catalog.haiku_model = name
    rt.bus.publish("routing.changed", haiku_model=name)


async def set_alias(rt: Runtime, alias: str, target: str | None) -> dict[str, str]:
    aliases = dict(rt.catalog.extra_aliases)
    if target is None:
        aliases.pop(alias, None)
    else:
        if target not in rt.catalog.models:
            raise GatewayError("not_found", f"no model {target!r}")
        if alias in rt.catalog.models:
            raise _bad(f"{alias!r} is a model name, not an alias")
        aliases[alias] = target
    await rt.write(lambda c: settings_store.put(c, "aliases", aliases))
    rt.catalog.extra_aliases = aliases
    rt.bus.publish("routing.changed", aliases=aliases)
    return rt.catalog.aliases


async def set_preset(
    rt: Runtime, route: str, system: str, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    from .config import ROUTES

    if route not in ROUTES:
        raise GatewayError("not_found", f"no preset route {route!r}; one of {', '.join(ROUTES)}")
    rt.presets[route] = {"system": system, "defaults": defaults or {}}
    presets = dict(rt.presets)
    await rt.write(lambda c: settings_store.put(c, "presets", presets))
    rt.bus.publish("routing.changed", preset=route)
    return rt.presets[route]
