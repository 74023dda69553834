"""Credit slices on a PostgreSQL store (``gatewaytui/billing/slices.py``): a tenant an instance admits often
is admitted from credit that instance reserved ahead in the store, in memory; the books stay exact, no
instance admits more than the balance, and the slice goes back when idle, at shutdown, past half the lease,
during a store outage and when a refund over-commits the tenant."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gatewaytui.billing import slices as slices_mod
from gatewaytui.model import GatewayError
from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.store import credit as credit_store
from gatewaytui.store import ledger as ledger_store

pytestmark = pytest.mark.parametrize("store", ["postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def eager_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices from a tenant's second admission in a second on, given back after 0.3 s idle."""
    monkeypatch.setattr(slices_mod, "SLICE_AFTER", 2)
    monkeypatch.setattr(slices_mod, "SLICE_IDLE", 0.3)


@pytest.fixture
def kept_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices kept however slow the machine (given back only once closed, or at shutdown)."""
    monkeypatch.setattr(slices_mod, "SLICE_IDLE", 30.0)


def body(text: str = "hi [usage in=10 out=20]", max_tokens: int = 50) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }


async def ask(http: httpx.AsyncClient, key: str, text: str = "hi [usage in=10 out=20]") -> httpx.Response:
    return await http.post("/v1/messages", headers={"x-api-key": key}, json=body(text))


async def store_credit(gw: Any, tid: int) -> tuple[int, int, list[tuple[str, int]]]:
    """(balance, held, [(hold row, amount)]) as the store has them."""

    def read(conn: Any) -> Any:
        balance, held = conn.execute(
            "SELECT balance, held FROM credit WHERE tenant_id = ?", (tid,)
        ).fetchone()
        rows = conn.execute(
            "SELECT request_id, amount FROM credit_holds WHERE tenant_id = ? ORDER BY request_id", (tid,)
        ).fetchall()
        return int(balance), int(held), [(r[0], int(r[1])) for r in rows]

    return await gw.rt.read(read)  # type: ignore[no-any-return]


async def until(check: Any, seconds: float = 5.0) -> None:
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < seconds, "not within the time allowed"
        await asyncio.sleep(0.05)


def costs(gw: Any, tid: int) -> int:
    conn = gw.rt.readers.get()
    return int(
        conn.execute(
            "SELECT COALESCE(SUM(cost_micro), 0) FROM requests WHERE tenant_id = ?", (tid,)
        ).fetchone()[0]
    )


async def busy(gw: Any, requests: int = 3) -> tuple[str, int]:
    """A tenant with $1 that ``gw`` has just admitted ``requests`` times (a slice from the second on)."""
    key = await gw.mint("busy", usd=1)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        for _ in range(requests):
            r = await ask(http, key)
            assert r.status_code == 200, r.text
    return key, gw.rt.keyring.authenticate(key)["tenant_id"]


async def test_a_busy_tenant_is_admitted_from_a_slice_and_the_books_stay_exact(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slices_mod, "SLICE_IDLE", 30.0)  # kept between requests however slow the machine
    monkeypatch.setattr(slices_mod, "SLICE_AFTER", 1)  # from the first admission
    wallet = gateway.rt.wallet
    line_before = wallet._line.admissions
    _, tid = await busy(gateway, 12)
    s = wallet.slices.by_tenant[tid]
    assert s.id.startswith(f"slice:{wallet.origin}:{tid}:") and s.used == 0
    assert wallet._line.admissions == line_before  # no request made the admission's round trip
    await gateway.flush()
    balance, held, rows = await store_credit(gateway, tid)
    spent = costs(gateway, tid)
    assert spent > 0
    assert balance == 1_000_000 - spent == ledger_store.balance(gateway.rt.readers.get(), tid)
    assert rows == [(s.id, s.size)] and held == s.size  # the slice's rest, less every cost drawn from it
    monkeypatch.setattr(slices_mod, "SLICE_IDLE", 0.3)
    await until(lambda: _gone(gateway, tid))  # idle: given back, after the settlements it drew from
    assert tid not in wallet.slices.by_tenant
    balance_after, _, _ = await store_credit(gateway, tid)
    assert balance_after == balance


async def _gone(gw: Any, tid: int) -> bool:
    _, held, rows = await store_credit(gw, tid)
    return held == 0 and rows == []


async def test_two_instances_with_slices_never_admit_more_than_the_balance(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slices_mod, "SLICE_IDLE", 3.0)  # kept through the warm-up
    one, two = await make_gateway(), await make_gateway()
    slow_text = "slow [sleep:600] [usage in=10 out=20]"
    probe = await one.mint("probe", usd=1)
    async with httpx.AsyncClient(base_url=one.base_url, timeout=30) as http:
        assert (await ask(http, probe, slow_text)).status_code == 200
    await one.flush()
    hold = int(one.rt.readers.get().execute("SELECT MAX(hold_micro) FROM requests").fetchone()[0])
    key = await one.mint("crowd", usd=None)
    tid = one.rt.keyring.authenticate(key)["tenant_id"]
    await tenant_ops.credit(one.rt, "crowd", 40 * hold)
    await two.flush()
    for gw in (one, two):  # each instance takes a slice (a quarter of what is left then)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
            for _ in range(2):
                assert (await ask(http, key)).status_code == 200
        assert tid in gw.rt.wallet.slices.by_tenant
    for gw in (one, two):
        await gw.flush()
    start, _, _ = await store_credit(one, tid)
    from_slices = [gw.rt.wallet.slices.admitted for gw in (one, two)]

    async def slow(gw: Any) -> int:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
            return (await ask(http, key, slow_text)).status_code

    statuses = await asyncio.gather(*(slow(gw) for gw in (one, two) * 30))
    assert set(statuses) == {200, 402}
    assert 0 < statuses.count(200) * hold <= start  # never more than the balance, slices or not
    assert all(gw.rt.wallet.slices.admitted > n for gw, n in zip((one, two), from_slices, strict=True))
    for gw in (one, two):
        await gw.flush()
    await until(lambda: _gone(one, tid), 10)
    balance, _, _ = await store_credit(one, tid)
    assert balance == 40 * hold - costs(one, tid) == ledger_store.balance(one.rt.readers.get(), tid)


async def test_a_slice_admits_nothing_past_half_the_lease_or_during_an_outage(
    gateway: Any, kept_slices: None
) -> None:
    key, _ = await busy(gateway)
    wallet = gateway.rt.wallet
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        from_slice = wallet.slices.admitted
        line = wallet._line.admissions
        wallet.slices.valid_until = time.monotonic()  # the lease not renewed for half its length
        assert (await ask(http, key)).status_code == 200
        assert (wallet.slices.admitted, wallet._line.admissions) == (from_slice, line + 1)  # admitted exactly
        await wallet.heartbeat()  # renewed: the slice admits again
        assert (await ask(http, key)).status_code == 200
        assert wallet.slices.admitted == from_slice + 1
        wallet.slices.usable = lambda: False  # the writer cannot reach the store
        assert (await ask(http, key)).status_code == 200
        assert (wallet.slices.admitted, wallet._line.admissions) == (from_slice + 1, line + 2)


async def test_a_refund_that_over_commits_the_tenant_closes_its_slice(
    gateway: Any, kept_slices: None
) -> None:
    key, tid = await busy(gateway)
    wallet = gateway.rt.wallet
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        await gateway.flush()
        balance, held, _ = await store_credit(gateway, tid)
        assert held > 0  # the slice
        await tenant_ops.credit(gateway.rt, "busy", -(balance - held // 2), kind="adjustment")
        await gateway.flush()
        r = await ask(http, key)
        assert r.status_code == 402 and r.json()["error"]["type"] == "billing_error", r.text
    await until(lambda: _gone(gateway, tid))
    assert tid not in wallet.slices.by_tenant


async def test_a_settlement_written_twice_draws_from_its_slice_once(gateway: Any, kept_slices: None) -> None:
    _, tid = await busy(gateway)
    await gateway.flush()
    s = gateway.rt.wallet.slices.by_tenant[tid]
    _, held, _ = await store_credit(gateway, tid)
    draw = (credit_store.DRAW, ("req_twice", s.id, tid, 7, time.time()))
    for _ in range(2):
        await gateway.rt.write(lambda conn: conn.execute(draw[0], draw[1]))
    _, held_after, rows = await store_credit(gateway, tid)
    assert held_after == held - 7 and rows == [(s.id, held - 7)]


async def test_a_clean_shutdown_gives_its_slices_back(make_gateway: Any) -> None:
    one, two = await make_gateway(), await make_gateway()
    _, tid = await busy(one)
    await one.flush()
    assert (await store_credit(two, tid))[1] > 0
    await one.gateway.stop()
    assert await _gone(two, tid)
    assert (await store_credit(two, tid))[0] == 1_000_000 - costs(two, tid)


async def test_a_hold_from_a_slice_resizes_there_and_only_while_the_lease_is_fresh(
    gateway: Any, kept_slices: None
) -> None:
    _, tid = await busy(gateway)
    wallet = gateway.rt.wallet
    s = wallet.slices.by_tenant[tid]
    h = wallet.hold(tid, 100, "req_resized")
    await wallet.secure(h)
    assert h.slice is s and s.used == 100
    wallet.slices.valid_until = time.monotonic()
    with pytest.raises(GatewayError) as refused:
        await wallet.resize(h, 300)  # a fallback's larger worst case: not from a slice that may be gone
    assert refused.value.kind == "unavailable" and h.amount == 100 and s.used == 100
    await wallet.heartbeat()
    await wallet.resize(h, 300)
    assert h.amount == 300 and s.used == 300
    size = s.size
    assert wallet.close(h, 40) and h.draw == 40 and (s.used, s.size) == (0, size - 40)


async def test_a_slice_the_store_refuses_to_grow_is_closed(gateway: Any, kept_slices: None) -> None:
    key, tid = await busy(gateway)
    s = gateway.rt.wallet.slices.by_tenant[tid]
    await gateway.flush()
    await gateway.rt.write(  # everything else the tenant has is held elsewhere in the cluster
        lambda conn: conn.execute("UPDATE credit SET held = balance WHERE tenant_id = ?", (tid,))
    )
    big = {**body(), "max_tokens": 4096}  # a worst case larger than what the slice has free
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        r = await http.post("/v1/messages", headers={"x-api-key": key}, json=big)
        assert r.status_code == 402, r.text
        assert s.closed  # not grown: admitted exactly until it is given back
        r = await ask(http, key)  # small enough for the slice, but a closed slice admits nothing
        assert r.status_code == 402, r.text


async def test_the_sweep_keeps_this_instances_slices_and_releases_its_untracked_holds(
    gateway: Any, kept_slices: None
) -> None:
    _, tid = await busy(gateway)
    await gateway.flush()
    wallet = gateway.rt.wallet
    s = wallet.slices.by_tenant[tid]

    def lose_a_hold(conn: Any) -> None:  # a hold this instance no longer tracks, and both older than 60 s
        conn.execute(
            "INSERT INTO credit_holds (request_id, tenant_id, amount, owner, created_at) VALUES (?, ?, 500, ?, 0)",
            ("req_lost", tid, wallet.origin),
        )
        conn.execute("UPDATE credit SET held = held + 500 WHERE tenant_id = ?", (tid,))
        conn.execute("UPDATE credit_holds SET created_at = 0 WHERE request_id = ?", (s.id,))

    await gateway.rt.write(lose_a_hold)
    assert await wallet.sweep() == [(tid, 500)]
    _, held, rows = await store_credit(gateway, tid)
    assert rows == [(s.id, s.size)] and held == s.size
