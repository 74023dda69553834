"""Streams: requests in flight (live tokens, tok/s, running cost) and recently finished ones; Enter opens one."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Label

from ..format import PROTOCOL_SHORT, STATE_STYLE, count, duration, ms, rate, styled, usd_short
from ..widgets import Col, LiveTable
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
RECENT_COLUMNS = [
    Col("age", "Ago", 5),
    Col("tenant", "Tenant", 6, grow=1),
    Col("model", "Model", 12, grow=2),
    Col("account", "Account", 10, grow=1, drop=2),
    Col("status", "Status", 9),
    Col("tokens", "In/Out", 9),
    Col("ttft", "TTFT", 5, drop=3),
    Col("time", "Time", 5),
    Col("cost", "Cost", 8),
]


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


def recent_row(f: dict[str, Any], now: float) -> tuple[str, tuple[Any, ...]]:
    state = f["state"]
    status = Text(f"{f['status'] or '-'} {state}", style=STATE_STYLE.get(state, ""))
    ended = f["elapsed_s"]
    return f["id"], (
        duration(max(0.0, now - _ended_at(f, now))),
        f["tenant"],
        f["model"],
        f["account"] or "-",
        status,
        f"{count(f['input_tokens'])}/{count(f['output_tokens'])}",
        ms(f["ttft_ms"]),
        duration(ended) if ended >= 1 else ms(ended * 1000),
        usd_short(f["cost_micro"]),
    )


def _running_cost(f: dict[str, Any]) -> str:
    """A settled cost, or "~" and the cost of the tokens so far while the request runs."""
    cost = usd_short(f["cost_micro"])
    return "~" + cost if f.get("cost_estimated") and not cost.startswith("<") else cost


def _ended_at(f: dict[str, Any], now: float) -> float:
    ended = f.get("ended_at")
    return ended if isinstance(ended, (int, float)) else now


class StreamsScreen(ConsoleScreen):
    CSS_PATH = "streams.tcss"
    MODE = "streams"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", id="streams.open"),
        Binding("tab", "app.focus_next", "Next table", id="streams.next", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield Label("In flight", id="inflight-title", classes="section")
        yield LiveTable(INFLIGHT_COLUMNS, id="inflight")
        yield Label("Recently finished", id="recent-title", classes="section")
        yield LiveTable(RECENT_COLUMNS, id="recent")

    def show(self, snap: dict[str, Any]) -> None:
        traffic = snap["traffic"]
        inflight = sorted(traffic["inflight"], key=lambda f: f["started_at"])  # oldest first: a stable order
        self.query_one("#inflight-title", Label).update(f"In flight ({len(inflight)})")
        self.query_one("#inflight", LiveTable).sync([inflight_row(f) for f in inflight])
        recent = traffic["recent"]
        self.query_one("#recent-title", Label).update(
            f"Recently finished ({len(recent)} of {snap['stats']['total']})"
        )
        self.query_one("#recent", LiveTable).sync([recent_row(f, snap["at"]) for f in recent])

    def action_open(self) -> None:
        table = (
            self.focused if isinstance(self.focused, LiveTable) else self.query_one("#inflight", LiveTable)
        )
        if table.selected_key is None:
            other = self.query_one("#recent", LiveTable)
            table = other if other.selected_key is not None else table
        if table.selected_key is not None:
            self._open(table.selected_key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open(event.row_key.value)

    def _open(self, request_id: str) -> None:
        from .request import RequestScreen

        self.app.push_screen(RequestScreen(request_id))
