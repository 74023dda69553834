"""The key footer: the screen's keys on the left, and the keys that must always be reachable pinned right.

Textual's compact footer packs a binding group's label against the next key ("123456 Screenst Theme") and
lets the last keys scroll out of sight on a narrow terminal. Here the keys whose actions are in ``PINNED``
(the command palette and quit) sit in a group docked right, so they show at any width.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = ("command_palette", "app.command_palette", "quit", "app.quit")


class ConsoleFooter(Footer):
    DEFAULT_CSS = """
    ConsoleFooter.-compact FooterLabel { margin: 0 1 0 0; }
    ConsoleFooter > #pinned { dock: right; width: auto; height: 1; background: $footer-background; }
    ConsoleFooter > #pinned > FooterKey { margin: 0 0 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)

    def compose(self) -> ComposeResult:
        pinned: list[FooterKey] = []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.action in PINNED:
                pinned.append(widget)
            else:
                yield widget
        if pinned:
            pinned.sort(key=lambda key: PINNED.index(key.action))
            yield HorizontalGroup(*pinned, id="pinned")
