"""PostgreSQL only: key budgets and token rates shared by every instance (schema ``m009``).

``admit`` runs the whole admission of a key with a budget, a token rate or an RPM limit in one statement
(``gatewaytui_admit``): the tenant's credit row, the key's budget row and each token-rate scope's advisory
lock (token rates, requests per minute) are taken in that order, every check reads afresh under those locks, and only then is anything
written, so PostgreSQL serializes every instance's admissions of the key exactly as it serializes credit.
The budget hold is a column of the request's credit hold: it has the same owner and lease and ends with it
(``store/credit.py``). A key's spend is kept per hour by a trigger on the request rows; token and request
counts per scope and second of the database's clock.
"""

from __future__ import annotations

from typing import Any

ADMIT = "SELECT verdict, at_second FROM gatewaytui_admit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
KEEP_RATES_S = 120  # token-rate counts older than this are dropped (the window is 60 s)
KEEP_SPEND_HOURS = 10_000  # spend per hour kept (the longest rolling budget is 9999 h)


async def admit(
    conn: Any,
    *,
    request_id: str,
    tenant_id: int,
    amount: int,
    owner: str,
    resize: bool,
    key_id: str,
    budget: int | None,
    key_amount: int,
    from_hour: int,
    scopes: list[str],
    limits: list[int],
    amounts: list[int],
) -> tuple[str, int]:
    """(verdict, second): ``ok`` (everything reserved; each scope's amount was counted in ``second``),
    ``credit``, ``budget``, ``rate:<n>`` (the n-th scope, from 1, is full) or ``gone`` (a resize whose hold
    was released). Resizing, the amounts are differences (only growth is checked). Scopes in sorted order
    (the order their locks are taken)."""
    cur = await conn.execute(
        ADMIT,
        (
            request_id,
            tenant_id,
            amount,
            owner,
            resize,
            key_id,
            budget,
            key_amount,
            from_hour,
            scopes,
            limits,
            amounts,
        ),
    )
    row = await cur.fetchone()
    return str(row[0]), int(row[1])


async def spend(conn: Any, key_id: str, from_hour: int) -> tuple[int, list[tuple[int, int]]]:
    """A key's budget held by requests in flight on every instance, and its spend per hour since
    ``from_hour`` (oldest first)."""
    cur = await conn.execute("SELECT held FROM key_budget WHERE key_id = %s", (key_id,))
    row = await cur.fetchone()
    cur = await conn.execute(
        "SELECT hour, spent FROM key_spend WHERE key_id = %s AND hour >= %s ORDER BY hour",
        (key_id, from_hour),
    )
    return (int(row[0]) if row else 0), [(int(h), int(s)) for h, s in await cur.fetchall()]


async def rate(conn: Any, scope: str, since: int) -> list[tuple[int, int]]:
    """A scope's tokens per second after ``since`` (oldest first)."""
    cur = await conn.execute(
        "SELECT second, tokens FROM token_rates WHERE scope = %s AND second > %s ORDER BY second",
        (scope, since),
    )
    return [(int(s), int(t)) for s, t in await cur.fetchall()]


async def correct(conn: Any, corrections: dict[tuple[str, int], int]) -> None:
    """Take tokens counted as a worst case back off their scope and second; rows in (scope, second) order,
    the order admission takes them, so concurrent corrections cannot deadlock."""
    async with conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(
                "UPDATE token_rates SET tokens = tokens - %s WHERE scope = %s AND second = %s",
                [(n, scope, second) for (scope, second), n in sorted(corrections.items())],
            )


async def prune(conn: Any, now: int) -> None:
    """Drop token-rate counts out of every window, and spend per hour older than any budget reads."""
    await conn.execute("DELETE FROM token_rates WHERE second < %s", (now - KEEP_RATES_S,))
    await conn.execute("DELETE FROM key_spend WHERE hour < %s", (now // 3600 - KEEP_SPEND_HOURS,))


# synchronous reads for the status surfaces (``/tenant/keys``, the console), on a reader connection
SPEND_SQL = (
    "SELECT (SELECT held FROM key_budget WHERE key_id = ?),"
    " (SELECT SUM(spent) FROM key_spend WHERE key_id = ? AND hour >= ?)"
)
RATE_SQL = "SELECT SUM(tokens) FROM token_rates WHERE scope = ? AND second > ?"


def spend_now(conn: Any, key_id: str, from_hour: int) -> tuple[int, int]:
    """(held across the cluster, spent since ``from_hour``)."""
    held, spent = conn.execute(SPEND_SQL, (key_id, key_id, from_hour)).fetchone()
    return int(held or 0), int(spent or 0)


def tokens_now(conn: Any, scope: str, since: int) -> int:
    return int(conn.execute(RATE_SQL, (scope, since)).fetchone()[0] or 0)
