"""The k9s-like top line: numbered, clickable screen tabs (the current one highlighted) and the gateway's vital signs.

Below ``NARROW`` columns the tabs lose their padding and the vitals their labels, so an 80-column terminal
still shows every tab and the link state.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ..console import TABS
from ..format import duration

NARROW = 100


class Tab(Static):
    """One screen's tab; a click shows that screen (as its number key does)."""

    DEFAULT_CSS = """
    Tab { width: auto; padding: 0 1; }
    Tab:hover { background: $boost; }
    Tab.-current { text-style: bold reverse; }
    """

    def __init__(self, number: int, mode: str, title: str, current: bool) -> None:
        super().__init__(Text(f"{number} {title}"), id=f"tab-{mode}", classes="-current" if current else "")
        self.mode = mode

    async def on_click(self, event: events.Click) -> None:
        event.stop()
        await self.app.run_action(f"show('{self.mode}')")


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar { height: 1; dock: top; background: $panel; }
    StatusBar > #vitals { width: 1fr; text-align: right; color: $text-muted; padding-right: 1; }
    StatusBar.-narrow > #vitals { padding-right: 0; }
    StatusBar.-narrow > Tab { padding: 0; margin-right: 1; }
    StatusBar.-narrow > Tab.-current { padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self._last: tuple[dict[str, Any] | None, str] = (None, "")

    def compose(self) -> ComposeResult:
        for i, (mode, title) in enumerate(TABS, start=1):
            yield Tab(i, mode, title, mode == self.current)
        yield Static("", id="vitals")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")
        self.show(*self._last)

    def show(self, snap: dict[str, Any] | None, link: str) -> None:
        self._last = (snap, link)
        narrow = self.has_class("-narrow")
        text = Text()
        if snap is not None:
            stats = snap.get("stats", {})
            up = duration(snap["at"] - snap["started_at"])
            text.append(f"{stats.get('inflight', 0)} live · {'' if narrow else 'up '}{up} ")
            if snap.get("draining"):
                text.append("draining ", style="bold yellow")
        text.append(
            "●" if narrow and link == "● live" else link, style="green" if link == "● live" else "bold red"
        )
        self.query_one("#vitals", Static).update(text)
