"""SVG snapshots of every console screen and dialog: a frozen clock, deterministic ids, seeded data on a temp DB.

Regenerate after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and review
the SVGs under ``tests/__snapshots__/``.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_tui_support import FROZEN, freeze, ready, seeded_app
from textual.widgets import Input

from gatewaytui.tui.widgets import LiveTable

SIZE = (100, 30)
NARROW = (80, 24)

EVENTS = [
    {
        "topic": "account.cooldown",
        "at": FROZEN - 18,
        "data": {"label": "anthropic-2", "cause": "rate_limit", "error": "429 rate_limit: per-minute limit"},
    },
    {"topic": "routing.changed", "at": FROZEN - 95, "data": {"haiku_model": "gemini-2.5-flash"}},
    {"topic": "key.revoked", "at": FROZEN - 140, "data": {"key_id": "key_000000000000000a"}},
    {"topic": "tenant.balance", "at": FROZEN - 300, "data": {"tenant_id": 1, "note": "topup $25.000000"}},
]


@pytest.fixture
def app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    freeze(monkeypatch)
    return seeded_app(str(tmp_path / "console.db"))


@pytest.fixture
def demo_app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """As the demo starts it: the console knows where clients connect and the demo tenant's key."""
    freeze(monkeypatch)
    return seeded_app(
        str(tmp_path / "console.db"), base_url="http://127.0.0.1:8080", demo_key="gw-demo0001xxxxxxxxxxxxxxxx"
    )


def quiet_inputs(pilot: Any) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False  # a blinking cursor would make the picture depend on timing


class TestOverview:
    def test_overview(self, demo_app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await pilot.app.opened.wait()
            pilot.app.event_log.extend(EVENTS)
            await ready(pilot)

        assert snap_compare(demo_app, terminal_size=SIZE, run_before=run_before)

    def test_demo_key_shown_again_in_80x24(self, demo_app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "k")

        assert snap_compare(demo_app, terminal_size=NARROW, run_before=run_before)

    def test_overview_light_theme_in_80x24(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "t")

        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


class TestStreams:
    def test_streams(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "2")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_streams_in_80x24(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "2")

        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_history_filtered_and_sorted_by_cost(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "2", "slash")
            pilot.app.screen.query_one("#filter", Input).value = "status:error"
            quiet_inputs(pilot)
            await ready(pilot, "enter")
            pilot.app.screen._sort("cost", True)
            await ready(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_request_detail(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "2")
            recent = pilot.app.screen.query_one("#recent", LiveTable)
            recent.focus()
            recent.move_cursor(row=recent.get_row_index("req_0900"), animate=False)
            await ready(pilot, "enter")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class TestAccounts:
    def test_accounts(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "3", "down")  # the account in cooldown: its cause and countdown in the detail

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_accounts_in_80x24(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "3")

        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_add_account_dialog_in_80x24(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "3", "a")
            pilot.app.notify("a notice goes to the dialog's note line, not over its buttons")
            quiet_inputs(pilot)
            await pilot.pause()

        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_add_account_dialog(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "3", "a")
            dialog = pilot.app.screen
            dialog.query_one("#label", Input).value = "anthropic-team-2"
            dialog.query_one("#api_key", Input).value = "sk-ant-not-shown"
            dialog.query_one("#api_key", Input).focus()
            quiet_inputs(pilot)
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class TestTenants:
    def test_tenants(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "4")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_tenants_in_80x24(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "4")

        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_new_key_shown_once(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "4", "k")
            pilot.app.screen.query_one("#label", Input).value = "ci-runner"
            await ready(pilot, "ctrl+s")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_mint_key_dialog_with_a_budget_and_a_token_rate(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "4", "k")
            for field, value in {
                "label": "ci-runner",
                "budget": "5",
                "period": "month",
                "tpm": "90000",
            }.items():
                pilot.app.screen.query_one(f"#{field}", Input).value = value
            quiet_inputs(pilot)
            await ready(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_credit_dialog_refuses_sub_micro_amounts(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "4", "c")
            pilot.app.screen.query_one("#usd", Input).value = "0.0000001"
            quiet_inputs(pilot)
            await ready(pilot, "ctrl+s")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class TestRouting:
    def test_routing(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "5")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

    def test_routing_in_80x24(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "5")

        assert snap_compare(app, terminal_size=NARROW, run_before=run_before)

    def test_fallback_dialog(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "5", "f")
            quiet_inputs(pilot)
            await ready(pilot)

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


class TestHelp:
    def test_help(self, app: Any, snap_compare: Any) -> None:
        async def run_before(pilot: Any) -> None:
            await ready(pilot, "6")

        assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
