"""``within`` (gatewaytui/deadline.py) behaves as ``asyncio.timeout`` around one await."""

from __future__ import annotations

import asyncio

import pytest

from gatewaytui.deadline import within


async def test_the_result_comes_back_and_leaves_no_cancellation_behind() -> None:
    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    assert await within(1.0, quick()) == 7
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # no stray cancellation arrives later


async def test_past_the_delay_the_await_is_cancelled_and_it_is_a_timeout() -> None:
    cancelled: list[bool] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(TimeoutError):
        await within(0.02, slow())
    assert cancelled == [True]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # the task goes on normally


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def waits() -> None:
        await within(10.0, asyncio.sleep(10))

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_an_outer_cancellation_before_the_deadline_is_not_turned_into_a_timeout() -> None:
    async def waits() -> None:
        await within(0.01, asyncio.sleep(10))

    task = asyncio.create_task(waits())
    await asyncio.sleep(0.005)
    task.cancel()  # from outside, before the deadline
    await asyncio.sleep(0.02)
    assert task.done()
    assert task.cancelled()
