"""The k9s-like top line: numbered screens (the current one highlighted) and the gateway's vital signs."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ..console import TABS
from ..format import duration


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar { height: 1; dock: top; background: $panel; }
    StatusBar > #nav { width: auto; }
    StatusBar > #vitals { width: 1fr; text-align: right; color: $text-muted; padding-right: 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static(self._nav(), id="nav")
        yield Static("", id="vitals")

    def _nav(self) -> Text:
        text = Text()
        for i, (mode, title) in enumerate(TABS, start=1):
            style = "bold reverse" if mode == self.current else ""
            text.append(f" {i} {title} ", style=style)
        return text

    def show(self, snap: dict[str, Any] | None, link: str) -> None:
        text = Text()
        if snap is not None:
            stats = snap.get("stats", {})
            text.append(f"{stats.get('inflight', 0)} live · up {duration(snap['at'] - snap['started_at'])} ")
            if snap.get("draining"):
                text.append("draining ", style="bold yellow")
        text.append(link, style="green" if link == "● live" else "bold red")
        self.query_one("#vitals", Static).update(text)
