"""A DataTable fed whole snapshots that sizes its columns to the terminal.

``sync`` works out the smallest change (update cells, drop or append rows). Columns are ``Col`` specs:

* ``width`` is the least a column gets (never less than its header, so a header is never cut);
* a column with ``grow`` takes a share of the spare width, up to the widest cell it has shown (``most`` caps
  it); a column without ``grow`` stays at ``width``;
* when the table is too narrow for every column, columns with a ``drop`` rank leave, highest rank first,
  and come back when the table widens again.

Cells wider than their column end in an ellipsis. The layout is worked out again on resize and when a cell
outgrows its column while spare width exists, and applied by rebuilding the table (the cursor stays on its row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

Row = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Col:
    key: str
    label: str
    width: int = 0  # the least this column gets (raised to the header's width)
    grow: int = 0  # share of the spare width; 0 keeps the column at ``width``
    drop: int = 0  # 0: always shown; otherwise dropped at narrow widths, highest rank first
    most: int | None = None  # the most a growing column takes

    @property
    def least(self) -> int:
        return max(self.width, cell_len(self.label))


def layout(cols: Sequence[Col], natural: dict[str, int], available: int, pad: int) -> list[tuple[Col, int]]:
    """The visible columns and their widths for ``available`` cells (each column also costs ``2 * pad``).

    Pure, so tests can check it without a terminal: drop by rank until the least widths fit, then share the
    spare width among growing columns (by their ``grow`` weight) until each shows its widest cell. While a
    column is still cut and a less important one (a higher ``drop`` rank) shows, that one goes too."""
    shown = list(cols)
    while sum(c.least + 2 * pad for c in shown) > available and any(c.drop for c in shown):
        shown.remove(max(shown, key=lambda c: (c.drop, shown.index(c))))

    def want(c: Col) -> int:
        wanted = max(c.least, natural.get(c.key, 0))
        return min(wanted, c.most) if c.most is not None else wanted

    def share(shown: list[Col]) -> dict[str, int]:
        widths = {c.key: c.least for c in shown}
        spare = available - sum(widths[c.key] + 2 * pad for c in shown)
        while spare > 0:
            hungry = [c for c in shown if c.grow and widths[c.key] < want(c)]
            if not hungry:
                break
            for c in hungry:
                give = min(c.grow, want(c) - widths[c.key], spare)
                widths[c.key] += give
                spare -= give
                if spare <= 0:
                    break
        return widths

    def importance(c: Col) -> float:
        return float("inf") if not c.drop else -c.drop

    widths = share(shown)
    while True:
        cut = [c for c in shown if widths[c.key] < want(c)]
        if not cut:
            break
        keenest = max(importance(c) for c in cut)
        lesser = [c for c in shown if c.drop and importance(c) < keenest]
        if not lesser:
            break
        shown.remove(max(lesser, key=lambda c: (c.drop, shown.index(c))))
        widths = share(shown)
    return [(c, widths[c.key]) for c in shown]


class LiveTable(DataTable[Any]):
    """Rows are ``(key, cells)`` with one cell per ``Col``. ``sync`` keeps the cursor on the same key."""

    def __init__(
        self,
        columns: Sequence[Col],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="row", id=id, classes=classes)
        self._spec = list(columns)
        self._cells: dict[str, tuple[Any, ...]] = {}  # every column's cell, shown or not
        self._order: list[str] = []
        self._natural: dict[str, int] = {}  # the widest cell each column has shown
        self._shown: list[tuple[Col, int]] = []
        self.labels: dict[str, str] = {}  # header overrides (a sort arrow)
        self.rebuilds = 0  # how often the table was rebuilt rather than patched (for tests)

    # -------------------------------------------------------------- layout

    @property
    def shown(self) -> list[tuple[Col, int]]:
        """The visible columns and their widths."""
        return list(self._shown)

    def _available(self) -> int:
        # One cell stays free for the vertical scrollbar so that rows arriving never reflow the columns.
        return max(0, self.size.width - 1)

    def _layout(self) -> list[tuple[Col, int]]:
        cols = [
            Col(c.key, self.labels.get(c.key, c.label), c.width, c.grow, c.drop, c.most) for c in self._spec
        ]
        return layout(cols, self._natural, self._available(), self.cell_padding)

    def on_mount(self) -> None:
        self._apply(self._layout())

    def on_resize(self, _: events.Resize) -> None:
        self.relayout()

    def relayout(self) -> None:
        """Apply the layout for the current size, labels and content if it changed."""
        wanted = self._layout()
        if wanted != self._shown:
            self._apply(wanted)

    def set_label(self, key: str, label: str | None) -> None:
        """Change a column's header (``None`` restores the original)."""
        if label is None:
            self.labels.pop(key, None)
        else:
            self.labels[key] = label
        self.relayout()

    def _apply(self, shown: list[tuple[Col, int]]) -> None:
        selected, before, scroll_y = self.selected_key, self.cursor_row, self.scroll_y
        self._shown = shown
        self.rebuilds += 1
        self.clear(columns=True)
        for col, width in shown:
            self.add_column(Text(col.label), key=col.key, width=width)
        for key in self._order:
            self.add_row(*self._visible(self._cells[key]), key=key)
        self._restore(selected, before, scroll_y)

    def _visible(self, cells: tuple[Any, ...]) -> list[Any]:
        index = {c.key: i for i, c in enumerate(self._spec)}
        return [_fit(cells[index[c.key]], width) for c, width in self._shown]

    def _measure(self, rows: Sequence[Row]) -> bool:
        """Note the widest cells; True if a growing column outgrew its width (a relayout may show more)."""
        grown = False
        widths = dict((c.key, w) for c, w in self._shown)
        for i, col in enumerate(self._spec):
            if not col.grow:
                continue
            widest = max((_width(cells[i]) for _, cells in rows if i < len(cells)), default=0)
            if widest > self._natural.get(col.key, 0):
                self._natural[col.key] = widest
                grown = grown or widest > widths.get(col.key, widest)
        return grown

    # -------------------------------------------------------------- rows

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    def select(self, key: str) -> bool:
        """Move the cursor to ``key``'s row; False if there is no such row."""
        if key not in self._cells:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    def sync(self, rows: Sequence[Row]) -> None:
        rows = list(rows)
        keys = [k for k, _ in rows]
        fresh = dict(rows)
        if self._measure(rows):
            wanted = self._layout()
            if wanted != self._shown:
                self._cells, self._order = fresh, keys
                self._apply(wanted)
                return
        if keys == self._order:
            self._patch(rows)
        else:
            kept = [k for k in self._order if k in fresh]
            if keys[: len(kept)] == kept:  # only removals and appends: no reordering needed
                for key in self._order:
                    if key not in fresh:
                        self.remove_row(key)
                self._patch([(k, fresh[k]) for k in kept])
                for key in keys[len(kept) :]:
                    self.add_row(*self._visible(fresh[key]), key=key)
            else:
                self._cells, self._order = fresh, keys
                self._rebuild()
                return
        self._cells = fresh
        self._order = keys

    def _patch(self, rows: Sequence[Row]) -> None:
        """Write changed cells, then refresh once (``update_cell`` refreshes per cell: 800 refreshes per tick
        with 200 streams kept the loop busy for tens of milliseconds)."""
        index = {c.key: i for i, c in enumerate(self._spec)}
        data: dict[RowKey, dict[ColumnKey, Any]] | None = getattr(self, "_data", None)
        changed = False
        for key, cells in rows:
            old = self._cells.get(key)
            if old == cells:
                continue
            for col, width in self._shown:
                i = index[col.key]
                new = cells[i]
                if old is not None and new == old[i]:
                    continue
                if data is None:
                    self.update_cell(key, col.key, _fit(new, width))
                else:
                    data[RowKey(key)][ColumnKey(col.key)] = _fit(new, width)
                    changed = True
        if changed:
            self._update_count += 1  # DataTable's render caches are keyed on this count
            self.refresh()

    def _rebuild(self) -> None:
        selected, before, scroll_y = self.selected_key, self.cursor_row, self.scroll_y
        self.rebuilds += 1
        self.clear()
        for key in self._order:
            self.add_row(*self._visible(self._cells[key]), key=key)
        self._restore(selected, before, scroll_y)

    def _restore(self, selected: str | None, before: int, scroll_y: float) -> None:
        """Put the cursor back on ``selected``: rows arriving never move the selection to another row. A view at
        the top stays there (new rows show, like a log); a view scrolled down moves with its rows."""
        if selected is None or selected not in self._cells:
            return
        after = self.get_row_index(selected)
        if scroll_y > 0:
            self.move_cursor(row=after, animate=False, scroll=False)
            self.scroll_to(y=max(0, scroll_y + after - before), animate=False, immediate=True)
        else:
            self.move_cursor(row=after, animate=False)


def _width(cell: Any) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    if isinstance(cell, str):
        return cell_len(cell)
    return 0


def _fit(cell: Any, width: int) -> Any:
    """Literal text (plain strings would be read as markup: "[redacted]" would vanish), cut with an ellipsis."""
    if isinstance(cell, str):
        cell = Text(cell)
    if isinstance(cell, Text) and cell.cell_len > width:
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
    return cell
