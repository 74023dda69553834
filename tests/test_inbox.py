"""``inbox.py``: the light queue and event that stand in for Hypercorn's per-request ``asyncio.Queue`` and
per-connection ``asyncio.Event`` (``connection.install``)."""

from __future__ import annotations

import asyncio

import pytest

from gatewaytui import connection
from gatewaytui.inbox import Inbox, Signal


async def test_inbox_is_a_bounded_fifo() -> None:
    box = Inbox(2)
    await box.put(1)
    await box.put(2)
    assert box.full() and box.qsize() == 2
    third = asyncio.ensure_future(box.put(3))  # waits: the box is full
    await asyncio.sleep(0)
    assert not third.done()
    assert await box.get() == 1  # makes room
    await asyncio.wait_for(third, 1)
    assert [await box.get(), box.get_nowait()] == [2, 3]
    with pytest.raises(asyncio.QueueEmpty):
        box.get_nowait()


async def test_a_waiting_get_is_woken_and_a_cancelled_one_loses_nothing() -> None:
    box = Inbox(0)
    first = asyncio.ensure_future(box.get())
    second = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    first.cancel()
    await box.put("a")  # woken and cancelled in the same turn: the message stays for the other waiter
    assert await asyncio.wait_for(second, 1) == "a"
    assert first.cancelled() and box.qsize() == 0
    late = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    late.cancel()
    await asyncio.sleep(0)
    assert box._getters == []  # a cancelled waiter leaves nothing behind
    await box.put("b")
    assert await box.get() == "b"


async def test_signal_wakes_every_waiter_and_can_be_cleared() -> None:
    signal = Signal()
    waiters = [asyncio.ensure_future(signal.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters) and not signal.is_set()
    await signal.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    await signal.wait()  # set: returns at once
    await signal.clear()
    again = asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    assert not again.done()
    again.cancel()


async def test_the_gateway_serves_with_them_in_place(gateway: object) -> None:
    assert connection.installed()
