"""Time one admission statement on a PostgreSQL store, with and without a key's budget / token-rate / RPM
checks: ``python scripts/admission_timing.py URL [N]`` (URL: a migrated gatewaytui database; a throwaway
one: it gets a tenant, a key and many holds). Variants run interleaved, one connection, N times each
(default 2000); prints p50 and p90 in microseconds per variant. The statement alone, not a request. Then
the settlement's usage-row insert with and without the trigger that keeps the key's spend."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import psycopg

from gatewaytui.store import credit as credit_store
from gatewaytui.store import db as dbmod
from gatewaytui.store import key_limits
from gatewaytui.store import keys as key_store
from gatewaytui.store import ledger as ledger_store
from gatewaytui.store import tenants as tenant_store

BIG = 10**15


async def main(url: str, n: int) -> None:
    dbmod.migrate(url)
    conn = dbmod.connect(url)
    with dbmod.Transaction(conn):
        t, _ = tenant_store.get_or_create(conn, f"timing-{time.time_ns()}")
        ledger_store.append(conn, t["id"], "topup", BIG, f"timing:{t['id']}")
        key, _ = key_store.mint(conn, t["id"])
    conn.close()
    tenant, kid = int(t["id"]), key["id"]
    hour = int(time.time()) // 3600
    aconn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    owner = f"timing-{tenant}"
    await aconn.execute(
        "INSERT INTO instances (id, host, pid, started_at, lease_until) VALUES (%s, 'timing', 0, 0, 1e12)",
        (owner,),
    )
    # a month of spend per hour for the key: the most rows a calendar budget sums
    await aconn.execute(
        "INSERT INTO key_spend (key_id, hour, spent) SELECT %s, h, 1 FROM generate_series(%s, %s) h",
        (kid, hour - 743, hour),
    )
    seq = iter(range(10**9))

    def limited(budget_hours: int | None, scopes: list[str]) -> Callable[[], Awaitable[object]]:
        async def run() -> object:
            verdict, _ = await key_limits.admit(
                aconn,
                request_id=f"t{next(seq)}-{owner}",
                tenant_id=tenant,
                amount=10,
                owner=owner,
                resize=False,
                key_id=kid,
                budget=BIG if budget_hours else None,
                key_amount=10 if budget_hours else 0,
                from_hour=hour - (budget_hours or 1) + 1,
                scopes=sorted(scopes),
                limits=[BIG] * len(scopes),
                amounts=[1 if s.startswith("rpm:") else 100 for s in sorted(scopes)],
            )
            assert verdict == "ok", verdict
            return verdict

        return run

    async def plain() -> object:
        return await credit_store.admit(aconn, tenant, 10, f"t{next(seq)}-{owner}", owner)

    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "credit only (the plain conditional UPDATE)": plain,
        "+ day budget (24 hours summed)": limited(24, []),
        "+ month budget (744 hours summed)": limited(744, []),
        "+ key tpm": limited(None, [f"key:{kid}"]),
        "+ key rpm": limited(None, [f"rpm:{kid}"]),
        "+ day budget, key and tenant tpm, key rpm": limited(
            24, [f"key:{kid}", f"tenant:{tenant}", f"rpm:{kid}"]
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(n):
        for name, run in variants.items():
            start = time.perf_counter()
            await run()
            times[name].append((time.perf_counter() - start) * 1e6)
    # settlement: the usage row's insert, with the trigger that keeps the key's spend per hour, and without
    usage = (
        "INSERT INTO requests (id, tenant_id, key_id, route, model, status, stream, cost_micro, started_at, day)"
        " VALUES (%s, %s, %s, 'v1', 'timing', 'ok', 0, 7, %s, '2026-01-01')"
    )
    for name, trigger in (
        ("settlement: usage row + spend trigger", True),
        ("settlement: usage row alone", False),
    ):
        if not trigger:
            await aconn.execute("ALTER TABLE requests DISABLE TRIGGER requests_spend")
        times[name] = []
        for _ in range(n):
            start = time.perf_counter()
            await aconn.execute(usage, (f"t{next(seq)}-{owner}", tenant, kid, time.time()))
            times[name].append((time.perf_counter() - start) * 1e6)
    await aconn.execute("ALTER TABLE requests ENABLE TRIGGER requests_spend")
    for name, ts in times.items():
        ts.sort()
        print(f"{name:48s} p50 {ts[len(ts) // 2]:6.0f} µs   p90 {ts[int(len(ts) * 0.9)]:6.0f} µs")
    await aconn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000))
