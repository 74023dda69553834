"""Hypercorn's per-request message queue and per-connection events, without their idle weight.

Hypercorn gives every request an ``asyncio.Queue`` (the ASGI ``receive`` channel: body chunks, then
``http.disconnect``) and every HTTP/1.1 connection an ``asyncio.Event`` (``can_read``). Each of those
allocates its waiter deques up front (a queue three, an event one: ~630 bytes each) and lives as long as
the request or connection: for an open stream that waits on its upstream, ~3 kB of the ~42 kB it holds.
``Inbox`` and ``Signal`` behave the same for their users (a bounded FIFO whose ``put`` waits while it is
full; an event) and keep their waiters in a list made only when someone waits. ``connection.install()``
puts them in Hypercorn's place.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _wake(waiters: list[asyncio.Future[None]] | None) -> None:
    for fut in waiters or ():
        if not fut.done():
            fut.set_result(None)


async def _wait(waiters: list[asyncio.Future[None]]) -> None:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(fut)
    try:
        await fut
    finally:
        if fut in waiters:
            waiters.remove(fut)


class Inbox:
    """A bounded FIFO queue (``maxsize`` <= 0: unbounded) with ``asyncio.Queue``'s ``put``, ``get``,
    ``get_nowait`` and ``qsize``."""

    __slots__ = ("_getters", "_items", "_putters", "maxsize")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None
        self._putters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    async def put(self, item: Any) -> None:
        while self.full():
            if self._putters is None:
                self._putters = []
            await _wait(self._putters)
        self._items.append(item)
        _wake(self._getters)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.pop(0)
        _wake(self._putters)
        return item

    async def get(self) -> Any:
        while not self._items:
            if self._getters is None:
                self._getters = []
            await _wait(self._getters)
        return self.get_nowait()


class Signal:
    """Hypercorn's ``Event`` (async ``set``, ``clear``, ``wait``; ``is_set``)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    async def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        _wake(waiters)

    async def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        if self._waiters is None:
            self._waiters = []
        await _wait(self._waiters)
