"""Tenants: who owns keys, credits and a subscription."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


def get_or_create(conn: sqlite3.Connection, name: str) -> tuple[dict[str, Any], bool]:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("tenant name must be 1-200 characters")
    row = conn.execute("SELECT * FROM tenants WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return dict(row), False
    row = conn.execute(
        "INSERT INTO tenants (name, created_at) VALUES (?, ?) RETURNING *", (name, time.time())
    ).fetchone()
    return dict(row), True


def by_name(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM tenants WHERE name = ?", (name,)).fetchone()
    return dict(row) if row else None


def by_id(conn: sqlite3.Connection, tenant_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    return dict(row) if row else None


def all_tenants(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute("SELECT * FROM tenants ORDER BY name")]


def update(conn: sqlite3.Connection, tenant_id: int, **fields: Any) -> None:
    allowed = {
        "tier",
        "subscription_status",
        "subscription_id",
        "period_end",
        "stripe_customer_id",
        "per_call_cap_micro",
        "model_caps",
        "tpm",
    }
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"cannot update tenant fields {sorted(bad)}")
    if not fields:
        return
    cols = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE tenants SET {cols} WHERE id = ?", (*fields.values(), tenant_id))


def set_tier(conn: sqlite3.Connection, name: str, tier: str | None) -> dict[str, Any]:
    """Put a tenant on a tier by hand (active until removed) or take it off (``None``); creates the tenant."""
    t, _ = get_or_create(conn, name)
    update(conn, t["id"], tier=tier, subscription_status="active" if tier else None, period_end=None)
    return by_id(conn, t["id"]) or t


def set_tpm(conn: sqlite3.Connection, name: str, tpm: int | None) -> dict[str, Any]:
    """Limit a tenant to ``tpm`` tokens per minute across its keys (``None``: no limit); creates the tenant."""
    if tpm is not None and (isinstance(tpm, bool) or not isinstance(tpm, int) or tpm <= 0):
        raise ValueError("a token rate must be a positive number of tokens per minute")
    t, _ = get_or_create(conn, name)
    update(conn, t["id"], tpm=tpm)
    return by_id(conn, t["id"]) or t


def set_cap(
    conn: sqlite3.Connection, name: str, cap_micro: int | None, model: str | None = None
) -> dict[str, Any]:
    """Set (or clear with ``None``) a tenant's per-call cap in micro-USD: for one model, or for every model."""
    if cap_micro is not None and (
        isinstance(cap_micro, bool) or not isinstance(cap_micro, int) or cap_micro <= 0
    ):
        raise ValueError("a per-call cap must be a positive number of micro-USD")
    t, _ = get_or_create(conn, name)
    if model is None:
        update(conn, t["id"], per_call_cap_micro=cap_micro)
    else:
        caps = json.loads(t["model_caps"]) if t.get("model_caps") else {}
        if cap_micro is None:
            caps.pop(model, None)
        else:
            caps[model] = cap_micro
        update(conn, t["id"], model_caps=json.dumps(caps) if caps else None)
    return by_id(conn, t["id"]) or t
