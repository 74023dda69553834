"""What a screen may ask of the console app, and the order of its tabs.

Screens and widgets are typed against the ``Console`` protocol, not against ``ConsoleApp``: the app
imports the screens, and nothing the app imports imports the app back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .source import Source

TABS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("streams", "Streams"),
    ("accounts", "Accounts"),
    ("tenants", "Tenants"),
    ("routing", "Routing"),
    ("help", "Help"),
)


class Console(Protocol):
    source: Source
    opened: asyncio.Event
    link: str
    last_snapshot: dict[str, Any] | None
    event_log: deque[dict[str, Any]]
    keymap_overrides: dict[str, str]
    base_url: str | None  # where clients connect (shown on the overview), when known
    demo_key: str | None  # the demo's key (the overview shows it, with a curl line)
    notice: str | None  # a line the overview shows when there is no URL to show

    @property
    def refresh_s(self) -> float: ...

    async def fetch_snapshot(self) -> dict[str, Any] | None: ...

    def perform(
        self,
        work: Awaitable[Any],
        done: str | None = None,
        *,
        after: Callable[[], None] | None = None,
        then: Callable[[Any], object] | None = None,
    ) -> None: ...
