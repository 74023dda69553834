"""Streams: requests in flight (live tokens, tok/s, running cost) over a scrollable history of finished ones.

The history comes from the store (the ``requests`` table), not from the 50 requests the gateway keeps in
memory: it scrolls back as far as the operator likes (more rows load when the cursor reaches the last one),
filters with ``/`` (``tenant:acme model:sonnet account:anth status:error`` and free text), sorts by any
column (``s`` steps through the columns, ``r`` reverses, a click on a header sorts by it), pauses with
``space`` and jumps back to the newest with ``g``. The cursor stays on its request when rows arrive.
"""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Label

from ..format import PROTOCOL_SHORT, STATE_STYLE, count, duration, ms, rate, styled, usd
from ..widgets import Col, LiveTable, StatusBar
from .base import ConsoleScreen

INFLIGHT_COLUMNS = [
    Col("who", "Tenant·key", 10, grow=1),
    Col("route", "Route·wire", 10, grow=1, drop=3),
    Col("model", "Model", 12, grow=2),
    Col("account", "Account", 10, grow=1, drop=2),
    Col("state", "State", 9),
    Col("ttft", "TTFT", 5, drop=1),
    Col("tokens", "Tokens", 6),
    Col("tps", "tok/s", 5),
    Col("cost", "Cost", 8),
]
HISTORY_COLUMNS = [
    Col("started", "Ago", 5),
    Col("tenant", "Tenant", 6, grow=1),
    Col("model", "Model", 12, grow=2),
    Col("account", "Account", 10, grow=1, drop=2),
    Col("status", "Status", 9),
    Col("tokens", "In/Out", 9),
    Col("ttft", "TTFT", 5, drop=3),
    Col("time", "Time", 5),
    Col("cost", "Cost", 8),
]
SORTS = [c.key for c in HISTORY_COLUMNS]  # each history column sorts by the store's field of the same name
LABELS = {c.key: c.label for c in HISTORY_COLUMNS}
SHOWN_REVERSED = {"started"}  # "Ago" shows time since the start: it grows as the start time falls
FILTERS = ("tenant", "model", "account", "status")
PAGE = 200  # history rows fetched at first; each time the cursor reaches the last row, this many more
STATUS_STATE = {"ok": "done", "error": "error", "cancelled": "cancelled"}


def route(flight: dict[str, Any]) -> str:
    return f"{flight['route']}·{PROTOCOL_SHORT.get(flight['protocol'], flight['protocol'])}"


