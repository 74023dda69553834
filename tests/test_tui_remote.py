"""``gatewaytui attach``: the console over RemoteSource against a running headless gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_tui_actions import refused_credit_is_fixed_in_its_dialog
from test_tui_support import ready
from textual.widgets import Input

from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.store import ledger as ledger_store
from gatewaytui.store import tenants as tenant_store
from gatewaytui.tui.app import ConsoleApp
from gatewaytui.tui.remote import RemoteSource
from gatewaytui.tui.source import ActionError, SourceUnavailable
from gatewaytui.tui.widgets import LiveTable

TOKEN = "remote-console-token"
TOKEN_ENV = "GATEWAYTUI_TEST_REMOTE_TOKEN"


@pytest.fixture
async def gw(make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return await make_gateway(server={"admin_token_env": TOKEN_ENV})


async def test_remote_source_reads_acts_and_follows_events(gw: Any) -> None:
    source = RemoteSource(gw.base_url + "/", TOKEN)
    await source.open()
    try:
        events = source.events()
        snap = await source.snapshot()
        assert {a["label"] for a in snap["accounts"]} >= {"anthropic-1"}
        with pytest.raises(ActionError) as unknown:
            await source.mint_key("remote-co", label="ops")  # a typo never creates a tenant
        assert unknown.value.kind == "not_found" and "no tenant named 'remote-co'" in unknown.value.message
        await source.create_tenant("remote-co")
        key, secret = await source.mint_key("remote-co", label="ops")
        assert gw.rt.keyring.authenticate(secret)["id"] == key["id"]
        assert await source.credit("remote-co", 7_000_000) == 7_000_000
        with pytest.raises(ActionError) as refused:
            await source.reset_account("ghost")
        assert refused.value.kind == "not_found" and "ghost" in refused.value.message
        assert await source.request("req_missing") is None
        async with asyncio.timeout(10):  # hang guard
            assert (await anext(events))["topic"] == "console.connected"
            await tenant_ops.create_tenant(gw.rt, "from-elsewhere")
            async for event in events:
                if event["topic"] == "tenant.created" and event["data"]["name"] == "from-elsewhere":
                    break
        await events.aclose()
    finally:
        await source.close()


async def test_remote_source_reports_a_bad_token_and_an_unreachable_gateway(gw: Any) -> None:
    source = RemoteSource(gw.base_url, "wrong")
    await source.open()
    with pytest.raises(SourceUnavailable, match="admin token required"):
        await source.snapshot()
    with pytest.raises(ActionError) as refused:
        await source.create_tenant("x")
    assert refused.value.kind == "authentication"
    await source.close()
    offline = RemoteSource("http://127.0.0.1:9", TOKEN)
    await offline.open()
    with pytest.raises(SourceUnavailable):
        await offline.snapshot()
    await offline.close()


async def test_attached_console_credits_a_tenant_and_keeps_a_refused_dialog_open(gw: Any) -> None:
    await gw.mint("acme", usd=1.0)
    acme = tenant_store.by_name(gw.rt.readers.get(), "acme")
    app = ConsoleApp(RemoteSource(gw.base_url, TOKEN), refresh_ms=60_000, screen="tenants")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.link == "● live"
        table = app.screen.query_one("#tenants", LiveTable)
        table.move_cursor(row=table.get_row_index(str(acme["id"])), animate=False)
        await pilot.press("c")
        await pilot.pause()
        app.screen.query_one("#usd", Input).value = "2.5"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await app.settle()
        await gw.flush()
        assert ledger_store.balance(gw.rt.readers.get(), acme["id"]) == 3_500_000
        assert (
            next(t for t in app.screen.snap["tenants"] if t["name"] == "acme")["balance_micro"] == 3_500_000
        )
        # the same refusals as in process (tests/test_tui_actions.py), over the admin API
        await refused_credit_is_fixed_in_its_dialog(app, pilot, gw, acme)


async def test_console_survives_losing_its_gateway(gw: Any) -> None:
    app = ConsoleApp(RemoteSource("http://127.0.0.1:9", TOKEN), refresh_ms=60_000, screen="accounts")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.link.startswith("offline")
        assert app.is_running and app.screen.snap is None


async def test_remote_source_reads_the_history_and_refuses_oauth_without_config(gw: Any) -> None:
    import httpx

    secret = await gw.mint("hist-co", usd=1)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
        for _ in range(3):
            r = await client.post(
                "/v1/messages",
                headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
                json={
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 20,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
            assert r.status_code == 200
    await gw.flush()
    source = RemoteSource(gw.base_url, TOKEN)
    await source.open()
    try:
        query = {"filters": {"tenant": "hist"}, "text": "", "sort": "cost", "descending": False, "limit": 2}
        rows = await source.history(query)
        assert [r["tenant"] for r in rows] == ["hist-co", "hist-co"]
        assert await source.history({**query, "filters": {"tenant": "nobody"}}) == []
        with pytest.raises(SourceUnavailable, match="unknown sort"):
            await source.history({**query, "sort": "nope"})
        with pytest.raises(ActionError, match=r"\[oauth.anthropic\]"):
            await source.begin_oauth("anthropic", None, None)
    finally:
        await source.close()
