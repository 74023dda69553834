"""Stat tiles and sparkline trends for the overview."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline, Static


class Tile(Static):
    """A label over a big value, with an optional dim line under it."""

    DEFAULT_CSS = """
    Tile {
        width: 1fr; height: 4; padding: 0 1; border: round $panel-lighten-2;
        border-title-color: $foreground; border-title-style: bold;
    }
    Tile.-warn { border: round $warning; }
    Tile.-bad { border: round $error; }
    Tile.-warn:nocolor { border: heavy $warning; }
    Tile.-bad:nocolor { border: double $error; }
    """

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = label

    def show(self, value: str, sub: str = "", *, level: str = "") -> None:
        text = Text(value, style="bold")
        if sub:
            text.append("\n" + sub, style="dim")
        self.update(text)
        self.set_class(level == "warn", "-warn")
        self.set_class(level == "bad", "-bad")


class Trend(Vertical):
    """A titled sparkline of the last minute with its current figure."""

    DEFAULT_CSS = """
    Trend {
        height: 4; border: round $panel-lighten-2; padding: 0 1;
        border-title-color: $foreground; border-title-style: bold;
    }
    Trend > Sparkline { height: 1fr; }
    Trend > Label { width: 1fr; color: $text-muted; }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield Sparkline([0.0], summary_function=max)
        yield Label("")

    def show(self, values: Sequence[float], caption: str) -> None:
        self.query_one(Sparkline).data = [float(v) for v in values] or [0.0]
        self.query_one(Label).update(caption)
