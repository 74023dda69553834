"""Upstream-account actions and views: add, change, enable/disable, prefer, reset, remove, usage, quota.

Each action is checked by its spec (``spec.validated``) before it touches anything; adding an account ends
in ``pool.enroll``, which an OAuth sign-in shares.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..config import PROVIDERS
from ..model import GatewayError
from ..pool.account import Account
from ..pool.enroll import enroll
from ..pool.pool import SERVES
from ..pool.probe import probe_all
from ..store import accounts as account_store
from .spec import Field, Spec, bad, integer, string, validated

if TYPE_CHECKING:
    from ..runtime import Runtime

PROVIDER = string("provider", required=True, choices=PROVIDERS)
REF = string("ref", required=True, doc="account id or label")
LABEL = string("label", nullable=True, max_length=100)
ROUTING_FIELDS = (
    integer("priority"),
    integer("weight", minimum=1),
    Field("models", "strings", nullable=True, doc="upstream model allow-list"),
    integer("rpm", nullable=True, minimum=1, doc="requests per minute (null: no limit)"),
)


def _label_not_blank(args: dict[str, Any]) -> None:
    if args.get("label") is not None and not args["label"].strip():
        raise bad("label must be a non-empty string of at most 100 characters", "label")


def _credentials(args: dict[str, Any]) -> None:
    if not args.get("api_key"):
        raise bad("an account needs an api_key (or an OAuth flow)", "api_key")
    if args.get("provider") == "openai-compatible" and not args.get("base_url"):
        raise bad("openai-compatible accounts need a base_url", "base_url")


ADD_ACCOUNT = Spec(
    "add_account",
    (
        PROVIDER,
        LABEL,
        string("api_key", nullable=True),
        string("base_url", nullable=True, url=True),
        *ROUTING_FIELDS,
    ),
    (_label_not_blank, _credentials),
)
UPDATE_ACCOUNT = Spec(
    "update_account",
    (REF, LABEL, string("base_url", nullable=True, url=True), *ROUTING_FIELDS),
    (_label_not_blank,),
)
SET_ACCOUNT_ENABLED = Spec("set_account_enabled", (REF, Field("enabled", "boolean", required=True)))
RESET_ACCOUNT = Spec("reset_account", (REF,))
PREFER_ACCOUNT = Spec("prefer_account", (REF,))
REMOVE_ACCOUNT = Spec("remove_account", (REF,))
CLEAR_PREFERRED = Spec("clear_preferred", (PROVIDER,))


def find(rt: Runtime, ref: str) -> Account:
    acc = rt.pool.find(ref)
    if acc is None:
        raise GatewayError("not_found", f"no account {ref!r}")
    return acc


@validated(ADD_ACCOUNT)
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
) -> dict[str, Any]:
    try:
        return await enroll(
            rt,
            provider=provider,
            label=label,
            api_key=api_key,
            base_url=base_url,
            priority=priority,
            weight=weight,
            models=models,
            rpm=rpm,
        )
    except ValueError as exc:  # the label is taken (``enroll``'s only clash)
        raise bad(str(exc), "label") from None


@validated(SET_ACCOUNT_ENABLED)
async def set_account_enabled(rt: Runtime, ref: str, enabled: bool) -> dict[str, Any]:
    acc = find(rt, ref)
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


@validated(UPDATE_ACCOUNT)
async def update_account(rt: Runtime, ref: str, **changes: Any) -> dict[str, Any]:
    """Change an account's routing fields (``rpm=None`` removes the limit; leave a field out to keep it).

    Only ``rpm`` may be cleared with ``None``; any other field given as ``None`` is kept as it is.
    """
    acc = find(rt, ref)
    changes = {k: v for k, v in changes.items() if v is not None or k == "rpm"}
    label = changes.get("label")
    if label is not None and label != acc.label and rt.pool.find(label) is not None:
        raise bad(f"an account labelled {label!r} already exists")
    if changes:
        try:
            await rt.write(lambda c: account_store.update(c, acc.id, **changes))
        except sqlite3.IntegrityError as exc:
            raise bad(str(exc)) from None
        for key, value in changes.items():
            setattr(acc, key, value)
        rt.bus.publish("account.updated", account=acc.id, label=acc.label, changes=sorted(changes))
    return acc.public()


@validated(RESET_ACCOUNT)
async def reset_account(rt: Runtime, ref: str) -> dict[str, Any]:
    acc = find(rt, ref)
    rt.pool.reset(acc)
    return acc.public()


async def _set_preferred(rt: Runtime, provider: str, chosen: Account | None) -> None:
    peers = [a for a in rt.pool.accounts.values() if a.provider == provider]
    for a in peers:
        a.preferred = a is chosen

    def work(conn: sqlite3.Connection) -> None:
        for a in peers:
            account_store.update(conn, a.id, preferred=int(a.preferred))

    await rt.write(work)


@validated(PREFER_ACCOUNT)
async def prefer_account(rt: Runtime, ref: str) -> dict[str, Any]:
    """Make one account the preferred (active) one among those of its provider."""
    acc = find(rt, ref)
    await _set_preferred(rt, acc.provider, acc)
    rt.bus.publish("account.preferred", account=acc.id, label=acc.label)
    return acc.public()


@validated(CLEAR_PREFERRED)
async def clear_preferred(rt: Runtime, provider: str) -> None:
    """No preferred account for ``provider``: the routing strategy alone decides again."""
    await _set_preferred(rt, provider, None)
    rt.bus.publish("account.preferred", account=None, provider=provider)


@validated(REMOVE_ACCOUNT)
async def remove_account(rt: Runtime, ref: str) -> None:
    acc = find(rt, ref)
    await rt.write(lambda c: account_store.update(c, acc.id, removed_at=time.time(), enabled=0))
    rt.pool.remove(acc.id)
    rt.bus.publish("account.removed", account=acc.id, label=acc.label)


# ------------------------------------------------------------------ views


def _sorted(rt: Runtime) -> list[Account]:
    return sorted(rt.pool, key=lambda a: (a.provider, a.label))


STATUS_FIELDS = (
    "id",
    "label",
    "provider",
    "health",
    "enabled",
    "disabled_reason",
    "preferred",
    "cause",
    "since",
    "cooldown_until",
    "last_error",
    "inflight",
    "rpm",
    "rpm_used",
    "model_cooldowns",
)


def status(rt: Runtime) -> dict[str, Any]:
    """Health counts, the next recovery, and one slim row per account."""
    snap = rt.pool.snapshot()
    now = time.time()
    counts = {
        h: sum(1 for a in snap if a["health"] == h) for h in ("healthy", "cooldown", "throttled", "disabled")
    }
    waits = [a["cooldown_until"] - now for a in snap if a["enabled"] and a["cooldown_until"]]
    return {
        "strategy": rt.pool.strategy,
        "total": len(snap),
        **counts,
        "next_recovery_s": round(max(0.0, min(waits)), 1) if waits else None,
        "accounts": [{k: a[k] for k in STATUS_FIELDS} for a in snap],
    }


def models_served(rt: Runtime) -> list[dict[str, Any]]:
    """Which account serves which configured model, and whether it can right now."""
    now = time.time()
    out = []
    for acc in _sorted(rt):
        models = []
        for m in rt.catalog.models.values():
            module = rt.catalog.provider_module(m)
            if acc.provider in SERVES.get(module, (module,)) and acc.serves(m.upstream, m.name):
                until = acc.model_cooldowns.get(m.upstream, 0)
                models.append(
                    {
                        "name": m.name,
                        "upstream": m.upstream,
                        "available": acc.enabled and until <= now,
                        "cooldown_until": until if until > now else None,
                    }
                )
        out.append(
            {
                "id": acc.id,
                "label": acc.label,
                "provider": acc.provider,
                "restricted": bool(acc.models),
                "health": acc.health(now),
                "models": models,
            }
        )
    return out


def quotas(rt: Runtime) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"id": a.id, "label": a.label, "provider": a.provider, "health": a.health(now), "quota": a.quota}
        for a in _sorted(rt)
    ]


USAGE_FIELDS = (
    "requests",
    "ok",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_micro",
)


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
    for acc in _sorted(rt):
        row = rows.pop(acc.id, None) or {}
        out.append(
            {
                "id": acc.id,
                "label": acc.label,
                "provider": acc.provider,
                "since": start,
                **{k: int(row.get(k) or 0) for k in USAGE_FIELDS},
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
    accounts = [find(rt, ref)] if ref is not None else _sorted(rt)
    if rt.http is None:
        raise GatewayError("unavailable", "the gateway is not running")
    return await probe_all(rt.http, rt.pool, rt.catalog, accounts, rt.oauth)
