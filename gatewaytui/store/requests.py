"""Per-request usage rows and per-day aggregates."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import orjson

COLUMNS = (
    "id",
    "tenant_id",
    "key_id",
    "route",
    "protocol",
    "model",
    "upstream_model",
    "account_id",
    "stream",
    "status",
    "http_status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_micro",
    "hold_micro",
    "line_items",
    "price",
    "error",
    "attempts",
    "started_at",
    "ttft_ms",
    "duration_ms",
    "day",
    "requested_model",
)
INSERT = f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A usage row as ``INSERT`` parameters (line items and price as JSON text)."""
    out = []
    for col in COLUMNS:
        v = row.get(col)
        if col in ("line_items", "price") and v is not None and not isinstance(v, str):
            v = orjson.dumps(v).decode()
        out.append(v)
    return tuple(out)


def insert(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    conn.execute(INSERT, values(row))


def get(conn: sqlite3.Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    for col in ("line_items", "price"):
        d[col] = json.loads(d[col]) if d.get(col) else None
    return d


def recent(conn: sqlite3.Connection, limit: int = 50, tenant_id: int | None = None) -> list[dict[str, Any]]:
    if tenant_id is None:
        rows = conn.execute("SELECT * FROM requests ORDER BY started_at DESC LIMIT ?", (limit,))
    else:
        rows = conn.execute(
            "SELECT * FROM requests WHERE tenant_id = ? ORDER BY started_at DESC LIMIT ?", (tenant_id, limit)
        )
    return [dict(r) for r in rows]


def daily(conn: sqlite3.Connection, tenant_id: int, day_from: str, day_to: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT day, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
        " SUM(cache_read_tokens) AS cache_read_tokens,"
        " SUM(cache_write_5m_tokens + cache_write_1h_tokens) AS cache_write_tokens, SUM(cost_micro) AS cost_micro"
        " FROM requests WHERE tenant_id = ? AND day >= ? AND day <= ? GROUP BY day ORDER BY day",
        (tenant_id, day_from, day_to),
    )
    return [dict(r) for r in rows]


def tokens_since(conn: sqlite3.Connection, tenant_id: int, since: float) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens), 0)"
        " FROM requests WHERE tenant_id = ? AND started_at >= ? AND route IS NOT NULL AND route != 'v1'",
        (tenant_id, since),
    ).fetchone()
    return int(row[0])


def spend_since(conn: sqlite3.Connection, since: float) -> dict[int, int]:
    rows = conn.execute(
        "SELECT tenant_id, SUM(cost_micro) FROM requests WHERE started_at >= ? GROUP BY tenant_id", (since,)
    )
    return {int(r[0]): int(r[1] or 0) for r in rows if r[0] is not None}
