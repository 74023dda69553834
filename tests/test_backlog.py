"""The backlog (gatewaytui/backlog.py): a non-streamed answer's journal, metrics and event wait for an idle
moment, while what admission and routing read is settled at once; nothing waiting is lost or seen late by
a client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from conftest import until

from gatewaytui import backlog
from gatewaytui.store import requests as request_store

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


async def test_work_runs_once_after_the_next_request_goes_out_or_after_the_delay() -> None:
    ran: list[str] = []
    b = backlog.Backlog()
    b.add(ran.append, "a")
    b.add(ran.append, "b")
    b.soon()  # a request is about to go upstream: two turns of the loop later
    await asyncio.sleep(0)
    assert ran == []  # not before the request's own bytes had their turn
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ran == ["a", "b"] and len(b) == 0
    b.add(ran.append, "c")  # nothing goes upstream: the timer runs it
    await asyncio.sleep(backlog.DELAY * 4)
    assert ran == ["a", "b", "c"]
    b.drain()
    assert ran == ["a", "b", "c"]  # each ran once


async def test_one_failing_item_does_not_strand_the_others(caplog: Any) -> None:
    ran: list[int] = []
    b = backlog.Backlog()
    b.add(lambda: 1 / 0)
    b.add(ran.append, 1)
    b.drain()
    assert ran == [1] and "deferred work failed" in caplog.text


async def test_an_answer_is_settled_at_once_and_journaled_without_another_request(
    gateway: Any, monkeypatch: Any
) -> None:
    """Balance, limits and live traffic change when the answer goes out; the usage row follows without any
    further traffic (the backlog's timer), and before any other route answers."""
    key = await gateway.mint("acme", usd=5.0)
    tenant_id = gateway.rt.keyring.authenticate(key)["tenant_id"]
    before = gateway.rt.wallet.balance[tenant_id]
    async with httpx.AsyncClient(base_url=gateway.base_url, headers={"x-api-key": key}) as http:
        r = await http.post("/v1/messages", json=BODY)
        assert r.status_code == 200
        await asyncio.sleep(0)
        assert not gateway.rt.traffic.inflight  # routing and admission see it settled
        assert gateway.rt.wallet.balance[tenant_id] < before
        request_id = r.headers["request-id"]

        assert await until(
            lambda: not len(gateway.rt.backlog), timeout=5.0
        )  # no flush, no request: the timer
        await gateway.rt.write(lambda conn: None)
        row = request_store.get(gateway.rt.readers.get(), request_id)
        assert row is not None and row["status"] == "ok" and row["cost_micro"] > 0

        # another answer, then at once a route that reads what it journals: it is there (the timer is
        # out of the way here: the route itself runs what waits)
        monkeypatch.setattr(backlog, "DELAY", 60.0)
        r = await http.post("/v1/messages", json=BODY)
        usage = await http.get(f"/v1/usage/{r.headers['request-id']}")
    assert usage.status_code == 200, usage.text
    assert usage.json()["cost_micro"] > 0, usage.json()
