"""``runtime.stop_tasks``: stopping never hangs on a background task that lost its cancellation.

On Python 3.11 ``asyncio.wait_for`` returns the inner result when a cancellation meets its wake-up, and a
loop around it then runs on: the PostgreSQL change watcher did that once at shutdown, and the gateway's
stop waited for it for ever (a CI pass hung)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gatewaytui.runtime import stop_tasks


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    rounds = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                rounds.append("swallowed")
                if len(rounds) == 1:
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_tasks([task]), 5)
    assert task.cancelled() and rounds == ["swallowed", "swallowed"]


async def test_a_task_that_never_ends_is_left_behind_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    released: list[bool] = []

    async def immortal() -> None:
        while not released:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(immortal(), name="immortal")
    quick = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="gatewaytui"):
        await asyncio.wait_for(stop_tasks([task, quick], tries=2), 5)
    assert not task.done() and "1 background tasks did not stop: ['immortal']" in caplog.text
    released.append(True)  # (the test's own cleanup)
    task.cancel()
    await asyncio.wait_for(task, 5)
