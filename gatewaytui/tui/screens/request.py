"""One request in full: who, where, how it went, its headers (secrets redacted) and its usage line items."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static

from ..format import PROTOCOL_SHORT, STATE_STYLE, count, duration, ms, rate, usd
from ..widgets import Col, LiveTable, StatusBar
from .base import ConsoleScreen


class RequestScreen(ConsoleScreen):
    CSS_PATH = "request.tcss"
    MODE = "streams"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="request.close"),
    ]

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id
        self.detail: dict[str, Any] | None = None

    def compose_body(self) -> ComposeResult:
        yield Label(Text(f"Request {self.request_id}"), id="title", classes="section")
        yield Static("loading…", id="summary")
        with Horizontal(id="tables"):
            with Vertical(id="left"):
                yield Label("Usage line items", classes="section")
                yield LiveTable(
                    [
                        Col("item", "Item", 11, grow=1, most=16),
                        Col("tokens", "Tokens", 6),
                        Col("price", "$/Mtok", 7),
                        Col("cost", "Cost", 9, grow=1, most=14),
                    ],
                    id="items",
                )
            with Vertical(id="right"):
                yield Label("Request headers (secrets redacted)", classes="section")
                yield LiveTable([Col("name", "Header", 10, grow=1, most=24), Col("value", "Value", 10, grow=3)], id="headers")

    async def reload(self) -> None:
        self.query_one(StatusBar).show(self.console.last_snapshot, self.console.link)
        try:
            detail = await self.console.source.request(self.request_id)
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.query_one("#summary", Static).update(Text(f"cannot load: {exc}", style="red"))
            return
        if detail is None:
            if self.detail is None:
                self.query_one("#summary", Static).update(
                    Text("this request is no longer known", style="dim")
                )
            return
        self.detail = detail
        self._show_detail(detail)

    def show(self, snap: dict[str, Any]) -> None:
        pass  # the detail comes from ``source.request``

    def _show_detail(self, d: dict[str, Any]) -> None:
        state = d.get("state") or "-"
        text = Text()
        text.append(f"{d.get('tenant') or '-'}", style="bold")
        text.append(
            f" · key {d.get('key_label') or '-'} · {d.get('route')}/{PROTOCOL_SHORT.get(d.get('protocol') or '', d.get('protocol'))}"
        )
        text.append(f" · {d.get('model')} via {d.get('account') or '-'}\n")
        text.append(state, style=STATE_STYLE.get(state, ""))
        text.append(f" · HTTP {d.get('status') or '-'} · attempts {d.get('attempts') or 0}")
        if d.get("elapsed_s") is not None:
            text.append(f" · {duration(d['elapsed_s'])}")
        text.append(f" · TTFT {ms(d.get('ttft_ms'))}\n")
        text.append(f"tokens in {count(d.get('input_tokens'))} · out {count(d.get('output_tokens'))}")
        text.append(f" · {rate(d.get('tokens_per_s'))} tok/s · cost ")
        text.append(usd(d.get("cost_micro")), style="bold")
        if d.get("error"):
            text.append("\nerror: ", style="bold red")
            text.append(str(d["error"]))
        self.query_one("#summary", Static).update(text)
        items = d.get("line_items") or {}
        self.query_one("#items", LiveTable).sync(
            [
                (
                    name,
                    (
                        name,
                        count(item.get("tokens")),
                        usd(item.get("per_mtok_micro")),
                        _exact_usd(item.get("cost_micro")),
                    ),
                )
                for name, item in items.items()
                if item.get("tokens")
            ]
        )
        self.query_one("#headers", LiveTable).sync(
            [(k, (k, str(v))) for k, v in sorted((d.get("headers") or {}).items())]
        )

    def action_close(self) -> None:
        self.dismiss()


def _exact_usd(micro: Any) -> str:
    """A line item's exact cost (a decimal string of micro-USD) as dollars."""
    if micro is None:
        return "-"
    try:
        from decimal import Decimal

        return "$" + format(Decimal(str(micro)) / 1_000_000, "f")
    except ArithmeticError:
        return str(micro)
