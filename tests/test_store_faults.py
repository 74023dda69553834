"""A PostgreSQL store that goes down under a running gateway: paid admission answers 503 in the client's
protocol, a stream already running finishes and settles exactly once when the store is back (the writer's
spool), and the gateway serves again without a restart."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest

from gatewaytui.store import keys as key_store
from gatewaytui.store import ledger as ledger_store


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_store_outage_refuses_paid_admission_and_spools_settlement(
    make_gateway: Any, pg_cluster: Any
) -> None:
    gw = await make_gateway()
    key = await gw.mint("acme", usd=1)
    tenant = gw.rt.keyring.authenticate(key)["tenant_id"]
    _, unseen = await gw.rt.write(lambda conn: key_store.mint(conn, tenant))  # not in the keyring's cache
    tid = gw.rt.keyring.authenticate(key)["tenant_id"]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "slow [sleep:1500] [usage in=10 out=20]"}],
    }
    headers = {"x-api-key": key}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=60) as http:
        async with http.stream("POST", "/v1/messages", json=body, headers=headers) as running:
            assert running.status_code == 200
            request_id = running.headers["request-id"]
            pg_cluster.stop()
            try:
                quick = {**body, "stream": False, "messages": [{"role": "user", "content": "hi"}]}
                r = await http.post("/v1/messages", json=quick, headers=headers)
                assert r.status_code == 503, r.text
                assert r.json()["type"] == "error" and "store is unreachable" in r.json()["error"]["message"]
                chat = await http.post(
                    "/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {key}"},
                )
                assert chat.status_code == 503 and "unreachable" in chat.json()["error"]["message"]
                text = (await running.aread()).decode()  # the running stream finishes while the store is down
                assert "message_stop" in text
                for _ in range(100):  # settlement is handed to the writer, which finds the store down
                    if gw.rt.writer.pending > 0 and gw.rt.writer.outage_since is not None:
                        break
                    await asyncio.sleep(0.05)
                assert gw.rt.writer.pending > 0 and gw.rt.writer.outage_since is not None  # spooled
                # what needs a read (an uncached key; a tenant's plan past its cache) is a 503 too, never a 500
                r = await http.post("/v1/messages", json=quick, headers={"x-api-key": unseen})
                assert r.status_code == 503 and "store is unreachable" in r.json()["error"]["message"], r.text
                gw.rt.plans.clear()
                r = await http.post("/v1/messages", json=quick, headers=headers)
                assert r.status_code == 503, r.text
            finally:
                pg_cluster.launch()
        await gw.flush()  # the spooled settlement commits once the store is back
        conn = gw.rt.readers.get()
        kinds = sorted(e["kind"] for e in ledger_store.entries(conn, tid) if e["request_id"] == request_id)
        assert kinds == ["hold", "settle"]
        held = conn.execute("SELECT held FROM credit WHERE tenant_id = ?", (tid,)).fetchone()[0]
        assert held == 0  # the settle entry ended the store's hold
        assert conn.execute("SELECT COUNT(*) FROM requests WHERE id = ?", (request_id,)).fetchone()[0] == 1
        r = await http.post("/v1/messages", json={**body, "stream": False}, headers=headers)
        assert r.status_code == 200, r.text  # admission works again, no restart


def test_the_spool_adopts_only_files_no_live_process_holds(tmp_path: Any) -> None:
    from gatewaytui.store.spool import Spool

    store = "postgresql://u@h:1/db"
    live, dead = Spool(tmp_path, store), Spool(tmp_path, store)
    assert live.open() == [] and dead.open() == []
    live.append([[("INSERT INTO t VALUES (?, ?)", (1, b"\x00raw"))]])
    dead.append([[("INSERT INTO t VALUES (?, ?)", (2, "two"))], [("INSERT INTO t VALUES (?)", (3,))]])
    with open(dead.path, "a") as f:
        f.write('[["INSERT INTO t VALUES (?)", [4')  # an append cut short by a crash
    dead.written = 0  # as if killed: its lock goes with it, its file stays
    assert dead._fd is not None
    os.close(dead._fd)
    dead._fd = None
    other = Spool(tmp_path, "postgresql://u@h:1/another")
    assert other.open() == []  # another store's files are not its business
    newcomer = Spool(tmp_path, store)
    adopted = newcomer.open()
    assert adopted == [[("INSERT INTO t VALUES (?, ?)", (2, "two"))], [("INSERT INTO t VALUES (?)", (3,))]]
    assert dead.path.exists()  # kept (and locked) until its entries commit
    newcomer.committed()
    assert not dead.path.exists() and live.path.read_text()  # the live process's file is untouched
    assert oct(live.path.stat().st_mode & 0o777) == "0o600"
    live.close()
    assert live.path.exists()  # not empty: left for the next start
    again = Spool(tmp_path, store).open()
    assert again == [[("INSERT INTO t VALUES (?, ?)", (1, b"\x00raw"))]]


async def test_the_lease_is_renewed_while_admissions_hold_every_pooled_connection(pg_cluster: Any) -> None:
    """A burst that keeps every pooled connection busy (admissions waiting on a hot tenant's row) must not
    hold the lease renewal back until the lease runs out: the lease work has a connection of its own."""
    from gatewaytui.billing.shared_wallet import SharedWallet

    url = pg_cluster.new_database()
    wallet = SharedWallet(url, lease=6.0, origin="inst-a")
    await wallet.open()
    taken = []
    try:
        while len(taken) < wallet.pool.max_size:
            taken.append(await wallet.pool.getconn(timeout=5))
        await asyncio.wait_for(wallet.heartbeat(), 2.0)  # the pool is empty: it would wait 3 s and fail
        await asyncio.wait_for(wallet.sweep(), 2.0)
        await asyncio.wait_for(wallet.refresh(), 2.0)
    finally:
        for conn in taken:
            await wallet.pool.putconn(conn)
        await wallet.close_pool()
        pg_cluster.drop_database(url)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
async def test_a_failed_admission_is_a_503_only_when_the_store_cannot_be_reached(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from gatewaytui.store.admission import AdmissionLine

    gw = await make_gateway()
    key = await gw.mint("acme", usd=1)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    raised: list[Exception] = []

    async def admit(*args: Any, **kw: Any) -> bool:
        raise raised[-1]

    monkeypatch.setattr(AdmissionLine, "admit", admit)  # every plain credit admission goes through the line
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        # a bug (here a duplicate hold: a constraint the admission violates) is a 500, never "unreachable"
        raised.append(psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"))
        r = await http.post("/v1/messages", json=body, headers={"x-api-key": key})
        assert r.status_code == 500 and "unreachable" not in r.text, r.text
        raised.append(psycopg.OperationalError("connection refused"))
        r = await http.post("/v1/messages", json=body, headers={"x-api-key": key})
        assert r.status_code == 503 and "store is unreachable" in r.json()["error"]["message"], r.text
