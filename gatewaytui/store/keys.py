"""Tenant API keys: only a SHA-256 hash is stored; the secret is shown once, at creation."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from typing import Any

KEY_PREFIX = "gw-"
KINDS = ("payg", "subscription")
ROLLING = re.compile(r"([1-9][0-9]{0,3})h")  # a budget over a rolling window of 1..9999 hours


def check_period(period: str) -> str:
    """A budget period: ``day``, ``month`` (calendar, UTC) or ``<N>h`` (rolling); else ValueError."""
    if period in ("day", "month") or ROLLING.fullmatch(period):
        return period
    raise ValueError(f"budget period must be day, month or a rolling window like 24h (got {period!r})")


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def mint(
    conn: sqlite3.Connection,
    tenant_id: int,
    *,
    kind: str = "payg",
    label: str | None = None,
    expires_at: float | None = None,
    models: list[str] | None = None,
    rpm: int | None = None,
    budget_micro: int | None = None,
    budget_period: str | None = None,
    tpm: int | None = None,
) -> tuple[dict[str, Any], str]:
    """A new key (its row and its secret). ``budget_micro`` per ``budget_period`` (day, month or ``<N>h``
    rolling; day when omitted) and ``tpm`` (tokens per minute) are enforced by ``billing.limits``."""
    if kind not in KINDS:
        raise ValueError(f"key kind must be one of {', '.join(KINDS)}")
    if label is not None and len(label) > 200:
        raise ValueError("label must be at most 200 characters")
    if rpm is not None and rpm <= 0:
        raise ValueError("rpm must be positive")
    if tpm is not None and tpm <= 0:
        raise ValueError("tpm must be positive")
    if budget_micro is not None and budget_micro <= 0:
        raise ValueError("a budget must be a positive amount")
    if budget_period is not None and budget_micro is None:
        raise ValueError("a budget period needs a budget")
    if budget_micro is not None:
        budget_period = check_period(budget_period or "day")
    secret = new_secret()
    key_id = "key_" + secrets.token_hex(8)
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, kind, prefix, hash, label, created_at, expires_at, models, rpm,"
        " budget_micro, budget_period, tpm) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key_id,
            tenant_id,
            kind,
            secret[:10],
            hash_key(secret),
            label,
            time.time(),
            expires_at,
            json.dumps(models) if models else None,
            rpm,
            budget_micro,
            budget_period,
            tpm,
        ),
    )
    return get(conn, key_id) or {}, secret


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    d = dict(row)
    d["models"] = json.loads(d["models"]) if d.get("models") else []
    return d


def get(conn: sqlite3.Connection, key_id: str) -> dict[str, Any] | None:
    return _row(
        conn.execute(
            "SELECT k.*, t.name AS tenant FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?",
            (key_id,),
        ).fetchone()
    )


def by_hash(conn: sqlite3.Connection, digest: str) -> dict[str, Any] | None:
    return _row(
        conn.execute(
            "SELECT k.*, t.name AS tenant FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = ?",
            (digest,),
        ).fetchone()
    )


def listing(conn: sqlite3.Connection, tenant_id: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT k.*, t.name AS tenant FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
    args: tuple[Any, ...] = ()
    if tenant_id is not None:
        sql += " WHERE k.tenant_id = ?"
        args = (tenant_id,)
    return [r for r in (_row(x) for x in conn.execute(sql + " ORDER BY k.created_at", args)) if r]


def revoke(conn: sqlite3.Connection, key_id: str, tenant_id: int | None = None) -> bool:
    sql = "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
    args: tuple[Any, ...] = (time.time(), key_id)
    if tenant_id is not None:
        sql += " AND tenant_id = ?"
        args += (tenant_id,)
    return conn.execute(sql, args).rowcount > 0


def state(key: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    if key.get("revoked_at"):
        return "revoked"
    if key.get("expires_at") and key["expires_at"] <= now:
        return "expired"
    return "active"


def public(key: dict[str, Any]) -> dict[str, Any]:
    """A key as shown to people and APIs: never the hash, never the secret."""
    return {
        "id": key["id"],
        "tenant": key.get("tenant"),
        "kind": key["kind"],
        "label": key.get("label"),
        "prefix": key["prefix"],
        "created_at": key["created_at"],
        "expires_at": key.get("expires_at"),
        "revoked_at": key.get("revoked_at"),
        "models": key.get("models") or [],
        "rpm": key.get("rpm"),
        "tpm": key.get("tpm"),
        "budget_micro": key.get("budget_micro"),
        "budget_period": key.get("budget_period"),
        "state": state(key),
    }
