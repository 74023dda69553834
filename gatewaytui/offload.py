"""CPU-heavy per-request work off the event loop: a small thread pool with a bounded backlog.

Token counting (tiktoken releases the GIL while it encodes) and the parsing and decoding of large request
bodies run here, so one big request cannot stall every other request on the loop. The pool has few
threads, so many large jobs cannot take every core, and a bounded backlog: past it, new jobs are refused
at once (the client gets "busy, retry") instead of queueing without limit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .model import GatewayError

P = ParamSpec("P")
T = TypeVar("T")
LARGE_BODY = 256 * 1024  # bytes: a request body this large is parsed, decoded and encoded in a worker thread


class Offload:
    def __init__(self, name: str, *, workers: int = 2, backlog: int = 16) -> None:
        self.name = name
        self.backlog = backlog  # jobs queued or running, at most
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"gatewaytui-{name}")
        self._lock = threading.Lock()
        self._jobs = 0

    @property
    def jobs(self) -> int:
        """Jobs queued or running (a job whose caller went away still runs to its end)."""
        return self._jobs

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread; refused with 529 "overloaded" when the backlog is full."""
        with self._lock:
            if self._jobs >= self.backlog:
                raise GatewayError(
                    "overloaded",
                    f"the gateway is busy with other large requests ({self.name}); retry shortly",
                    retry_after=1.0,
                )
            self._jobs += 1
        try:
            future = self._pool.submit(fn, *args, **kwargs)
        except BaseException:
            self._done()
            raise
        future.add_done_callback(lambda _: self._done())  # counts the thread's work, not the caller's wait
        return await asyncio.wrap_future(future)

    async def sized(self, size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` for a request body of ``size`` bytes: in a worker past ``LARGE_BODY``, else inline (a small
        body's work costs less than the thread hop)."""
        if size > LARGE_BODY:
            return await self.run(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def _done(self) -> None:
        with self._lock:
            self._jobs -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
