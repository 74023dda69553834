"""The append-only credit ledger. A balance is a sum, never a stored number.

Entry kinds and signs (amounts in integer micro-USD):
  topup       +amount   credit bought or granted
  hold        -worst    a request's worst case, reserved before it went upstream
  settle      +(worst - cost)   returns the unused part of the hold; hold + settle = -cost
  release     +worst    the request failed: the whole hold comes back
  refund      -amount   a Stripe refund reverses credit
  adjustment  ±amount   operator correction
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

KINDS = ("topup", "hold", "settle", "release", "refund", "adjustment")


INSERT = (
    "INSERT OR IGNORE INTO ledger (tenant_id, kind, amount_micro, request_id, idempotency_key, note, origin, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def entry(
    tenant_id: int,
    kind: str,
    amount_micro: int,
    idempotency_key: str,
    *,
    request_id: str | None = None,
    note: str | None = None,
    origin: str | None = None,
) -> tuple[Any, ...]:
    """One checked entry as ``INSERT`` parameters (an entry whose idempotency key was used is ignored)."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    if not isinstance(amount_micro, int) or isinstance(amount_micro, bool):
        raise TypeError("ledger amounts are integer micro-USD")
    return (tenant_id, kind, amount_micro, request_id, idempotency_key, note, origin, time.time())


def append(
    conn: sqlite3.Connection,
    tenant_id: int,
    kind: str,
    amount_micro: int,
    idempotency_key: str,
    **fields: Any,
) -> bool:
    """Append one entry (``fields``: request_id, note, origin); False, and nothing written, if the idempotency
    key was already used."""
    return conn.execute(INSERT, entry(tenant_id, kind, amount_micro, idempotency_key, **fields)).rowcount > 0


def balance(conn: sqlite3.Connection, tenant_id: int) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(amount_micro), 0) FROM ledger WHERE tenant_id = ?", (tenant_id,)
    ).fetchone()
    return int(row[0])


def balances(conn: sqlite3.Connection) -> dict[int, int]:
    return {
        int(r[0]): int(r[1])
        for r in conn.execute("SELECT tenant_id, SUM(amount_micro) FROM ledger GROUP BY tenant_id")
    }


def entries(conn: sqlite3.Connection, tenant_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM ledger WHERE tenant_id = ? ORDER BY id DESC LIMIT ?", (tenant_id, limit)
    )
    return [dict(r) for r in rows]


def external_since(conn: sqlite3.Connection, last_id: int, origin: str) -> list[dict[str, Any]]:
    """Entries written by other processes (the CLI) after ``last_id``."""
    rows = conn.execute(
        "SELECT id, tenant_id, amount_micro FROM ledger WHERE id > ? AND (origin IS NULL OR origin != ?) ORDER BY id",
        (last_id, origin),
    )
    return [dict(r) for r in rows]


def max_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger").fetchone()[0])


def unsettled_holds(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Holds with neither a settle nor a release (only possible after a crash mid-write)."""
    rows = conn.execute(
        "SELECT h.* FROM ledger h WHERE h.kind = 'hold' AND NOT EXISTS ("
        " SELECT 1 FROM ledger s WHERE s.request_id = h.request_id AND s.kind IN ('settle', 'release'))"
    )
    return [dict(r) for r in rows]
