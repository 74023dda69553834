"""The single writer: a thread that owns the write connection and batches work into transactions.

Callers on the event loop ``await writer.call(fn)`` (``fn(conn)`` runs on the writer thread) or
fire-and-forget with ``writer.submit(fn)``. Everything queued when the thread wakes runs in one
``BEGIN IMMEDIATE`` transaction, each item under its own SAVEPOINT so one failure rolls back only itself.

``writer.insert(statements)`` queues plain inserts (a settled request's usage row and ledger entries, all
or nothing): consecutive ones are written together as multi-row INSERTs, few statements and so few GIL
hand-offs; if that fails, each is retried under its own SAVEPOINT as above.
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


ROWS_PER_STATEMENT = 200  # rows per multi-row INSERT (well inside SQLite's 32,766 bound parameters)


def _insert_many(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows with few statements: "INSERT ... VALUES (?, ...)" becomes one INSERT of up to
    ``ROWS_PER_STATEMENT`` rows. Each statement is one sqlite3_step, one release and re-take of the GIL:
    row by row (``executemany``), a writer thread queues behind a busy event loop for every row and falls
    behind under load."""
    head, sep, group = sql.rpartition(" VALUES ")
    if not sep or not (group.startswith("(") and group.endswith(")")):
        conn.executemany(sql, rows)
        return
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        conn.execute(f"{head} VALUES {', '.join([group] * len(chunk))}", [v for row in chunk for v in row])


class Rows:
    """A queued ``insert``: (sql, params) pairs that succeed or fail together."""

    __slots__ = ("statements",)

    def __init__(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.statements = statements

    def __call__(self, conn: sqlite3.Connection) -> None:  # the one-at-a-time road
        for sql, params in self.statements:
            conn.execute(sql, params)


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

    def insert(self, statements: list[tuple[str, tuple[Any, ...]]]) -> Future[None]:
        """Queue (sql, params) inserts that succeed or fail together; consecutive ones are batched."""
        fut: Future[None] = Future()
        self.pending += 1
        self._queue.put((Rows(statements), fut))
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

    def _run_batch(
        self, conn: sqlite3.Connection, work: list[tuple[Callable[..., Any], Future[Any]]]
    ) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for _, fut in work:
                results.append((fut, False, exc))
            self._resolve(results)
            return
        run: list[tuple[Rows, Future[Any]]] = []
        for n, (fn, fut) in enumerate(work):
            if isinstance(fn, Rows):
                run.append((fn, fut))
                continue
            if run:
                self._run_rows(conn, run, results)
                run = []
            self._run_one(conn, n, fn, fut, results)
        if run:
            self._run_rows(conn, run, results)
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

    def _run_one(
        self,
        conn: sqlite3.Connection,
        n: int,
        fn: Callable[..., Any],
        fut: Future[Any],
        results: list[tuple[Future[Any], bool, Any]],
    ) -> None:
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

    def _run_rows(
        self,
        conn: sqlite3.Connection,
        run: list[tuple[Rows, Future[Any]]],
        results: list[tuple[Future[Any], bool, Any]],
    ) -> None:
        """Consecutive inserts: grouped by statement into multi-row INSERTs; on any failure, one at a time."""
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for rows, _ in run:
            for sql, params in rows.statements:
                grouped.setdefault(sql, []).append(params)
        conn.execute("SAVEPOINT rows")
        try:
            for sql, many in grouped.items():
                _insert_many(conn, sql, many)
        except Exception:  # noqa: BLE001 - each one alone reports its own error
            conn.execute("ROLLBACK TO rows")
            conn.execute("RELEASE rows")
            for n, (rows, fut) in enumerate(run):
                self._run_one(conn, n, rows, fut, results)
            return
        conn.execute("RELEASE rows")
        results.extend((fut, True, None) for _, fut in run)

    def _resolve(self, results: list[tuple[Future[Any], bool, Any]]) -> None:
        for fut, ok, value in results:
            self.pending -= 1
            if fut.done():  # the waiter went away; the write itself still happened
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
