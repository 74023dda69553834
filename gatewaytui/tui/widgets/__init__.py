"""Small widgets shared by the console's screens."""

from .live_table import LiveTable
from .statusbar import StatusBar
from .tile import Tile, Trend

__all__ = ["LiveTable", "StatusBar", "Tile", "Trend"]
