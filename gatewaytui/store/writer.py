"""The single writer: a thread that owns the write connection and batches work into transactions.

Callers on the event loop ``await writer.call(fn)`` (``fn(conn)`` runs on the writer thread) or
fire-and-forget with ``writer.submit(fn)``. Everything queued when the thread wakes runs in one
``BEGIN IMMEDIATE`` transaction, each item under its own SAVEPOINT so one failure rolls back only itself.

``writer.insert(statements)`` queues plain inserts (a settled request's usage row and ledger entries, all
or nothing): consecutive ones are written together as multi-row INSERTs, few statements and so few GIL
hand-offs; if that fails, each is retried under its own SAVEPOINT as above. ``writer.append`` does the
same for a caller that does not wait (a settlement): no future per request, a refused write logged.

On a PostgreSQL store the queue is also the spool: when the server is unreachable (or picks the batch as
a deadlock victim) the batch is rolled back and retried on a fresh connection, with backoff, until it
commits; work queued meanwhile joins it. The batch's journal entries (settlements: ``append``) are also
appended to a durable spool file (``store/spool.py``) before the first retry, and so is each one queued
during the outage, so a process killed while the store is down loses no settlement: the next start replays
the file. Every write is safe to repeat (ledger entries carry idempotency keys, usage rows are upserts), so
a commit whose acknowledgement was lost, or a replay of one, is harmless.
"""

from __future__ import annotations

import asyncio
import functools
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
from .spool import Spool

log = logging.getLogger("gatewaytui.store")
T = TypeVar("T")

_STOP = object()
RETRY_MIN, RETRY_MAX = 0.2, 5.0  # seconds between attempts while a shared store is unreachable
STOP_RETRY_SECONDS = 20.0  # at shutdown, how long spooled writes wait for an unreachable store


ROWS_PER_STATEMENT = 128  # rows per multi-row INSERT at most (well inside SQLite's 32,766 bound parameters)


def _insert_many(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows with few statements: "INSERT ... VALUES (?, ...)" becomes INSERTs of a power of two
    rows each, up to ``ROWS_PER_STATEMENT`` (13 rows: 8, 4 and 1). Each statement is one sqlite3_step, one
    release and re-take of the GIL: row by row (``executemany``), a writer thread queues behind a busy event
    loop for every row and falls behind under load. The few sizes repeat, so each statement is compiled once
    and then comes from the connection's statement cache: compiling a multi-row INSERT of a batch's exact
    size each time cost as much as the rows' own writing."""
    n = len(rows)
    start = 0
    while start < n:
        size = min(ROWS_PER_STATEMENT, 1 << ((n - start).bit_length() - 1))
        multi = _multi_row(sql, size)
        if multi is None:
            conn.executemany(sql, rows)
            return
        chunk = rows[start : start + size]
        conn.execute(multi, [v for row in chunk for v in row])
        start += size


@functools.lru_cache(maxsize=256)
def _multi_row(sql: str, size: int) -> str | None:
    """``sql`` ("INSERT ... VALUES (?, ...)") inserting ``size`` rows at once (None: not of that form)."""
    head, sep, group = sql.rpartition(" VALUES ")
    if not sep or not (group.startswith("(") and group.endswith(")")):
        return None
    return f"{head} VALUES {', '.join([group] * size)}"


class Unwatched:
    """The outcome of an ``append``, which nobody waits for: a failure is logged."""

    __slots__ = ()

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, exc: BaseException) -> None:
        log.error("a settlement could not be written: %s", exc)


Outcome = Future[Any] | Unwatched  # what a queued write reports to


class Rows:
    """A queued ``insert``: (sql, params) pairs that succeed or fail together."""

    __slots__ = ("spooled", "statements")

    def __init__(self, statements: list[tuple[str, tuple[Any, ...]]], *, spooled: bool = False) -> None:
        self.statements = statements
        self.spooled = spooled  # in a spool file until committed

    def __call__(self, conn: sqlite3.Connection) -> None:  # the one-at-a-time road
        for sql, params in self.statements:
            conn.execute(sql, params)


