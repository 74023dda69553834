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


_JSON_COLUMNS = tuple(COLUMNS.index(col) for col in ("line_items", "price"))


def values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A usage row as ``INSERT`` parameters (line items and price as JSON text)."""
    out = list(map(row.get, COLUMNS))  # a missing column is NULL
    for i in _JSON_COLUMNS:
        v = out[i]
        if v is not None and not isinstance(v, str):
            out[i] = orjson.dumps(v).decode()
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


# ------------------------------------------------------------------ the console's history

HISTORY_FILTERS = ("tenant", "model", "account", "status")
HISTORY_SORTS = {  # a sort name -> the SQL it orders by (only these reach the query)
    "started": "r.started_at",
    "tenant": "tenant",
    "model": "r.model",
    "account": "account",
    "status": "r.http_status",
    "tokens": "r.output_tokens",
    "ttft": "r.ttft_ms",
    "time": "r.duration_ms",
    "cost": "r.cost_micro",
}
HISTORY_MAX = 5_000


def history(
    conn: sqlite3.Connection,
    *,
    filters: dict[str, str] | None = None,
    text: str = "",
    sort: str = "started",
    descending: bool = True,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Finished requests with their tenant, key and account names, for the console's scrollable history.

    ``filters`` match by field (case-insensitive substring; ``status`` also takes ``ok``/``error``/``cancelled``
    or an HTTP code); ``text`` matches any of id, tenant, model, account, key label and error. Unknown filter
    or sort names raise ``ValueError``."""
    unknown = set(filters or {}) - set(HISTORY_FILTERS)
    if unknown:
        raise ValueError(f"unknown filter {sorted(unknown)[0]!r}; one of {', '.join(HISTORY_FILTERS)}")
    if sort not in HISTORY_SORTS:
        raise ValueError(f"unknown sort {sort!r}; one of {', '.join(HISTORY_SORTS)}")
    where: list[str] = []
    args: list[Any] = []
    for name, value in (filters or {}).items():
        like = f"%{_escape(value.strip())}%"
        if name == "status":
            where.append("(r.status LIKE ? ESCAPE '\\' OR CAST(r.http_status AS TEXT) LIKE ? ESCAPE '\\')")
            args += [like, like]
        else:
            column = {"tenant": "t.name", "model": "r.model", "account": "a.label"}[name]
            where.append(f"{column} LIKE ? ESCAPE '\\'")
            args.append(like)
    if text.strip():
        like = f"%{_escape(text.strip())}%"
        fields = ("r.id", "t.name", "r.model", "a.label", "k.label", "r.error")
        where.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
        args += [like] * len(fields)
    order = f"{HISTORY_SORTS[sort]} {'DESC' if descending else 'ASC'}, r.started_at DESC"
    rows = conn.execute(
        "SELECT r.*, t.name AS tenant, a.label AS account, k.label AS key_label FROM requests r"
        " LEFT JOIN tenants t ON t.id = r.tenant_id LEFT JOIN accounts a ON a.id = r.account_id"
        " LEFT JOIN api_keys k ON k.id = r.key_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {order} LIMIT ?",
        (*args, max(1, min(int(limit), HISTORY_MAX))),
    )
    out = []
    for row in rows:
        d = dict(row)
        d.pop("price", None)
        d["line_items"] = json.loads(d["line_items"]) if d.get("line_items") else None
        out.append(d)
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
