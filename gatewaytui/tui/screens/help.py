"""Help: every key binding of every screen and dialog, with the id to remap it by."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ..console import TABS
from .base import ConsoleScreen
from .dialogs import ConfirmDialog, FormDialog, OAuthDialog, SecretDialog
from .request import RequestScreen

KEY_WIDTH = 10
ID_HEADER = "Id (for keymap)"
NOTES = (
    "Tables follow the snapshot every refresh; a cooldown counts down live.",
    "Click a tab to switch screens; ctrl+p lists every action of the screen in front.",
    "Streams filter: tenant:acme model:sonnet account:anth status:error, and free text.",
    "Keys are shown once when minted: copy them before closing the dialog.",
    "A dialog stays open until its action answers: a refusal shows by the field it concerns.",
)


def binding_groups(app: App[Any]) -> list[tuple[str, list[Binding]]]:
    """(section title, bindings) for the app, each screen and each dialog, in the order the operator meets them."""
    groups: list[tuple[str, list[BindingType]]] = [("Everywhere", app.BINDINGS)]
    for mode, title in TABS:
        cls = app.MODES[mode]
        if isinstance(cls, type) and issubclass(cls, Screen) and cls.BINDINGS:
            groups.append((title, cls.BINDINGS))
    groups += [
        ("Request details", RequestScreen.BINDINGS),
        ("Forms", FormDialog.BINDINGS),
        ("Confirmations", ConfirmDialog.BINDINGS),
        ("New key (shown once)", SecretDialog.BINDINGS),
        ("OAuth sign-in", OAuthDialog.BINDINGS),
    ]
    return [(title, [b for b in Binding.make_bindings(bindings)]) for title, bindings in groups]


class HelpScreen(ConsoleScreen):
    CSS_PATH = "help.tcss"
    MODE = "help"
    BINDINGS: ClassVar[list[BindingType]] = []

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="scroll"):
            yield Static(self._table(), id="bindings")

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(section, keys as displayed after remapping, what it does, binding id)."""
        out = []
        for title, bindings in binding_groups(self.app):
            merged: dict[str, tuple[Binding, list[str]]] = {}
            for b in bindings:  # "n,escape" arrives as two bindings sharing an id
                entry = merged.setdefault(b.id or b.action, (b, []))
                entry[1].append(b.key)
            for b, keys in merged.values():
                remapped = self.console.keymap_overrides.get(b.id or "")
                shown = remapped.split(",") if remapped else keys
                out.append((title, ", ".join(self._display(b, k) for k in shown), _describe(b), b.id or ""))
        return out

    def _table(self) -> Group:
        """A header, then each section's title on a line of its own (never cut to the key column's width)
        over a table of its keys. Every table has the same fixed key and id widths, so the columns line up
        across sections at any width; the description column takes the rest and wraps."""
        rows = self.rows()
        id_width = max([cell_len(ID_HEADER), *(cell_len(r[3]) for r in rows)])

        def table(header: bool = False) -> Table:
            t = Table(expand=True, box=None, show_edge=False, pad_edge=False, show_header=header)
            t.add_column("Key", style="bold", width=KEY_WIDTH, no_wrap=True)
            t.add_column("Does", ratio=1)
            t.add_column(ID_HEADER, style="dim", width=id_width, no_wrap=True)
            return t

        parts: list[Any] = [table(header=True)]
        sections: dict[str, Table] = {}
        for title, keys, does, binding_id in rows:
            if title not in sections:
                sections[title] = table()
                parts += [Text(title, style="bold underline"), sections[title]]
            sections[title].add_row(Text(keys), Text(does), Text(binding_id))
        parts += [Text(""), Text("Notes", style="bold underline"), *(Text(f"· {note}") for note in NOTES)]
        return Group(*parts)

    def _display(self, b: Binding, key: str) -> str:
        return self.app.get_key_display(b.with_key(key.strip()))

    def show(self, snap: dict[str, Any]) -> None:
        pass  # static content; the status bar still follows the gateway


def _describe(b: Binding) -> str:
    if b.description:
        return b.description
    return b.action.replace("_", " ")
