"""PostgreSQL only: shared credit admission, holds with owners, instance leases (schema ``m004``).

Admission is one statement: a conditional UPDATE of the tenant's ``credit`` row (``balance - held >=
hold``), which PostgreSQL serializes on the row, and the hold's row with its owner, inserted only if the
UPDATE matched (a key with a budget or a token rate is admitted by ``key_limits.admit`` instead, one
statement too; its budget hold rides on the same row). A settle or release entry in the ledger ends the
hold (a trigger), and with it the key's budget hold. Instances renew a lease;
``sweep`` releases the holds of instances whose lease ran out, and holds that belong to no live instance.
Times are the database's clock, so instances on machines with skewed clocks agree.
"""

from __future__ import annotations

import json
from typing import Any

NOW = "EXTRACT(EPOCH FROM clock_timestamp())"

ADMIT = (
    "WITH c AS (UPDATE credit SET held = held + %(amount)s"
    " WHERE tenant_id = %(tenant)s AND balance - held >= %(amount)s RETURNING balance, held),"
    " h AS (INSERT INTO credit_holds (request_id, tenant_id, amount, owner, created_at)"
    f" SELECT %(request)s, %(tenant)s, %(amount)s, %(owner)s, {NOW} FROM c RETURNING 1)"
    " SELECT balance, held FROM c"
)


async def admit(conn: Any, tenant_id: int, amount: int, request_id: str, owner: str) -> bool:
    """Reserve ``amount`` for a request if the tenant's balance less every hold in the cluster covers it."""
    cur = await conn.execute(
        ADMIT,
        {"amount": amount, "tenant": tenant_id, "request": request_id, "owner": owner},
    )
    return await cur.fetchone() is not None


RESIZE = (
    "WITH c AS (UPDATE credit SET held = held + %(delta)s WHERE tenant_id = %(tenant)s"
    " AND (%(delta)s <= 0 OR balance - held >= %(delta)s)"
    " AND EXISTS (SELECT 1 FROM credit_holds WHERE request_id = %(request)s) RETURNING 1),"
    " h AS (UPDATE credit_holds SET amount = amount + %(delta)s WHERE request_id = %(request)s"
    " AND EXISTS (SELECT 1 FROM c) RETURNING 1)"
    " SELECT 1 FROM c"
)


async def resize(conn: Any, tenant_id: int, request_id: str, delta: int) -> bool:
    """Change a request's reserved hold by ``delta`` (growing it only if the tenant's balance less every hold
    in the cluster covers the difference); False when refused (or the hold is gone)."""
    cur = await conn.execute(RESIZE, {"delta": delta, "tenant": tenant_id, "request": request_id})
    return await cur.fetchone() is not None