class Writer:
    def __init__(
        self, path: str | Path, *, flush_interval: float = 0.05, spool_dir: str | Path | None = None
    ) -> None:
        from .db import is_shared

        self.path = str(path)
        self.shared = is_shared(path)
        self._retryable: Callable[[BaseException], bool] = lambda exc: False
        if self.shared:
            from .pg import retryable

            self._retryable = retryable
        self.outage_since: float | None = None  # a shared store unreachable since (time.time())
        self._stopping = False
        self.flush_interval = flush_interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.pending = 0
        self.submitted = 0  # ``submit`` calls so far (state changes; settlement inserts are not counted)
        self.batches = 0
        self.on_commit: list[Callable[[], None]] = []
        self.spool: Spool | None = None
        if self.shared and spool_dir is not None:
            self.spool = Spool(spool_dir, self.path)
        self._spooled = 0  # entries in a spool file not yet committed
        self._stop_seen = False

    def start(self) -> None:
        if self.spool is not None:
            for statements in self.spool.open():  # a dead process's settlements, before anything else
                self._spooled += 1
                self.pending += 1
                self._queue.put((Rows(statements, spooled=True), Future()))
        self._thread = threading.Thread(target=self._run, name="gatewaytui-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        fut: Future[T] = Future()
        self.pending += 1
        self.submitted += 1
        self._queue.put((fn, fut))
        return fut

    def insert(self, statements: list[tuple[str, tuple[Any, ...]]]) -> Future[None]:
        """Queue (sql, params) inserts that succeed or fail together; consecutive ones are batched."""
        fut: Future[None] = Future()
        self.pending += 1
        self._queue.put((Rows(statements), fut))
        return fut

    def append(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """``insert`` for a caller that does not wait for the outcome (a settlement: a failure is logged by
        the writer, as every failed write is): no ``Future`` made per request and resolved across threads."""
        self.pending += 1
        self._queue.put((Rows(statements), Unwatched()))

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    def stop(self) -> None:
        """Flush everything queued, then stop the thread."""
        if self._thread is None:
            return
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join(timeout=STOP_RETRY_SECONDS + 10)
        self._thread = None
        if self.spool is not None:
            self.spool.close()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        if not self.shared:  # SQLite: opened once, as before
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
                    conn = self._write(conn, work)
                if stop or self._stop_seen:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _write(
        self, conn: sqlite3.Connection | None, work: list[tuple[Callable[..., Any], Outcome]]
    ) -> sqlite3.Connection | None:
        """Run one batch; on a shared store, retry it on a fresh connection until it commits."""
        delay = RETRY_MIN
        while True:
            try:
                if conn is None:
                    conn = connect(self.path)
                self._run_batch(conn, work)
                if self.outage_since is not None:
                    log.warning(
                        "the store is back after %.1f s; spooled writes committed",
                        time.time() - self.outage_since,
                    )
                    self.outage_since = None
                return conn
            except Exception as exc:
                if not self._retryable(exc):
                    raise
                if self.outage_since is None:
                    self.outage_since = time.time()
                    cause = getattr(exc, "cause", None) or str(exc).strip()
                    log.error("store write failed (%s); spooling writes and retrying", cause)
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - the connection is already broken
                        pass
                conn = None
                self._hold_on(work)
                if (
                    self._stopping or self._stop_seen
                ) and time.time() - self.outage_since > STOP_RETRY_SECONDS:
                    kept = sum(1 for fn, _ in work if isinstance(fn, Rows) and fn.spooled)
                    log.error(
                        "the store stayed unreachable at shutdown: %d queued writes are lost, %d settlements"
                        " stay in the spool for the next start",
                        len(work) - kept,
                        kept,
                    )
                    self._resolve([(fut, False, exc) for _, fut in work])
                    return None
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _hold_on(self, work: list[tuple[Callable[..., Any], Outcome]]) -> None:
        """During an outage: take in what was queued since, and make every journal entry durable."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._stop_seen = True
            else:
                work.append(item)
        if self.spool is None:
            return
        fresh = [fn for fn, _ in work if isinstance(fn, Rows) and not fn.spooled]
        if not fresh:
            return
        try:
            self.spool.append([rows.statements for rows in fresh])
        except (OSError, TypeError, ValueError) as exc:
            log.error("could not spool %d settlements to disk (%s); they wait in memory", len(fresh), exc)
            return
        for rows in fresh:
            rows.spooled = True
        self._spooled += len(fresh)

    def _run_batch(self, conn: sqlite3.Connection, work: list[tuple[Callable[..., Any], Outcome]]) -> None:
        results: list[tuple[Outcome, bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            if self._retryable(exc) or not isinstance(exc, sqlite3.Error):
                raise
            for _, fut in work:
                results.append((fut, False, exc))
            self._resolve(results)
            return
        run: list[tuple[Rows, Outcome]] = []
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
        except Exception as exc:
            if self._retryable(exc) or not isinstance(exc, sqlite3.Error):
                raise
            log.error("batch commit failed: %s", exc)
            conn.execute("ROLLBACK")
            results = [(fut, False, exc) for fut, _, _ in results]
        self.batches += 1
        self._settle_spool(work, results)
        self._resolve(results)
        for cb in self.on_commit:
            cb()

    def _run_one(
        self,
        conn: sqlite3.Connection,
        n: int,
        fn: Callable[..., Any],
        fut: Outcome,
        results: list[tuple[Outcome, bool, Any]],
    ) -> None:
        conn.execute(f"SAVEPOINT w{n}")
        try:
            value = fn(conn)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            if self._retryable(exc):
                raise  # the whole batch is retried
            conn.execute(f"ROLLBACK TO w{n}")
            conn.execute(f"RELEASE w{n}")
            results.append((fut, False, exc))
        else:
            conn.execute(f"RELEASE w{n}")
            results.append((fut, True, value))

    def _run_rows(
        self,
        conn: sqlite3.Connection,
        run: list[tuple[Rows, Outcome]],
        results: list[tuple[Outcome, bool, Any]],
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
        except Exception as exc:  # noqa: BLE001 - each one alone reports its own error
            if self._retryable(exc):
                raise  # the whole batch is retried
            conn.execute("ROLLBACK TO rows")
            conn.execute("RELEASE rows")
            for n, (rows, fut) in enumerate(run):
                self._run_one(conn, n, rows, fut, results)
            return
        conn.execute("RELEASE rows")
        results.extend((fut, True, None) for _, fut in run)

    def _settle_spool(
        self, work: list[tuple[Callable[..., Any], Outcome]], results: list[tuple[Outcome, bool, Any]]
    ) -> None:
        """Spooled entries of a committed batch are in the store (or were refused by it: logged); once none
        is left, the spool files are emptied."""
        spooled = [fut for fn, fut in work if isinstance(fn, Rows) and fn.spooled]
        if not spooled or self.spool is None:
            return
        failed = {id(fut): value for fut, ok, value in results if not ok}
        for fut in spooled:
            if id(fut) in failed:
                log.error("a spooled settlement was refused by the store: %s", failed[id(fut)])
        self._spooled -= len(spooled)
        if self._spooled <= 0:
            self._spooled = 0
            try:
                self.spool.committed()
            except OSError as exc:  # replaying them again later is harmless
                log.error("could not empty the spool file (%s)", exc)

    def _resolve(self, results: list[tuple[Outcome, bool, Any]]) -> None:
        for fut, ok, value in results:
            self.pending -= 1
            if fut.done():  # the waiter went away; the write itself still happened
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
