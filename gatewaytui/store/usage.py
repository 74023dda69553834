"""Usage reads: tenants' per-day totals, subscription tokens of the last 24 hours, a key's spend."""

from __future__ import annotations

import sqlite3

TOKENS_SQL = "(r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_5m_tokens + r.cache_write_1h_tokens)"


def daily(conn: sqlite3.Connection, tenant_id: int, day_from: str, day_to: str) -> dict[str, dict[str, int]]:
    """Per UTC day (``YYYY-MM-DD``): requests, tokens by kind and cost, for days that had requests."""
    rows = conn.execute(
        "SELECT day, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
        " SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,"
        " SUM(cache_write_1h_tokens) AS cache_write_1h_tokens, SUM(reasoning_tokens) AS reasoning_tokens,"
        " SUM(cost_micro) AS cost_micro"
        " FROM requests WHERE tenant_id = ? AND day >= ? AND day <= ? GROUP BY day",
        (tenant_id, day_from, day_to),
    )
    return {r["day"]: {k: int(r[k] or 0) for k in r.keys() if k != "day"} for r in rows}


def subscription_usage(conn: sqlite3.Connection, tenant_id: int, since: float) -> list[tuple[float, int]]:
    """(end time, tokens) of the tenant's subscription-key requests that ended after ``since``."""
    rows = conn.execute(
        f"SELECT r.started_at + COALESCE(r.duration_ms, 0) / 1000.0 AS ended, {TOKENS_SQL} AS tokens"
        " FROM requests r JOIN api_keys k ON k.id = r.key_id"
        " WHERE r.tenant_id = ? AND k.kind = 'subscription' AND r.started_at >= ? ORDER BY ended",
        (tenant_id, since - 86400),
    )
    return [(float(r[0]), int(r[1])) for r in rows if r[0] >= since and r[1]]


def key_costs(conn: sqlite3.Connection, key_id: str, since: float) -> list[tuple[float, int]]:
    """(start time, cost) of the key's billed requests that started at or after ``since``, oldest first."""
    rows = conn.execute(
        "SELECT started_at, cost_micro FROM requests WHERE key_id = ? AND started_at >= ? AND cost_micro != 0"
        " ORDER BY started_at",
        (key_id, since),
    )
    return [(float(r[0]), int(r[1])) for r in rows]
