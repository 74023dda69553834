"""Tenants: who owns keys, credits and a subscription."""

from __future__ import annotations

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
    cur = conn.execute("INSERT INTO tenants (name, created_at) VALUES (?, ?)", (name, time.time()))
    return dict(conn.execute("SELECT * FROM tenants WHERE id = ?", (cur.lastrowid,)).fetchone()), True


def by_name(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM tenants WHERE name = ?", (name,)).fetchone()
    return dict(row) if row else None


def by_id(conn: sqlite3.Connection, tenant_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    return dict(row) if row else None


def all_tenants(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute("SELECT * FROM tenants ORDER BY name")]


def update(conn: sqlite3.Connection, tenant_id: int, **fields: Any) -> None:
    allowed = {"tier", "subscription_status", "subscription_id", "period_end", "stripe_customer_id", "per_call_cap_micro", "model_caps"}
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"cannot update tenant fields {sorted(bad)}")
    if not fields:
        return
    cols = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE tenants SET {cols} WHERE id = ?", (*fields.values(), tenant_id))
