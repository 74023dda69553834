"""The console fits the terminal: at 80x24 and 160x48 every screen shows whole column headers, the tabs,
quit and the command palette key; no notification covers a dialog; tables size columns to the width."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from test_oauth import auth_server, free_port, oauth_gateway  # noqa: F401,F811 - fixtures
from test_tui_support import freeze, ready, seeded_app
from textual.widgets import Button, Input, Select, Static
from textual.widgets._toast import Toast

from gatewaytui.tui.screens.dialogs import Dialog
from gatewaytui.tui.widgets import Col, LiveTable
from gatewaytui.tui.widgets.live_table import layout

SIZES = [(80, 24), (160, 48)]
SCREENS = ["1", "2", "3", "4", "5", "6"]
DIALOGS = [  # (screen key, keys that open a dialog)
    ("3", ("a",)),
    ("3", ("x",)),
    ("4", ("n",)),
    ("4", ("k",)),
    ("4", ("c",)),
    ("5", ("a",)),
    ("5", ("h",)),
]


@pytest.fixture
def app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    freeze(monkeypatch)
    return seeded_app(str(tmp_path / "console.db"))


def headers_whole(table: LiveTable) -> list[str]:
    """Problems with a table's header: a label wider than its column, or a column past the table's edge."""
    problems = []
    x = 0
    for column in table.ordered_columns:
        label = column.label.plain
        width = column.get_render_width(table)
        if cell_len(label) > width - 2 * table.cell_padding:
            problems.append(f"{table.id}: header {label!r} cut to {width - 2 * table.cell_padding}")
        x += width
        if x > table.scrollable_content_region.width:
            problems.append(
                f"{table.id}: header {label!r} ends at {x}, past {table.scrollable_content_region.width}"
            )
    return problems


def inside(widget: Any, screen_size: Any) -> bool:
    r = widget.region
    return (
        r.width > 0
        and r.x >= 0
        and r.y >= 0
        and r.right <= screen_size.width
        and r.bottom <= screen_size.height
    )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_screen_shows_whole_headers_tabs_and_quit(app: Any, size: tuple[int, int]) -> None:
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        for key in SCREENS:
            await ready(pilot, key)
            screen = app.screen
            tables = list(screen.query(LiveTable))
            problems = [p for t in tables for p in headers_whole(t)]
            assert problems == [], f"screen {key} at {size}: {problems}"
            for mode in ("overview", "streams", "accounts", "tenants", "routing", "help"):
                assert inside(screen.query_one(f"#tab-{mode}"), screen.size), f"tab {mode} hidden at {size}"
            pinned = {k.action for k in screen.query("#pinned FooterKey")}
            assert {"quit", "command_palette"} <= pinned
            assert inside(screen.query_one("#pinned"), screen.size)
        # help: every binding id and section title whole at this width (rendered as the screen draws it)
        await ready(pilot, "6")
        bindings = app.screen.query_one("#bindings", Static)
        drawn = Console(width=bindings.content_region.width, file=io.StringIO(), record=True)
        drawn.print(bindings.content)
        lines = drawn.export_text().splitlines()
        for section, _, _, binding_id in app.screen.rows():
            assert any(line.strip() == section for line in lines), f"help section {section!r} cut at {size}"
            assert any(line.rstrip().endswith(" " + binding_id) for line in lines), (
                f"{binding_id} cut at {size}"
            )
        assert not any("…" in line for line in lines), f"help cut at {size}"
        # the streams screen at 80 columns keeps what the issue missed: Cost and Time
        await ready(pilot, "2")
        recent = app.screen.query_one("#recent", LiveTable)
        assert {"cost", "time", "status", "model"} <= {c.key for c, _ in recent.shown}
        recent.focus()
        recent.move_cursor(row=recent.get_row_index("req_0900"), animate=False)
        await ready(pilot, "enter")  # the request detail
        problems = [p for t in app.screen.query(LiveTable) for p in headers_whole(t)]
        assert problems == [], f"request detail at {size}: {problems}"
        headers = app.screen.query_one("#headers", LiveTable)  # the request's header names, whole
        names = [headers.get_cell(str(row.value), "name").plain for row in headers.rows]
        assert "anthropic-version" in names and not [n for n in names if n.endswith("…")], names
        assert "Summarise the attached incident report" in str(app.screen.query_one("#request-body").render())
        assert "curl http://127.0.0.1:8080/v1/messages -N" in app.screen.curl


async def test_wide_terminal_shows_names_whole(app: Any) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot, "2")
        inflight = app.screen.query_one("#inflight", LiveTable)
        assert inflight.get_cell("req_0001", "model").plain == "claude-sonnet-4-5"  # not "claude-son…"
        assert inflight.get_cell("req_0002", "route").plain == "claudecode·anth"
        await ready(pilot, "3")
        accounts = app.screen.query_one("#accounts", LiveTable)
        assert {c.key for c, _ in accounts.shown} == {c.key for c in accounts._spec}  # nothing dropped at 160


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_no_notification_covers_a_dialog(app: Any, size: tuple[int, int]) -> None:
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        for screen_key, keys in DIALOGS:
            await ready(pilot, screen_key, "down")
            app.notify("an earlier notice")  # showing when the dialog opens
            await pilot.pause()
            await ready(pilot, *keys)
            dialog = app.screen
            assert isinstance(dialog, Dialog), f"{keys} opened {dialog!r}"
            app.notify("a notice while the dialog is open", severity="warning")
            await pilot.pause()
            assert list(app.screen.query(Toast)) == [], f"a toast over {type(dialog).__name__} at {size}"
            note = dialog.query_one(".note")
            assert "a notice while the dialog is open" in str(note.render())
            for button in dialog.query(Button):
                assert inside(button, dialog.size), f"{type(dialog).__name__} button {button.id} off screen"
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, Dialog)


async def test_notifications_time_out(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.notify("hello")
        app.notify("explicit", timeout=2)
        await pilot.pause()
        timeouts = [n.timeout for n in app._notifications]
        assert timeouts and all(t is not None and 0 < t <= 10 for t in timeouts)


def test_layout_drops_low_priority_columns_first_and_shares_spare_width() -> None:
    cols = [
        Col("name", "Name", 6, grow=2),
        Col("kind", "Kind", 8, drop=2),
        Col("note", "Note", 6, grow=1, drop=1),
        Col("cost", "Cost", 8),
    ]
    natural = {"name": 20, "note": 30}
    wide = dict((c.key, w) for c, w in layout(cols, natural, 200, 1))
    assert wide == {"name": 20, "kind": 8, "note": 30, "cost": 8}  # room for everything: nothing cut
    mid = dict((c.key, w) for c, w in layout(cols, natural, 60, 1))
    assert "kind" not in mid and mid["name"] == 20  # kind (rank 2) went so the important name shows whole
    narrow = [c.key for c, _ in layout(cols, natural, 30, 1)]
    assert narrow == ["name", "cost"]
    tiny = dict((c.key, w) for c, w in layout(cols, natural, 10, 1))
    assert tiny == {"name": 6, "cost": 8}  # never below the header's width, even when nothing fits
    assert Col("x", "Available", 3).least == 9


async def test_history_keeps_the_selection_filters_sorts_pauses_and_jumps(app: Any) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, "2")
        screen = app.screen
        recent = screen.query_one("#recent", LiveTable)
        assert recent.row_count > 50  # the store's history, not the 50 kept in memory
        recent.focus()
        recent.move_cursor(row=5, animate=False)
        chosen = recent.selected_key
        source = app.source
        from test_tui_support import flight, store_finished

        newer = [flight(2000 + i, now=1_767_268_800.0, age=0.5, state="done", status=200) for i in range(3)]
        for f in newer:
            f.ended = f.started + 0.2
        await store_finished(source.rt, newer)
        await screen.reload()
        assert recent.selected_key == chosen  # rows arrived above: the selection stayed on its request
        assert recent.cursor_row == 8

        await pilot.press("space")  # pause: rows arriving do not show
        await app.settle()
        more = [flight(3000, now=1_767_268_800.0, age=0.1, state="done", status=200)]
        more[0].ended = more[0].started + 0.05
        await store_finished(source.rt, more)
        count = recent.row_count
        await screen.reload()
        assert recent.row_count == count and "PAUSED" in str(screen.query_one("#recent-title").render())
        await pilot.press("g")  # newest: resumes, cursor on the newest row
        await app.settle()
        await screen.reload()
        await pilot.pause()
        assert not screen.paused and recent.selected_key == "req_3000" and recent.cursor_row == 0

        await pilot.press("slash")
        box = screen.query_one("#filter", Input)
        assert box.has_focus
        box.value = "status:error"
        await pilot.press("enter")
        await app.settle()
        await screen.reload()
        errors = [r for r in screen.history if r["status"] != "error"]
        assert screen.history and errors == []
        assert all(str(recent.get_cell(k, "status").plain).startswith("502") for k in map(str, recent._order))
        await pilot.press("slash", "escape")
        await app.settle()
        await screen.reload()
        assert screen.filter_text == "" and recent.row_count > 50

        await pilot.press("s")  # sort by the next column (tenant), then by cost via the header
        await app.settle()
        assert screen.sort == "tenant"
        screen._sort("cost", True)
        await screen.reload()
        costs = [r["cost_micro"] for r in screen.history]
        assert costs == sorted(costs, reverse=True)
        assert recent.ordered_columns[-1].label.plain == "Cost▼"
        await pilot.press("r")
        await app.settle()
        await screen.reload()
        costs = [r["cost_micro"] for r in screen.history]
        assert costs == sorted(costs)


async def test_history_sorts_by_the_columns_shown_and_starts_each_order_at_its_top(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, "2")
        screen = app.screen
        recent = screen.query_one("#recent", LiveTable)
        shown = [c.key for c, _ in recent.shown]
        assert "account" not in shown and "ttft" not in shown  # dropped at 80 columns
        ago = next(c for c in recent.ordered_columns if c.key.value == "started")
        assert ago.label.plain == "Ago▲"  # newest first: the Ago values rise down the list
        seen = []
        for _ in range(len(shown)):
            await pilot.press("s")
            await app.settle()
            seen.append(screen.sort)
        assert seen == [*shown[1:], shown[0]]  # every shown column once, none that is not shown
        screen._sort("cost", True)
        await screen.reload()
        recent.focus()
        recent.move_cursor(row=30, animate=False)  # well down the list, then a new order
        await pilot.press("r")
        await app.settle()
        await screen.reload()
        await pilot.pause()
        assert recent.cursor_row == 0 and recent.scroll_y == 0
        costs = [r["cost_micro"] for r in screen.history]
        assert costs == sorted(costs)
        assert "by Cost ▲" in str(screen.query_one("#recent-title").render())


def test_the_demo_keys_curl_fits_80_columns_and_pastes_as_the_same_request() -> None:
    import json
    import shlex

    from gatewaytui.tui.format import curl_line, curl_lines

    key = "gw-" + "k" * 43  # a minted key's length
    shown = curl_lines("http://127.0.0.1:8080", key)
    assert max(map(len, shown.splitlines())) <= 70  # inside the dialog at 80 columns
    pasted = shlex.split(shown.replace("\\\n", " "))  # what a shell makes of the pasted lines
    one = shlex.split(curl_line("http://127.0.0.1:8080", key))
    assert pasted[:-1] == one[:-1] and json.loads(pasted[-1]) == json.loads(one[-1])


async def test_quit_with_streams_in_flight_asks_first(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog" and app.is_running
        assert "4 requests in flight" in str(app.screen.query_one(".title").render())
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and type(app.screen).__name__ == "OverviewScreen"
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        for _ in range(100):  # the answer runs as a callback on this loop: wait for it, bounded
            if app.closed:
                break
            await pilot.pause()
        assert app.closed


async def test_command_palette_offers_the_screens_actions(app: Any) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, "4")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Cursor down" not in commands  # a table's own keys are not operator actions
        assert "Copy selected text" not in commands and "Focus Next" not in commands
        assert {
            "New tenant",
            "Mint key",
            "Credit",
            "Revoke key",
            "Theme",
            "Quit",
            "Overview",
            "Routing",
        } <= set(commands)
        await commands["Routing"].callback()
        await ready(pilot)
        assert app.screen.MODE == "routing"
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"


async def test_a_new_tenant_gets_the_cursor(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, "4", "n")
        app.screen.query_one("#name", Input).value = "zeta-corp"
        await ready(pilot, "ctrl+s")
        await app.screen.reload()
        table = app.screen.query_one("#tenants", LiveTable)
        assert table.get_cell(table.selected_key, "name").plain == "zeta-corp"


async def test_tabs_take_clicks(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.click("#tab-tenants")
        await ready(pilot)
        assert app.screen.MODE == "tenants"
        assert app.screen.query_one("#tab-tenants").has_class("-current")


async def test_the_demo_key_stays_in_the_overview_and_shows_again(tmp_path: Any, monkeypatch: Any) -> None:
    freeze(monkeypatch)
    app = seeded_app(
        str(tmp_path / "c.db"), base_url="http://127.0.0.1:8080", demo_key="gw-demo-key-0123456789"
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert list(app.screen.query(Toast)) == []  # no notification that stays until clicked
        shown = str(app.screen.query_one("#connection").render())
        assert "http://127.0.0.1:8080" in shown and "gw-demo-key-0123456789" in shown
        await ready(pilot, "k")
        dialog = app.screen
        assert type(dialog).__name__ == "SecretDialog"
        assert "gw-demo-key-0123456789" in str(dialog.query_one("#secret").render())
        assert "curl http://127.0.0.1:8080/v1/messages" in str(dialog.query_one("#extra").render())
        await ready(pilot, "u")  # the curl command, as shown: it pastes into a shell as one command
        assert app.clipboard.startswith("curl http://127.0.0.1:8080/v1/messages \\\n")
        assert "x-api-key: gw-demo-key-0123456789" in app.clipboard
        await ready(pilot, "c")
        assert app.clipboard == "gw-demo-key-0123456789"
        await ready(pilot, "escape")
        await ready(pilot, "k")  # not a shown-once secret: it shows again
        assert "gw-demo-key-0123456789" in str(app.screen.query_one("#secret").render())


async def test_no_color_keeps_the_selection_visible(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    freeze(monkeypatch)
    app = seeded_app(str(tmp_path / "c.db"))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, "3")
        assert app.no_color
        style = app.screen.query_one("#accounts", LiveTable).get_component_rich_style("datatable--cursor")
        assert style.reverse


async def test_light_theme_tile_titles_are_readable(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, "t")
        assert not app.current_theme.dark
        tile = app.screen.query_one("#rps")
        title = tile.styles.border_title_color
        background = tile.background_colors[1]
        assert _contrast(title.rgb, background.rgb) >= 4.5


def _contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    def lum(c: tuple[int, int, int]) -> float:
        parts = [x / 255 for x in c]
        parts = [p / 12.92 if p <= 0.03928 else ((p + 0.055) / 1.055) ** 2.4 for p in parts]
        return 0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def test_add_account_dialog_offers_oauth(app: Any) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, "3", "a")
        dialog = app.screen
        dialog.query_one("#auth", Select).value = "oauth"
        await pilot.pause()
        assert not dialog.query_one("#api_key", Input).display
        assert dialog.collect() == {"provider": "anthropic", "label": None, "base_url": None, "oauth": True}


async def test_oauth_account_added_from_the_console(oauth_gateway: Any, upstream: Any) -> None:  # noqa: F811
    """The dialog starts a real PKCE flow; the 'browser' approves; the dialog closes on its own."""
    import httpx

    from gatewaytui.tui.app import ConsoleApp
    from gatewaytui.tui.screens.dialogs import OAuthDialog
    from gatewaytui.tui.source import LocalSource

    gw = await oauth_gateway(free_port())
    app = ConsoleApp(LocalSource(gw.rt), refresh_ms=60_000, screen="accounts")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, "a")
        dialog = app.screen
        dialog.query_one("#auth", Select).value = "oauth"
        dialog.query_one("#label", Input).value = "max-1"
        dialog.query_one("#base_url", Input).value = upstream.base_url
        await ready(pilot, "ctrl+s")
        oauth = app.screen
        assert isinstance(oauth, OAuthDialog)
        url = str(oauth.flow["authorize_url"])
        assert url in str(oauth.query_one("#url").render()).replace("\n", "")
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(url)
        assert "Account added" in page.text
        for _ in range(400):  # the dialog polls once a second: wait for it, bounded
            if not isinstance(app.screen, OAuthDialog):
                break
            await pilot.pause(0.01)
        assert not isinstance(app.screen, OAuthDialog)
        await app.settle()
        await app.screen.reload()
        table = app.screen.query_one("#accounts", LiveTable)
        assert "max-1" in {table.get_cell(k, "label").plain for k in map(str, table._order)}


def test_readme_console_table_matches_the_console() -> None:
    """Every screen has a row in README's console table, and every key it binds is in that row."""
    from pathlib import Path

    from textual.binding import Binding

    from gatewaytui.tui.app import SCREENS, ConsoleApp
    from gatewaytui.tui.screens.request import RequestScreen

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## The console\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    shown = {"slash": "/", "escape": "esc", "question_mark": "?"}
    wanted = [(f"`{n}` {title}", cls.BINDINGS) for n, (_, title, cls) in enumerate(SCREENS, start=1)]
    wanted += [("Request details", RequestScreen.BINDINGS), ("Everywhere", ConsoleApp.BINDINGS)]
    for name, bindings in wanted:
        assert name in rows, f"README's console table has no row for {name}"
        for b in Binding.make_bindings(bindings):
            if b.action.startswith(("show(", "app.focus_next")):
                continue  # the tabs (numbers) and moving between tables
            key = shown.get(b.key, b.key)
            assert f"`{key}`" in rows[name], f"README's {name} row does not mention `{key}` ({b.description})"