def inflight_row(f: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return f["id"], (
        f"{f['tenant']}·{f.get('key_label') or '-'}",
        route(f),
        f["model"],
        f["account"] or "-",
        styled(f["state"], STATE_STYLE),
        ms(f["ttft_ms"]),
        count(f["output_tokens"]),
        rate(f["tokens_per_s"]),
        _running_cost(f),
    )


def history_row(r: dict[str, Any], now: float) -> tuple[str, tuple[Any, ...]]:
    """A stored request (``store.requests.history``) as a row."""
    state = STATUS_STATE.get(r.get("status") or "", r.get("status") or "-")
    took = (r.get("duration_ms") or 0.0) / 1000
    return r["id"], (
        duration(max(0.0, now - r["started_at"])),  # since it started: the order the history is sorted in
        r.get("tenant") or "-",
        r.get("model") or "-",
        r.get("account") or "-",
        Text(f"{r.get('http_status') or '-'} {state}", style=STATE_STYLE.get(state, "")),
        f"{count(r.get('input_tokens'))}/{count(r.get('output_tokens'))}",
        ms(r.get("ttft_ms")),
        duration(took) if took >= 1 else ms(took * 1000),
        usd(r.get("cost_micro")),
    )


def parse_filter(text: str) -> tuple[dict[str, str], str]:
    """``tenant:acme status:error slow`` -> ({"tenant": "acme", "status": "error"}, "slow"). A word whose
    prefix is not a filter name is free text; quotes keep spaces (``model:"gpt 4"``)."""
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as typed
        words = text.split()
    filters: dict[str, str] = {}
    free: list[str] = []
    for word in words:
        name, sep, value = word.partition(":")
        if sep and name.lower() in FILTERS and value:
            filters[name.lower()] = value
        else:
            free.append(word)
    return filters, " ".join(free)


def _running_cost(f: dict[str, Any]) -> str:
    """A settled cost, or "~" and the cost of the tokens so far while the request runs."""
    cost = usd(f["cost_micro"])
    return "~" + cost if f.get("cost_estimated") and not cost.startswith("<") else cost


class StreamsScreen(ConsoleScreen):
    CSS_PATH = "streams.tcss"
    MODE = "streams"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", id="streams.open"),
        Binding("slash", "filter", "Filter", id="streams.filter"),
        Binding("s", "sort", "Sort", id="streams.sort"),
        Binding("r", "reverse", "Reverse", id="streams.reverse", show=False),
        Binding("space", "pause", "Pause", id="streams.pause"),
        Binding("g", "newest", "Newest", id="streams.newest"),
        Binding("tab", "app.focus_next", "Next table", id="streams.next", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.filter_text = ""
        self.sort = "started"
        self.descending = True
        self.limit = PAGE
        self.history: list[dict[str, Any]] = []
        self.history_error: str | None = None
        self.to_top = False  # the cursor goes to the first row once the history reloads (``g``, a new view)

    def compose_body(self) -> ComposeResult:
        yield Label("In flight", id="inflight-title", classes="section")
        yield LiveTable(INFLIGHT_COLUMNS, id="inflight")
        yield Label("History", id="recent-title", classes="section")
        yield Input(
            placeholder="filter: tenant:acme model:sonnet account:anth status:error, or any text (Esc clears)",
            id="filter",
            compact=True,
        )
        yield LiveTable(HISTORY_COLUMNS, id="recent")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._mark_sort()

    @property
    def recent(self) -> LiveTable:
        return self.query_one("#recent", LiveTable)

    def history_query(self) -> dict[str, Any]:
        """The history query for the source (``Source.history``)."""
        filters, text = parse_filter(self.filter_text)
        return {
            "filters": filters,
            "text": text,
            "sort": self.sort,
            "descending": self.descending,
            "limit": self.limit,
        }

    async def reload(self) -> None:
        if self.paused:
            self.query_one(StatusBar).show(self.console.last_snapshot, self.console.link)
            self._titles()
            return
        await super().reload()
        try:
            self.history = await self.console.source.history(self.history_query())
            self.history_error = None
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.history_error = str(exc)[:120]
        now = self.snap["at"] if self.snap else 0.0
        self.recent.sync([history_row(r, now) for r in self.history])
        if self.to_top and self.recent.row_count:
            self.to_top = False
            self.recent.move_cursor(row=0, animate=False)
            self.recent.scroll_home(animate=False)
        self._titles()

    def show(self, snap: dict[str, Any]) -> None:
        inflight = sorted(snap["traffic"]["inflight"], key=lambda f: f["started_at"])  # oldest first: stable
        self.query_one("#inflight-title", Label).update(f"In flight ({len(inflight)})")
        self.query_one("#inflight", LiveTable).sync([inflight_row(f) for f in inflight])

    def _titles(self) -> None:
        more = len(self.history) >= self.limit
        text = Text(f"History ({len(self.history)}{', more below' if more else ''})")
        if self.filter_text:
            text.append(f" · filter {self.filter_text}", style="bold")
        if self.sort != "started" or not self.descending:
            text.append(f" · by {LABELS[self.sort]} {self._arrow()}")
        if self.paused:
            text.append(" · PAUSED (space resumes)", style="bold yellow")
        if self.history_error:
            text.append(f" · cannot load: {self.history_error}", style="red")
        self.query_one("#recent-title", Label).update(text)

    # -------------------------------------------------------------- actions

    def action_open(self) -> None:
        table = (
            self.focused if isinstance(self.focused, LiveTable) else self.query_one("#inflight", LiveTable)
        )
        if table.selected_key is None:
            table = self.recent if self.recent.selected_key is not None else table
        if table.selected_key is not None:
            self._open(table.selected_key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open(event.row_key.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if table is self.recent and table.row_count and event.cursor_row >= table.row_count - 1:
            if len(self.history) >= self.limit:  # the cursor reached the last row: fetch further back
                self.limit += PAGE
                self.kick()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table is self.recent and event.column_key.value in SORTS:
            key = event.column_key.value
            self._sort(key, not self.descending if key == self.sort else True)

    def _open(self, request_id: str) -> None:
        from .request import RequestScreen

        self.app.push_screen(RequestScreen(request_id))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._set_filter(event.value.strip())

    def on_key(self, event: Any) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            self._set_filter("")

    def _set_filter(self, text: str) -> None:
        box = self.query_one("#filter", Input)
        self.filter_text = text
        box.display = bool(text)
        box.value = text
        self.limit = PAGE
        self.to_top = True  # a new filter is a new view: it starts at its first row
        self.recent.focus()
        self.kick()

    def action_sort(self) -> None:
        """Sort by the next column shown (a narrow terminal drops some: sorting by one unseen reads as no
        order at all)."""
        keys = [c.key for c, _ in self.recent.shown if c.key in SORTS] or SORTS
        following = keys[(keys.index(self.sort) + 1) % len(keys)] if self.sort in keys else keys[0]
        self._sort(following, True)

    def action_reverse(self) -> None:
        self._sort(self.sort, not self.descending)

    def _sort(self, key: str, descending: bool) -> None:
        self.sort, self.descending = key, descending
        self.limit = PAGE
        self.to_top = True  # a new order is a new view: it starts at its first row
        self._mark_sort()
        self.kick()

    def _arrow(self) -> str:
        """▼ when the column's values fall down the list, ▲ when they rise, as they read on screen."""
        return "▼" if self.descending != (self.sort in SHOWN_REVERSED) else "▲"

    def _mark_sort(self) -> None:
        for col in HISTORY_COLUMNS:
            self.recent.set_label(col.key, f"{col.label}{self._arrow()}" if col.key == self.sort else None)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.kick()

    def action_newest(self) -> None:
        """Newest first again, cursor on the newest row, live updates on."""
        self.paused = False
        self.to_top = True
        self.recent.focus()
        if self.sort != "started" or not self.descending:
            self._sort("started", True)
        else:
            self.kick()
