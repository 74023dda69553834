"""Small widgets shared by the console's screens."""

from .footer import ConsoleFooter
from .live_table import Col, LiveTable
from .statusbar import StatusBar
from .tile import Tile, Trend

__all__ = ["Col", "ConsoleFooter", "LiveTable", "StatusBar", "Tile", "Trend"]
