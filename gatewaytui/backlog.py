"""Bookkeeping that may wait for a moment when the event loop would otherwise sit idle.

A non-streamed answer's settlement (close the hold, journal the usage row, metrics, events: ~90 us of
CPU here) used to run at the loop's next turn after its bytes went out. With one client sending request
after request, the next request then arrived while the loop was still settling the last one, and waited
for it. Work put here runs instead while a request waits for its upstream to answer (``soon``, called
just before a request goes out: the work runs two turns of the loop later, after the request's bytes were
written), and in any case within ``DELAY`` (a timer), before any other HTTP route is served and before the
runtime stops, so what a client can observe next never misses it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("gatewaytui")
DELAY = 0.005  # seconds work may wait when no upstream request comes to hide it behind


class Backlog:
    __slots__ = ("_items", "_timer")

    def __init__(self) -> None:
        self._items: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` soon (it must not raise: it reports its own failures)."""
        self._items.append((fn, args))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(DELAY, self.drain)

    def soon(self) -> None:
        """A request is about to go upstream: run the backlog once its bytes are out (two turns later), while
        the upstream answers."""
        if self._items:
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self.drain)

    def drain(self) -> None:
        """Run everything waiting, now (nothing waiting: two attribute checks, so callers need not ask)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._items:
            items, self._items = self._items, []
            for fn, args in items:
                try:
                    fn(*args)
                except Exception:  # noqa: BLE001 - one failure must not strand the rest
                    log.exception("deferred work failed")
