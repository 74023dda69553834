"""Console actions driven with Pilot against a real gateway (fake upstream, temp database); asserts on state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from test_tui_support import ready
from textual.widgets import Input, Select

from gatewaytui.providers.base import UpstreamError
from gatewaytui.store import accounts as account_store
from gatewaytui.store import keys as key_store
from gatewaytui.store import ledger as ledger_store
from gatewaytui.store import settings as settings_store
from gatewaytui.store import tenants as tenant_store
from gatewaytui.tui.app import ConsoleApp
from gatewaytui.tui.format import usd
from gatewaytui.tui.screens.dialogs import (
    AddAccountDialog,
    ConfirmDialog,
    CreditDialog,
    FormDialog,
    MintKeyDialog,
    SecretDialog,
)
from gatewaytui.tui.screens.request import RequestScreen
from gatewaytui.tui.source import ActionError, LocalSource
from gatewaytui.tui.widgets import LiveTable

SIZE = (80, 24)


@contextlib.asynccontextmanager
async def console(gateway: Any, screen: str, **kw: Any) -> AsyncIterator[tuple[ConsoleApp, Any]]:
    size = kw.pop("size", SIZE)
    app = ConsoleApp(LocalSource(gateway.rt), refresh_ms=kw.pop("refresh_ms", 60_000), screen=screen, **kw)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        yield app, pilot


async def press(pilot: Any, *keys: str) -> None:
    """Press keys, then wait for any dialog callbacks, actions and reloads they started."""
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
        await pilot.app.settle()
    await pilot.pause()
    await pilot.app.settle()


async def select_row(pilot: Any, table_id: str, key: str) -> None:
    table = pilot.app.screen.query_one(table_id, LiveTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(key), animate=False)
    await pilot.pause()


async def fill(pilot: Any, **values: str) -> None:
    dialog = pilot.app.screen
    assert isinstance(dialog, FormDialog)
    for field, value in values.items():
        dialog.query_one(f"#{field}", Input).value = value
    await pilot.pause()


def account_row(rt: Any, label: str) -> dict[str, Any]:
    conn = rt.readers.get()
    row = account_store.by_label(conn, label)
    assert row is not None
    return row


# ------------------------------------------------------------------ accounts


async def test_account_actions(gateway: Any) -> None:
    gw = gateway
    async with console(gw, "accounts") as (app, pilot):
        # add: the API key field is masked; a form with a problem stays open
        await press(pilot, "a")
        dialog = app.screen
        assert isinstance(dialog, AddAccountDialog)
        assert dialog.query_one("#api_key", Input).password
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, AddAccountDialog)
        assert app.screen.refusals() == {"api_key": "an API key is required"}  # shown by its field
        dialog.query_one("#provider", Select).value = "openai"
        dialog.query_one("#label", Input).focus()
        await pilot.press(*"team-2")
        await fill(pilot, base_url=gw.rt.cfg.accounts[0].base_url, api_key="sk-live-secret")
        await press(pilot, "ctrl+s")
        assert not isinstance(app.screen, AddAccountDialog)
        await gw.flush()
        row = account_row(gw.rt, "team-2")
        assert row["provider"] == "openai" and row["enabled"]
        assert "sk-live-secret" not in (row["secret"] or "")  # stored encrypted
        assert gw.rt.pool.find("team-2").api_key == "sk-live-secret"
        assert "team-2" in {a["label"] for a in app.screen.snap["accounts"]}

        # a refused action keeps the dialog open, the refusal by the field it concerns, the values kept;
        # the fixed form goes through and closes
        await press(pilot, "a")
        await fill(pilot, label="anthropic-1", api_key="dup")
        await press(pilot, "ctrl+s")
        dialog = app.screen
        assert isinstance(dialog, AddAccountDialog) and not dialog.busy
        assert "already exists" in dialog.refusals()["label"], dialog.refusals()
        assert (dialog.value("label"), dialog.value("api_key")) == ("anthropic-1", "dup")
        assert app.focused is dialog.query_one("#label")
        await fill(pilot, label="team-3")
        await press(pilot, "ctrl+s")
        assert app.screen.MODE == "accounts" and not isinstance(app.screen, AddAccountDialog)
        assert "account added" in [n.message for n in app._notifications]
        await gw.flush()
        assert account_row(gw.rt, "team-3")["provider"] == "anthropic"

        # disable, enable
        acc = gw.rt.pool.find("openai-1")
        await select_row(pilot, "#accounts", acc.id)
        await press(pilot, "e")
        await gw.flush()
        assert acc.enabled is False and account_row(gw.rt, "openai-1")["enabled"] is False
        await press(pilot, "e")
        await gw.flush()
        assert acc.enabled is True and account_row(gw.rt, "openai-1")["enabled"] is True

        # clear a cooldown
        acc = gw.rt.pool.find("anthropic-1")
        gw.rt.pool.failure(acc, UpstreamError(429, "rate_limit", "slow down", retry_after=120))
        assert acc.health() == "cooldown"
        await select_row(pilot, "#accounts", acc.id)
        await press(pilot, "c")
        await gw.flush()
        assert acc.health() == "healthy" and acc.cooldown_until == 0
        state = account_store.load_states(gw.rt.readers.get())[acc.id]
        assert not state.get("cooldown_until") and state.get("cause") is None

        # prefer; remove only after confirming
        acc = gw.rt.pool.find("gemini-1")
        await select_row(pilot, "#accounts", acc.id)
        await press(pilot, "p")
        await gw.flush()
        assert acc.preferred and account_row(gw.rt, "gemini-1")["preferred"] is True
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "n")
        assert gw.rt.pool.find("gemini-1") is not None
        await press(pilot, "x", "y")
        await gw.flush()
        assert gw.rt.pool.find("gemini-1") is None
        assert account_row(gw.rt, "gemini-1")["removed_at"] is not None


# ------------------------------------------------------------------ tenants


async def test_tenant_actions(gateway: Any) -> None:
    gw = gateway
    old_secret = await gw.mint("acme", usd=1.0, label="old")
    old_id = gw.rt.keyring.authenticate(old_secret)["id"]
    acme = tenant_store.by_name(gw.rt.readers.get(), "acme")
    async with console(gw, "tenants") as (app, pilot):
        # create a tenant
        await press(pilot, "n")
        app.screen.query_one("#name", Input).focus()
        await pilot.press(*"umbrella", "enter")
        await press(pilot)
        await gw.flush()
        assert tenant_store.by_name(gw.rt.readers.get(), "umbrella") is not None
        assert "umbrella" in {t["name"] for t in app.screen.snap["tenants"]}

        # mint: the secret is shown once, with a copy action, and the console keeps no copy
        await select_row(pilot, "#tenants", str(acme["id"]))
        await press(pilot, "k")
        assert (
            isinstance(app.screen, MintKeyDialog) and app.screen.query_one("#tenant", Input).value == "acme"
        )
        await fill(pilot, label="ci-runner")
        await press(pilot, "ctrl+s")
        dialog = app.screen
        assert isinstance(dialog, SecretDialog)
        secret = dialog.secret
        row = key_store.by_hash(gw.rt.readers.get(), key_store.hash_key(secret))
        assert row is not None and row["label"] == "ci-runner" and row["tenant"] == "acme"
        assert gw.rt.keyring.authenticate(secret)["id"] == row["id"]
        await press(pilot, "c")
        assert app.clipboard == secret
        await press(pilot, "escape")
        assert not isinstance(app.screen, SecretDialog) and dialog.secret == ""
        keys = [k for t in app.screen.snap["tenants"] for k in t["keys"]]
        assert row["id"] in {k["id"] for k in keys} and all(
            "secret" not in k and "hash" not in k for k in keys
        )

        # credit: decimal USD parsed exactly; finer than a micro-dollar is refused in the form
        before = ledger_store.balance(gw.rt.readers.get(), acme["id"])
        await press(pilot, "c")
        await fill(pilot, usd="0.1234567")
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, CreditDialog)
        assert "more than 6 decimal places" in app.screen.refusals()["usd"]
        await fill(pilot, usd="12.345678", note="invoice 7")
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert ledger_store.balance(gw.rt.readers.get(), acme["id"]) == before + 12_345_678
        assert gw.rt.wallet.balance[acme["id"]] == before + 12_345_678

        # revoke, after confirming: the key is refused at once
        await select_row(pilot, "#tenants", str(acme["id"]))
        await select_row(pilot, "#keys", old_id)
        await press(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "y")
        await gw.flush()
        assert key_store.get(gw.rt.readers.get(), old_id)["revoked_at"] is not None
    async with httpx.AsyncClient(base_url=gw.base_url) as client:
        r = await client.post(
            "/v1/messages",
            headers={"x-api-key": old_secret},
            json={"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert r.status_code == 401


async def refused_credit_is_fixed_in_its_dialog(
    app: Any, pilot: Any, gw: Any, tenant: dict[str, Any]
) -> None:
    """A refused credit keeps its dialog open with the refusal by the field the spec names and the values
    as typed; the fixed form goes through, closes and says so. Shared by the in-process and attached tests."""
    before = ledger_store.balance(gw.rt.readers.get(), tenant["id"])
    await select_row(pilot, "#tenants", str(tenant["id"]))
    await press(pilot, "c")
    dialog = app.screen
    assert isinstance(dialog, CreditDialog)
    await fill(pilot, usd="20000", note="invoice 9")  # over [billing] max_credit_usd (10,000 by default)
    await press(pilot, "ctrl+s")
    assert app.screen is dialog and not dialog.busy
    assert list(dialog.refusals()) == ["usd"] and "more than one credit may be" in dialog.refusals()["usd"]
    assert [dialog.value(f) for f in ("tenant", "usd", "note")] == [tenant["name"], "20000", "invoice 9"]
    assert app.focused is dialog.query_one("#usd")
    await fill(pilot, tenant="nobody-by-that-name", usd="5")  # the next refusal replaces the last
    await press(pilot, "ctrl+s")
    assert app.screen is dialog and list(dialog.refusals()) == ["tenant"]
    assert "no tenant named 'nobody-by-that-name'" in dialog.refusals()["tenant"]
    assert ledger_store.balance(gw.rt.readers.get(), tenant["id"]) == before
    await fill(pilot, tenant=tenant["name"])
    await press(pilot, "ctrl+s")
    assert not isinstance(app.screen, CreditDialog) and app.screen.MODE == "tenants"
    assert f"credited {usd(5_000_000)} to {tenant['name']}" in [n.message for n in app._notifications]
    await gw.flush()
    assert ledger_store.balance(gw.rt.readers.get(), tenant["id"]) == before + 5_000_000


async def test_a_refused_dialog_stays_open_until_fixed(gateway: Any) -> None:
    await gateway.mint("acme", usd=1.0)
    acme = tenant_store.by_name(gateway.rt.readers.get(), "acme")
    async with console(gateway, "tenants") as (app, pilot):
        await refused_credit_is_fixed_in_its_dialog(app, pilot, gateway, acme)
        # a confirmation's refusal shows in it too (the key is gone by the time it is confirmed)
        key_id = next(k["id"] for k in key_store.listing(gateway.rt.readers.get()))
        await select_row(pilot, "#tenants", str(acme["id"]))
        await select_row(pilot, "#keys", key_id)
        await press(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        app.screen.act = _refusing
        await press(pilot, "y")
        assert isinstance(app.screen, ConfirmDialog)
        assert app.screen.refusals() == {None: "the gateway said no"}
        await press(pilot, "n")
        assert not isinstance(app.screen, ConfirmDialog)
        assert key_store.get(gateway.rt.readers.get(), key_id)["revoked_at"] is None


async def _refusing(values: Any) -> Any:
    raise ActionError("invalid_request", "the gateway said no")


# ------------------------------------------------------------------ routing


async def test_routing_actions(gateway: Any) -> None:
    gw = gateway
    async with console(gw, "routing") as (app, pilot):
        await select_row(pilot, "#models", "gpt-4o")
        await press(pilot, "d")
        await gw.flush()
        conn = gw.rt.readers.get()
        assert (
            gw.rt.catalog.default_model == "gpt-4o" and settings_store.get(conn, "default_model") == "gpt-4o"
        )

        await press(pilot, "a")
        await fill(pilot, alias="fast")
        app.screen.query_one("#target", Select).value = "claude-haiku-4-5"
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert settings_store.get(gw.rt.readers.get(), "aliases") == {"fast": "claude-haiku-4-5"}
        assert gw.rt.catalog.resolve("fast").name == "claude-haiku-4-5"

        await press(pilot, "h")
        app.screen.query_one("#model", Select).value = "gemini-2.5-flash"
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert gw.rt.catalog.haiku_model == "gemini-2.5-flash"
        assert settings_store.get(gw.rt.readers.get(), "haiku_model") == "gemini-2.5-flash"

        await select_row(pilot, "#aliases", "fast")
        await press(pilot, "x", "y")
        await gw.flush()
        assert settings_store.get(gw.rt.readers.get(), "aliases") == {}


# ------------------------------------------------------------------ streams and events


async def test_a_real_request_appears_with_its_detail_and_events_reach_the_log(gateway: Any) -> None:
    gw = gateway
    async with console(gw, "streams") as (app, pilot):
        secret = await gw.mint("acme", usd=5.0, label="laptop")
        async with httpx.AsyncClient(base_url=gw.base_url) as client:
            r = await client.post(
                "/v1/messages",
                headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
                json={
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": "hi [usage in=1000 out=20]"}],
                },
            )
        assert r.status_code == 200
        request_id = gw.rt.traffic.recent[0].id
        await gw.flush()  # the history reads the stored usage rows
        await app.screen.reload()
        recent = app.screen.query_one("#recent", LiveTable)
        assert recent.selected_key == request_id
        recent.focus()
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, RequestScreen) and screen.request_id == request_id
        await screen.reload()
        assert screen.detail is not None
        assert screen.detail["line_items"]["input"]["tokens"] == 1000
        assert screen.detail["headers"]["x-api-key"] == "[redacted]"
        assert secret not in str(screen.detail)
        items = screen.query_one("#items", LiveTable)
        assert {"input", "output"} <= {str(k.value) for k in items.rows}
        headers = screen.query_one("#headers", LiveTable)  # shown literally, not read as markup
        assert headers.get_cell("x-api-key", "value").plain == "[redacted]"
        await press(pilot, "escape")
        assert app.screen.MODE == "streams" and not isinstance(app.screen, RequestScreen)

        for _ in range(200):  # the event pump is a task on this loop: wait for it, bounded, no sleeps
            if any(e["topic"] == "key.created" for e in app.event_log):
                break
            await pilot.pause()
        topics = [e["topic"] for e in app.event_log]
        assert "tenant.balance" in topics and "key.created" in topics
        assert "request.started" not in topics  # high-rate topics are counted, not logged
        await press(pilot, "1")
        assert "key.created" in str(app.screen.query_one("#events").render())


# ------------------------------------------------------------------ theme, keymap, timers, quit


async def test_theme_toggle_and_quit(gateway: Any) -> None:
    subscribers = len(gateway.rt.bus._subs)
    async with console(gateway, "help", size=(80, 24)) as (app, pilot):
        assert len(gateway.rt.bus._subs) == subscribers + 1  # the console's event pump
        assert app.current_theme.dark
        await press(pilot, "t")
        assert app.theme == "textual-light" and not app.current_theme.dark
        await press(pilot, "t")
        assert app.theme == "textual-dark"
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 and app.closed
    assert len(gateway.rt.bus._subs) == subscribers  # the pump let go of the bus
    async with httpx.AsyncClient(base_url=gateway.base_url) as client:  # the gateway runs on
        assert (
            await client.get("/v1/models", headers={"x-api-key": await gateway.mint("after")})
        ).status_code == 200


async def test_bindings_are_remapped_by_id(gateway: Any) -> None:
    acc = gateway.rt.pool.find("anthropic-1")
    gateway.rt.pool.failure(acc, UpstreamError(503, "overloaded", "busy", retry_after=60))
    async with console(gateway, "help", keymap={"accounts.reset": "z", "show.accounts": "A"}) as (app, pilot):
        rows = app.screen.rows()
        assert ("Accounts", "z", "Clear cooldown", "accounts.reset") in rows
        assert ("Everywhere", "A", "Accounts", "show.accounts") in rows
        await press(pilot, "A")
        assert app.screen.MODE == "accounts"
        await select_row(pilot, "#accounts", acc.id)
        await press(pilot, "c")  # no longer bound
        assert acc.health() == "cooldown"
        await press(pilot, "z")
        assert acc.health() == "healthy"


async def test_the_configs_console_keymap_remaps_bindings(make_gateway: Any) -> None:
    """``[console] keymap`` in the config reaches the console (through the snapshot, so attach gets it too)."""
    gw = await make_gateway(console={"keymap": {"accounts.reset": "z"}})
    async with console(gw, "help") as (app, pilot):
        assert ("Accounts", "z", "Clear cooldown", "accounts.reset") in app.screen.rows()
        assert app.keymap_overrides == {"accounts.reset": "z"}


async def test_refresh_timer_runs_only_on_the_visible_screen(gateway: Any) -> None:
    async with console(gateway, "overview", refresh_ms=50) as (app, pilot):
        overview = app.screen
        await pilot.press("2")
        streams = app.screen
        assert streams.MODE == "streams"

        async def until(condition: Any) -> None:
            for _ in range(200):  # bounded wait for the timers, no timed assertion
                if condition():
                    return
                await pilot.pause(0.02)

        await until(lambda: not overview._busy)
        frozen, start = overview.reloads, streams.reloads
        await until(lambda: streams.reloads >= start + 3)
        assert streams.reloads >= start + 3  # the visible screen's timer re-arms itself
        assert overview.reloads == frozen and overview._timer is None  # the hidden one stopped
        await pilot.press("1")
        await until(lambda: overview.reloads > frozen)
        assert overview.reloads > frozen
