"""Under concurrency the spend admitted never exceeds the balance.

Each request is made to cost exactly its hold (the fake upstream reports every body byte as a 1-hour
cache write, the dearest input rate, and max_tokens of output), so with credit for N requests exactly
N can be admitted however the 3N concurrent requests interleave, and the balance ends at zero.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from conftest import GatewayHandle

from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.store import ledger
from gatewaytui.store import requests as request_store

N = 10
MAX_TOKENS = 1000
HAIKU_OUT = 5  # 5 USD per million output tokens = 5 micro-USD a token
HAIKU_CW1H = 2  # 1-hour cache writes: twice the 1 USD/MTok input price = 2 micro-USD a token


def body_for(cw1h: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"pay [usage in=0 out={MAX_TOKENS} cache_write_1h={cw1h:05d}]"}]


async def test_admitted_spend_never_exceeds_balance(gateway: GatewayHandle) -> None:
    rt = gateway.rt
    probe_key = await gateway.mint("probe", usd=1)
    probe = anthropic.AsyncAnthropic(api_key=probe_key, base_url=gateway.base_url, max_retries=0)
    r = await probe.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=MAX_TOKENS, messages=body_for(0)
    )
    size = int(r.http_request.headers["content-length"])  # same length for any 5-digit cw1h
    hold = size * HAIKU_CW1H + MAX_TOKENS * HAIKU_OUT

    key = await gateway.mint("crowd", usd=None)
    tid = rt.keyring.authenticate(key)["tenant_id"]
    await tenant_ops.credit(rt, "crowd", N * hold)
    c = anthropic.AsyncAnthropic(api_key=key, base_url=gateway.base_url, max_retries=0, timeout=60)
    peak_held = 0
    original_hold = rt.wallet.hold

    def hold_and_check(tenant_id: int, amount: int, request_id: str) -> Any:
        nonlocal peak_held
        h = original_hold(tenant_id, amount, request_id)
        if tenant_id == tid:  # checked at every admission, whatever the interleaving
            assert rt.wallet.available(tid) >= 0
            peak_held = max(peak_held, rt.wallet.held[tid])
        return h

    original_secure = rt.wallet.secure

    async def secure_and_check(h: Any, ticket: Any = None) -> None:
        """On a shared store the decision is the database's: its held credit never exceeds the balance."""
        nonlocal peak_held
        await original_secure(h, ticket)
        if h.tenant_id == tid:
            left, held = await rt.read(
                lambda conn: conn.execute(
                    "SELECT balance - held, held FROM credit WHERE tenant_id = ?", (tid,)
                ).fetchone()
            )
            assert left >= 0
            peak_held = max(peak_held, held)

    if rt.shared:
        rt.wallet.secure = secure_and_check  # type: ignore[method-assign]
    else:
        rt.wallet.hold = hold_and_check  # type: ignore[method-assign]

    async def one() -> int:
        try:
            resp = await c.messages.with_raw_response.create(
                model="claude-haiku-4-5", max_tokens=MAX_TOKENS, messages=body_for(size)
            )
        except anthropic.APIStatusError as exc:
            assert exc.body["error"]["type"] == "billing_error"
            return exc.status_code
        return resp.status_code

    statuses = await asyncio.gather(*(one() for _ in range(3 * N)))
    assert sorted(statuses) == [200] * N + [402] * (2 * N)
    assert peak_held <= N * hold

    await gateway.flush()
    conn = rt.readers.get()
    rows = [x for x in request_store.recent(conn, 1000, tenant_id=tid)]
    ok = [x for x in rows if x["status"] == "ok"]
    assert len(ok) == N
    assert all(x["cost_micro"] == x["hold_micro"] == hold for x in ok)
    assert sum(x["cost_micro"] for x in rows) == N * hold  # refused requests cost nothing
    assert ledger.balance(conn, tid) == 0 == rt.wallet.balance[tid]
    assert rt.wallet.held[tid] == 0 and not rt.wallet.holds_of(tid)
    spent = -sum(
        e["amount_micro"]
        for e in ledger.entries(conn, tid, limit=10_000)
        if e["kind"] in ("hold", "settle", "release")
    )
    assert spent == N * hold


async def test_concurrent_streams_settle_exactly_once(gateway: GatewayHandle) -> None:
    key = await gateway.mint("streams", usd=2)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    c = anthropic.AsyncAnthropic(api_key=key, base_url=gateway.base_url, max_retries=0, timeout=60)

    async def one(i: int) -> str:
        async with c.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=200,
            messages=[{"role": "user", "content": f"s{i} [usage in=10 out=10]"}],
        ) as s:
            await s.get_final_message()
        return s.response.headers["request-id"]

    ids = await asyncio.gather(*(one(i) for i in range(20)))
    await gateway.flush()
    conn = gateway.rt.readers.get()
    per_request = {}
    for e in ledger.entries(conn, tid, limit=1000):
        if e["request_id"]:
            per_request.setdefault(e["request_id"], []).append(e["kind"])
    assert set(per_request) == set(ids)
    assert all(sorted(kinds) == ["hold", "settle"] for kinds in per_request.values())
    cost = 10 * 3 + 10 * 15  # micro-USD
    assert ledger.balance(conn, tid) == 2_000_000 - 20 * cost == gateway.rt.wallet.balance[tid]
