"""Operator settings that outlive a restart (default model, aliases, haiku lane, presets)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


def get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def put(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (key, json.dumps(value), time.time()),
    )


def all_settings(conn: sqlite3.Connection) -> dict[str, Any]:
    return {r[0]: json.loads(r[1]) for r in conn.execute("SELECT key, value FROM settings")}


def put_new(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Store ``value`` unless the key already has one (a concurrent first writer wins)."""
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
        (key, json.dumps(value), time.time()),
    )
