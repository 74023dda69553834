"""PostgreSQL only: the admission line (``store/admission.py``), plain credit admissions pipelined on one
connection, each its own transaction; and the store's statements sent with the server's placeholders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gatewaytui.store import db as dbmod
from gatewaytui.store import ledger
from gatewaytui.store import tenants as tenant_store
from gatewaytui.store.admission import AdmissionLine


@pytest.fixture
def funded(pg_cluster: Any) -> Iterator[tuple[str, int]]:
    """A fresh database with one tenant holding 1,000,000 micro-USD: (url, tenant id)."""
    url = pg_cluster.new_database()
    conn = dbmod.connect(url)
    try:
        tenant, _ = tenant_store.get_or_create(conn, "acme")
        ledger.append(conn, tenant["id"], "topup", 1_000_000, "topup:1")
        yield url, int(tenant["id"])
    finally:
        conn.close()
        pg_cluster.drop_database(url)


def credit_row(url: str, tenant_id: int) -> tuple[int, int, int, int]:
    """(balance, held, sum of the holds' amounts, number of holds)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT balance, held, (SELECT COALESCE(SUM(amount), 0) FROM credit_holds),"
            " (SELECT COUNT(*) FROM credit_holds) FROM credit WHERE tenant_id = %s",
            (tenant_id,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def test_concurrent_admissions_never_pass_the_balance_and_go_out_together(
    funded: tuple[str, int],
) -> None:
    url, tenant = funded
    line = AdmissionLine(url)
    try:
        verdicts = await asyncio.gather(*(line.admit(tenant, 3_000, f"r{n}", "me") for n in range(500)))
    finally:
        await line.close()
    assert sum(verdicts) == 1_000_000 // 3_000  # exactly what the balance covers, and no more
    assert credit_row(url, tenant) == (1_000_000, 333 * 3_000, 333 * 3_000, 333)
    assert line.admissions == 500 and line.batches < 500  # pipelined: several per write


async def test_a_failing_admission_fails_alone_and_an_unknown_tenant_is_refused(
    funded: tuple[str, int],
) -> None:
    url, tenant = funded
    line = AdmissionLine(url)
    try:
        first, again, other = await asyncio.gather(
            line.admit(tenant, 10, "dup", "me"),
            line.admit(tenant, 10, "dup", "me"),  # the same request id: the hold's key is taken
            line.admit(tenant, 10, "other", "me"),
            return_exceptions=True,
        )
        assert first is True and other is True
        assert isinstance(again, psycopg.errors.UniqueViolation)
        assert await line.admit(tenant + 1000, 10, "nobody", "me") is False
    finally:
        await line.close()
    assert credit_row(url, tenant) == (1_000_000, 20, 20, 2)


async def test_a_lost_connection_fails_the_admissions_on_it_and_the_next_one_reconnects(
    funded: tuple[str, int],
) -> None:
    url, tenant = funded
    line = AdmissionLine(url)
    try:
        assert await line.admit(tenant, 10, "before", "me")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        lost = await asyncio.gather(line.admit(tenant, 10, "lost", "me"), return_exceptions=True)
        assert isinstance(lost[0], psycopg.OperationalError)
        assert await line.admit(tenant, 10, "after", "me")
    finally:
        await line.close()
    assert credit_row(url, tenant) == (1_000_000, 20, 20, 2)


async def test_a_cancelled_admission_leaves_the_line_in_step(funded: tuple[str, int]) -> None:
    url, tenant = funded
    line = AdmissionLine(url)
    try:
        waiter = asyncio.create_task(line.admit(tenant, 10, "cancelled", "me"))
        await asyncio.sleep(0)
        waiter.cancel()
        assert await line.admit(tenant, 10, "next", "me")
    finally:
        await line.close()
    _, held, holds, _ = credit_row(url, tenant)
    assert held == holds  # the cancelled one's hold, if taken, is a row the sweep releases


def test_statements_with_literals_and_many_parameters_run_on_postgresql(funded: tuple[str, int]) -> None:
    url, _ = funded
    conn = dbmod.connect(url)
    try:
        row = conn.execute("SELECT ? || '%?' || ?", ("a", "b")).fetchone()
        assert row[0] == "a%?b"  # '?' and '%' inside a literal are text, not placeholders
        groups = ", ".join(["(?, ?, 0)"] * 2_000)  # well over 4 KB of SQL
        values = [v for n in range(2_000) for v in (f"k{n}", str(n))]
        conn.execute(f"INSERT OR REPLACE INTO settings (key, value, updated_at) VALUES {groups}", values)
        assert (
            conn.execute("SELECT COUNT(*), MAX(value) FROM settings WHERE key LIKE 'k%'").fetchone()[0]
            == 2_000
        )
    finally:
        conn.close()


async def test_tenants_admitted_in_one_write_are_each_exact(funded: tuple[str, int]) -> None:
    url, rich = funded
    conn = dbmod.connect(url)
    try:
        poor = int(tenant_store.get_or_create(conn, "small")[0]["id"])
        ledger.append(conn, poor, "topup", 10_000, "topup:2")
    finally:
        conn.close()
    line = AdmissionLine(url)
    try:
        verdicts = await asyncio.gather(
            *(line.admit(rich if n % 2 else poor, 3_000, f"r{n}", "me") for n in range(200))
        )
    finally:
        await line.close()
    assert sum(verdicts[1::2]) == 100 and sum(verdicts[0::2]) == 3  # 10,000 covers three of 3,000
    assert credit_row(url, rich)[:2] == (1_000_000, 300_000)
    assert credit_row(url, poor)[:2] == (10_000, 9_000)
