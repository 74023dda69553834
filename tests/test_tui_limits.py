"""The console's budget, token-rate and fallback controls, driven with Pilot against a real gateway."""

from __future__ import annotations

from typing import Any

from test_tui_actions import console, fill, press, select_row
from textual.widgets import Select

from gatewaytui.store import keys as key_store
from gatewaytui.store import settings as settings_store
from gatewaytui.store import tenants as tenant_store
from gatewaytui.tui.screens.dialogs import FallbackDialog, MintKeyDialog, SecretDialog, TenantRateDialog


def problem(app: Any) -> str:
    return " | ".join(app.screen.refusals().values())


async def test_mint_dialog_sets_a_budget_and_a_token_rate(gateway: Any) -> None:
    gw = gateway
    await gw.mint("acme", usd=1.0, label="first")
    acme = tenant_store.by_name(gw.rt.readers.get(), "acme")
    async with console(gw, "tenants", size=(120, 35)) as (app, pilot):
        await select_row(pilot, "#tenants", str(acme["id"]))
        await press(pilot, "k")
        assert isinstance(app.screen, MintKeyDialog)
        # the form's own checks: dollars exact to the micro-dollar, a period needs a budget, tpm is a number
        for values, says in [
            ({"budget": "0.0000001"}, "more than 6 decimal places"),
            ({"budget": "", "period": "month"}, "a budget period needs a budget"),
            ({"period": "", "tpm": "lots"}, "a whole number"),
        ]:
            await fill(pilot, **values)
            await press(pilot, "ctrl+s")
            assert isinstance(app.screen, MintKeyDialog) and says in problem(app), problem(app)
        # the action's spec answers what only it knows (a rolling window of 0 hours is no period): the
        # dialog stays open with the refusal by the period field and the values as typed
        await fill(pilot, label="ci", budget="2.50", period="0h", tpm="90000")
        await press(pilot, "ctrl+s")
        dialog = app.screen
        assert isinstance(dialog, MintKeyDialog) and set(dialog.refusals()) == {"period"}, problem(app)
        assert [dialog.value(f) for f in ("label", "budget", "period", "tpm")] == [
            "ci",
            "2.50",
            "0h",
            "90000",
        ]
        assert not [k for k in key_store.listing(gw.rt.readers.get()) if k.get("label") == "ci"]
        await fill(pilot, period="24h")
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, SecretDialog)
        row = key_store.by_hash(gw.rt.readers.get(), key_store.hash_key(app.screen.secret))
        assert (row["budget_micro"], row["budget_period"], row["tpm"]) == (2_500_000, "24h", 90_000)
        await press(pilot, "escape")
        shown = next(k for t in app.screen.snap["tenants"] for k in t["keys"] if k["id"] == row["id"])
        assert (shown["remaining_micro"], shown["tpm"]) == (2_500_000, 90_000)

        # the tenant's own token rate
        await select_row(pilot, "#tenants", str(acme["id"]))
        await press(pilot, "l")
        assert isinstance(app.screen, TenantRateDialog)
        await fill(pilot, tpm="250000")
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert tenant_store.by_name(gw.rt.readers.get(), "acme")["tpm"] == 250_000
        assert gw.rt.limits.tenant_limit(acme["id"]) == 250_000
        await press(pilot, "l")
        assert app.screen.query_one("#tpm").value == "250000"
        await fill(pilot, tpm="")
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert tenant_store.by_name(gw.rt.readers.get(), "acme")["tpm"] is None


async def test_routing_screen_edits_fallbacks(gateway: Any) -> None:
    gw = gateway
    async with console(gw, "routing") as (app, pilot):
        await select_row(pilot, "#models", "claude-sonnet-4-5")
        await press(pilot, "f")
        assert isinstance(app.screen, FallbackDialog)
        await fill(pilot, then="gpt-4o, gemini-2.5-flash")
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert settings_store.get(gw.rt.readers.get(), "fallbacks") == {
            "claude-sonnet-4-5": ["gpt-4o", "gemini-2.5-flash"]
        }
        table = app.screen.query_one("#fallbacks")
        assert table.row_count == 1
        # a model that is not configured: the action refuses, nothing changes
        await press(pilot, "f")
        app.screen.query_one("#model", Select).value = "gpt-4o"
        await pilot.pause()
        assert app.screen.query_one("#then").value == ""
        await fill(pilot, then="no-such-model")
        await press(pilot, "ctrl+s")
        assert gw.rt.catalog.fallbacks == {"claude-sonnet-4-5": ["gpt-4o", "gemini-2.5-flash"]}
        assert isinstance(app.screen, FallbackDialog)
        assert "no model 'no-such-model'" in app.screen.refusals()["then"]
        await press(pilot, "escape")
        assert not isinstance(app.screen, FallbackDialog)
        # from the fallbacks table, the chain is prefilled; blank removes it
        await select_row(pilot, "#fallbacks", "claude-sonnet-4-5")
        await press(pilot, "f")
        assert app.screen.query_one("#then").value == "gpt-4o, gemini-2.5-flash"
        await fill(pilot, then="")
        await press(pilot, "ctrl+s")
        await gw.flush()
        assert gw.rt.catalog.fallbacks == {}
        assert settings_store.get(gw.rt.readers.get(), "fallbacks") == {}
