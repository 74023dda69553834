"""A DataTable fed whole snapshots: it works out the smallest change (update cells, drop or append rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

Row = tuple[str, tuple[Any, ...]]


class LiveTable(DataTable[Any]):
    """Rows are ``(key, cells)``. ``sync`` keeps the cursor on the same key when rows come and go."""

    def __init__(
        self,
        columns: Sequence[tuple[str, str, int | None]],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="row", id=id, classes=classes)
        self._spec = list(columns)
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._order: list[str] = []
        self.rebuilds = 0  # how often the table was rebuilt rather than patched (for tests)

    def on_mount(self) -> None:
        for key, label, width in self._spec:
            self.add_column(label, key=key, width=width)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    def sync(self, rows: Sequence[Row]) -> None:
        # Plain strings would be read as console markup ("[redacted]" would vanish): make them literal text.
        # Strings longer than a fixed-width column end in an ellipsis rather than being cut silently.
        widths = [c[2] for c in self._spec]
        rows = [(k, tuple(_literal(c, w) for c, w in zip(cells, widths, strict=False))) for k, cells in rows]
        keys = [k for k, _ in rows]
        fresh = dict(rows)
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
                    self.add_row(*fresh[key], key=key)
            else:
                self._rebuild(rows)
        self._cells = fresh
        self._order = keys

    def _patch(self, rows: Sequence[Row]) -> None:
        """Write changed cells, then refresh once (``update_cell`` refreshes per cell: 800 refreshes per tick
        with 200 streams kept the loop busy for tens of milliseconds)."""
        columns = [ColumnKey(c[0]) for c in self._spec]
        data: dict[RowKey, dict[ColumnKey, Any]] | None = getattr(self, "_data", None)
        changed = False
        for key, cells in rows:
            old = self._cells.get(key)
            if old == cells:
                continue
            for column, new, before in zip(columns, cells, old or (None,) * len(cells), strict=False):
                if new == before:
                    continue
                if data is None:
                    self.update_cell(key, column, new)
                else:
                    data[RowKey(key)][column] = new
                    changed = True
        if changed:
            self._update_count += 1  # DataTable's render caches are keyed on this count
            self.refresh()

    def _rebuild(self, rows: Sequence[Row]) -> None:
        selected = self.selected_key
        self.rebuilds += 1
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if selected is not None and selected in dict(rows):
            self.move_cursor(row=self.get_row_index(selected), animate=False)


def _literal(cell: Any, width: int | None) -> Any:
    if not isinstance(cell, str):
        return cell
    if width is not None and len(cell) > width:
        cell = cell[: max(1, width - 1)] + "…"
    return Text(cell)
