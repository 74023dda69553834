"""The single writer: a thread that owns the write connection and batches work into transactions.

Callers on the event loop ``await writer.call(fn)`` (``fn(conn)`` runs on the writer thread) or
fire-and-forget with ``writer.submit(fn)``. Everything queued when the thread wakes runs in one
``BEGIN IMMEDIATE`` transaction, each item under its own SAVEPOINT so one failure rolls back only itself.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from .db import connect

log = logging.getLogger("gatewaytui.store")
T = TypeVar("T")

_STOP = object()


class Writer:
    def __init__(self, path: str | Path, *, flush_interval: float = 0.05) -> None:
        self.path = str(path)
        self.flush_interval = flush_interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.pending = 0
        self.batches = 0
        self.on_commit: list[Callable[[], None]] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gatewaytui-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        fut: Future[T] = Future()
        self.pending += 1
        self._queue.put((fn, fut))
        return fut

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def stop(self) -> None:
        """Flush everything queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._thread = None

    def _run(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                item = self._queue.get()
                items = [item]
                if item is not _STOP:
                    time.sleep(self.flush_interval) if self.flush_interval > 0 else None
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(i is _STOP for i in items)
                work = [i for i in items if i is not _STOP]
                if work:
                    self._run_batch(conn, work)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, work: list[tuple[Callable[..., Any], Future[Any]]]) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for _, fut in work:
                results.append((fut, False, exc))
            self._resolve(results)
            return
        for n, (fn, fut) in enumerate(work):
            conn.execute(f"SAVEPOINT w{n}")
            try:
                value = fn(conn)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                conn.execute(f"ROLLBACK TO w{n}")
                conn.execute(f"RELEASE w{n}")
                results.append((fut, False, exc))
            else:
                conn.execute(f"RELEASE w{n}")
                results.append((fut, True, value))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("batch commit failed: %s", exc)
            conn.execute("ROLLBACK")
            results = [(fut, False, exc) for fut, _, _ in results]
        self.batches += 1
        self._resolve(results)
        for cb in self.on_commit:
            cb()

    def _resolve(self, results: list[tuple[Future[Any], bool, Any]]) -> None:
        for fut, ok, value in results:
            self.pending -= 1
            if fut.done():  # the waiter went away; the write itself still happened
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
