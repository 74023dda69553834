"""Stripe bookkeeping: processed webhook events, paid top-ups (so refunds can be reversed), lookups."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def claim_event(conn: sqlite3.Connection, event_id: str, event_type: str) -> bool:
    """Record a webhook event id; False if it was already processed (run inside the same transaction)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO stripe_events (id, type, created_at) VALUES (?, ?, ?)",
        (event_id, event_type, time.time()),
    )
    return cur.rowcount > 0


def record_payment(
    conn: sqlite3.Connection, payment_intent: str, tenant_id: int, session_id: str, amount_micro: int
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO stripe_payments (payment_intent, tenant_id, session_id, amount_micro, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (payment_intent, tenant_id, session_id, amount_micro, time.time()),
    )


def payment(conn: sqlite3.Connection, payment_intent: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM stripe_payments WHERE payment_intent = ?", (payment_intent,)).fetchone()
    return dict(row) if row else None


def set_refunded(conn: sqlite3.Connection, payment_intent: str, refunded_micro: int) -> None:
    conn.execute(
        "UPDATE stripe_payments SET refunded_micro = ? WHERE payment_intent = ?",
        (refunded_micro, payment_intent),
    )


def tenant_by_customer(conn: sqlite3.Connection, customer_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM tenants WHERE stripe_customer_id = ?", (customer_id,)).fetchone()
    return dict(row) if row else None


def tenant_by_subscription(conn: sqlite3.Connection, subscription_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM tenants WHERE subscription_id = ?", (subscription_id,)).fetchone()
    return dict(row) if row else None


def event_time(conn: sqlite3.Connection, tenant_id: int) -> float | None:
    """The ``created`` time of the newest Stripe event applied to this tenant's subscription."""
    row = conn.execute("SELECT stripe_event_at FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    return row[0] if row else None


def set_event_time(conn: sqlite3.Connection, tenant_id: int, created: float) -> None:
    conn.execute("UPDATE tenants SET stripe_event_at = ? WHERE id = ?", (created, tenant_id))
