"""The in-process event bus: the core publishes typed events; consoles and admin streams subscribe.

Publishing never blocks and never fails: each subscriber has a bounded queue, and when it is full the
oldest event is dropped (a slow console must not slow the gateway). High-rate state (tokens so far) is
not published per chunk: consoles read snapshots on a timer instead.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class BusEvent:
    topic: str  # "request.started", "request.finished", "account.cooldown", "account.changed", ...
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self.bus = bus
        self.queue: asyncio.Queue[BusEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, event: BusEvent) -> None:
        if self.queue.full():
            try:
                self.queue.get_nowait()
                self.dropped += 1
            except asyncio.QueueEmpty:
                pass
        self.queue.put_nowait(event)

    async def get(self) -> BusEvent:
        return await self.queue.get()

    def drain(self) -> list[BusEvent]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, topic: str, **data: Any) -> None:
        self.published += 1
        if not self._subs:
            return
        event = BusEvent(topic, data)
        for sub in self._subs:
            sub.put(event)
