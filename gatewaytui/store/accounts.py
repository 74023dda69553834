"""Upstream accounts and their durable health state. Secrets are stored encrypted (see ``vault``)."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any

FIELDS = (
    "label",
    "provider",
    "base_url",
    "auth",
    "secret",
    "oauth",
    "enabled",
    "disabled_reason",
    "priority",
    "weight",
    "models",
    "rpm",
    "preferred",
    "source",
    "removed_at",
)


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    d = dict(row)
    d["models"] = json.loads(d["models"]) if d.get("models") else []
    d["enabled"] = bool(d["enabled"])
    d["preferred"] = bool(d["preferred"])
    return d


def insert(conn: sqlite3.Connection, **fields: Any) -> dict[str, Any]:
    account_id = fields.pop("id", None) or "acc_" + secrets.token_hex(6)
    if "models" in fields and not isinstance(fields["models"], str):
        fields["models"] = json.dumps(fields["models"] or [])
    cols = ["id", "created_at", *fields]
    conn.execute(
        f"INSERT INTO accounts ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        (account_id, time.time(), *fields.values()),
    )
    return get(conn, account_id) or {}


def update(conn: sqlite3.Connection, account_id: str, **fields: Any) -> None:
    bad = set(fields) - set(FIELDS)
    if bad:
        raise ValueError(f"cannot update account fields {sorted(bad)}")
    if "models" in fields and not isinstance(fields["models"], str):
        fields["models"] = json.dumps(fields["models"] or [])
    if fields:
        cols = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(f"UPDATE accounts SET {cols} WHERE id = ?", (*fields.values(), account_id))


def get(conn: sqlite3.Connection, account_id: str) -> dict[str, Any] | None:
    return _row(conn.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone())


def by_label(conn: sqlite3.Connection, label: str) -> dict[str, Any] | None:
    return _row(conn.execute("SELECT * FROM accounts WHERE label = ?", (label,)).fetchone())


def listing(conn: sqlite3.Connection, *, include_removed: bool = False) -> list[dict[str, Any]]:
    sql = (
        "SELECT * FROM accounts"
        + ("" if include_removed else " WHERE removed_at IS NULL")
        + " ORDER BY created_at, id"
    )
    return [r for r in (_row(x) for x in conn.execute(sql)) if r]


def load_states(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    out = {}
    for r in conn.execute("SELECT * FROM account_state"):
        d = dict(r)
        d["model_cooldowns"] = json.loads(d["model_cooldowns"]) if d.get("model_cooldowns") else {}
        d["quota"] = json.loads(d["quota"]) if d.get("quota") else None
        out[d["account_id"]] = d
    return out


def save_state(conn: sqlite3.Connection, account_id: str, st: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO account_state (account_id, cooldown_until, cause, since, last_error, failures, model_cooldowns, quota, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(account_id) DO UPDATE SET"
        " cooldown_until = excluded.cooldown_until, cause = excluded.cause, since = excluded.since,"
        " last_error = excluded.last_error, failures = excluded.failures, model_cooldowns = excluded.model_cooldowns,"
        " quota = excluded.quota, updated_at = excluded.updated_at",
        (
            account_id,
            st.get("cooldown_until"),
            st.get("cause"),
            st.get("since"),
            st.get("last_error"),
            st.get("failures", 0),
            json.dumps(st.get("model_cooldowns") or {}),
            json.dumps(st["quota"]) if st.get("quota") else None,
            st.get("updated_at") or time.time(),
        ),
    )