async def available(conn: Any, tenant_id: int) -> int:
    cur = await conn.execute("SELECT balance - held FROM credit WHERE tenant_id = %s", (tenant_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def totals(conn: Any) -> list[tuple[int, int, int]]:
    """(tenant, balance, held across the cluster) for every tenant with credit."""
    cur = await conn.execute("SELECT tenant_id, balance, held FROM credit")
    return [(int(r[0]), int(r[1]), int(r[2])) for r in await cur.fetchall()]


async def renew(
    conn: Any, instance: str, lease: float, host: str, pid: int, url: str, live: str = "{}"
) -> bool:
    """Register or renew this instance's lease and publish its live state (JSON text, schema ``m008``);
    False if the lease had lapsed (its holds were released)."""
    cur = await conn.execute(
        f"UPDATE instances SET lease_until = {NOW} + %s, renewed_at = {NOW}, url = %s, live = %s WHERE id = %s",
        (lease, url, live, instance),
    )
    if cur.rowcount:
        return True
    await conn.execute(
        "INSERT INTO instances (id, host, pid, url, started_at, lease_until, renewed_at, live)"
        f" VALUES (%s, %s, %s, %s, {NOW}, {NOW} + %s, {NOW}, %s) ON CONFLICT (id) DO NOTHING",
        (instance, host, pid, url, lease, live),
    )
    return False


# the tail of a statement whose CTE ``d`` deleted credit holds: their credit and key-budget holds (schema
# ``m009``) given back; (tenant, credit released). The tenants' credit rows must be locked first (in tenant
# order, as admission and settlement take them, each before its keys' budget rows).
RELEASE = (
    "k AS (UPDATE key_budget b SET held = b.held - x.amount FROM (SELECT key_id, SUM(key_amount) AS amount"
    " FROM d WHERE key_amount <> 0 GROUP BY key_id) x WHERE b.key_id = x.key_id),"
    " s AS (SELECT tenant_id, SUM(amount) AS amount FROM d GROUP BY tenant_id)"
    " UPDATE credit c SET held = c.held - s.amount FROM s WHERE c.tenant_id = s.tenant_id"
    " RETURNING c.tenant_id, s.amount"
)


async def _release_where(conn: Any, where: str, params: tuple[Any, ...] = ()) -> list[tuple[int, int]]:
    """(In a transaction) release the holds ``where`` says (a condition on ``credit_holds h``); (tenant, credit
    released). Their tenants' credit rows are locked first, in tenant order (the order admission and
    settlement take them), so a release cannot deadlock with them."""
    await conn.execute(
        f"SELECT 1 FROM credit WHERE tenant_id IN (SELECT tenant_id FROM credit_holds h WHERE {where})"
        " ORDER BY tenant_id FOR UPDATE",
        params,
    )
    cur = await conn.execute(
        f"WITH d AS (DELETE FROM credit_holds h WHERE {where} RETURNING tenant_id, amount, key_id, key_amount),"
        f" {RELEASE}",
        params,
    )
    return [(int(r[0]), int(r[1])) for r in await cur.fetchall()]


async def sweep(conn: Any) -> list[tuple[int, int]]:
    """Drop instances whose lease ran out and release every hold no live instance owns (tenant, amount)."""
    async with conn.transaction():
        await conn.execute(f"DELETE FROM instances WHERE lease_until < {NOW}")
        released = await _release_where(conn, "NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = h.owner)")
        await conn.execute(f"DELETE FROM credit_draws WHERE created_at < {NOW} - %s", (DRAWS_KEPT,))
        return released


async def release_own(conn: Any, owner: str, keep: set[str], older_than: float) -> list[tuple[int, int]]:
    """Release this instance's holds older than ``older_than`` seconds that it no longer tracks (a request
    cancelled mid-admission, or one whose settlement is spooled: its ledger entries still charge the cost)."""
    async with conn.transaction():
        cur = await conn.execute(
            f"SELECT request_id FROM credit_holds WHERE owner = %s AND created_at < {NOW} - %s",
            (owner, older_than),
        )
        stale = [r[0] for r in await cur.fetchall() if r[0] not in keep]
        if not stale:
            return []
        return await _release_where(conn, "request_id = ANY(%s) AND owner = %s", (stale, owner))


# ------------------------------------------------------------------ credit slices (schema m010)

DRAWS_KEPT = 3600.0  # seconds a draw's row is kept: a settlement written again within that draws once

GROW = (
    "WITH c AS (UPDATE credit SET held = held + %(amount)s"
    " WHERE tenant_id = %(tenant)s AND balance - held >= %(amount)s RETURNING 1),"
    " h AS (INSERT INTO credit_holds (request_id, tenant_id, amount, owner, created_at)"
    f" SELECT %(slice)s, %(tenant)s, %(amount)s, %(owner)s, {NOW} FROM c"
    " ON CONFLICT (request_id) DO UPDATE SET amount = credit_holds.amount + EXCLUDED.amount RETURNING 1)"
    " SELECT 1 FROM c"
)


async def grow_slice(conn: Any, tenant_id: int, slice_id: str, amount: int, owner: str) -> bool:
    """Reserve ``amount`` more for a slice (created if new) if the tenant's balance less every hold in the
    cluster covers it; the same conditional UPDATE as ``admit``."""
    cur = await conn.execute(GROW, {"amount": amount, "tenant": tenant_id, "slice": slice_id, "owner": owner})
    return await cur.fetchone() is not None


# a settled request's cost off its slice, in the settlement's own write (``?`` SQL: the writer's connection)
DRAW = "INSERT OR IGNORE INTO credit_draws (request_id, slice, tenant_id, amount, created_at) VALUES (?, ?, ?, ?, ?)"


def return_slice(conn: Any, tenant_id: int, slice_id: str) -> None:
    """(On the writer, after the settlements queued before it) give a slice's credit back to the tenant."""
    conn.execute("SELECT 1 FROM credit WHERE tenant_id = ? FOR UPDATE", (tenant_id,))
    conn.execute(
        "WITH d AS (DELETE FROM credit_holds WHERE request_id = ?"
        f" RETURNING tenant_id, amount, key_id, key_amount), {RELEASE}",
        (slice_id,),
    )


async def release_slices(conn: Any, owner: str) -> list[tuple[int, int]]:
    """At a clean shutdown (every settlement written): give back each slice this instance holds."""
    async with conn.transaction():
        return await _release_where(conn, "owner = %s AND starts_with(request_id, 'slice:')", (owner,))


async def leave(conn: Any, instance: str) -> None:
    """A clean shutdown: the instance's row goes; any hold it still owns is released by the next sweep."""
    await conn.execute("DELETE FROM instances WHERE id = %s", (instance,))


async def instances(conn: Any) -> list[dict[str, Any]]:
    """The live instances, oldest first: lease left and seconds since the last renewal by the database's
    clock, and each one's published live state (``live``, a dict; empty before its first renewal)."""
    cur = await conn.execute(
        f"SELECT id, host, pid, url, started_at, lease_until - {NOW} AS lease_left,"
        f" {NOW} - COALESCE(renewed_at, started_at) AS lease_age, live"
        f" FROM instances WHERE lease_until >= {NOW} ORDER BY started_at, id"
    )
    names = [d.name for d in cur.description or ()]
    rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
    for row in rows:
        try:
            live = json.loads(row["live"] or "{}")
        except ValueError:
            live = {}
        row["live"] = live if isinstance(live, dict) else {}
    return rows
