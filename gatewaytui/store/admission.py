"""PostgreSQL only: the admission line, one dedicated connection for this process's plain credit admissions.

Every paid request on a key without a budget, token rate or RPM limit is admitted by the same statement
(``credit.ADMIT``: the conditional UPDATE of the tenant's credit row and its hold's row). Through the
connection pool and psycopg's cursor each one cost ~0.25 ms of the gateway's CPU; here the statement is
prepared once on the server and run through libpq directly (text parameters, no cursor, no pool
checkout), and admissions that arrive while one is on the wire go out together in libpq's pipeline
mode: one write, one wake-up for all of their answers. Admissions of the same tenant in one write are
one transaction (a sync message after each tenant's), each statement seeing the ones before it, so a
hot tenant's credit row is locked and committed once per write instead of once per request; no
transaction locks more than one credit row, as before, so there is no new lock order and nothing to
deadlock with. If any statement of a tenant's transaction fails, that transaction is rolled back and its
admissions are sent again one transaction each, so one that fails fails alone.

A waiter never does the I/O itself: the line's task does, so a request cancelled while its admission is
on the wire leaves the connection in step (its hold, if the database took it, is then untracked and
``SharedWallet.sweep`` releases it). A lost connection fails the admissions in flight with
``OperationalError`` (the wallet retries once, then answers 503) and the next batch reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg import pq

from . import credit

log = logging.getLogger("gatewaytui.store")

STATEMENT = b"gatewaytui_admit_credit"
PARAMETERS = ("amount", "tenant", "request", "owner")  # credit.ADMIT's, in the order they are sent


def _numbered(sql: str) -> str:
    """psycopg's named placeholders as the server's numbered ones."""
    for n, name in enumerate(PARAMETERS, 1):
        sql = sql.replace(f"%({name})s", f"${n}")
    return sql


ADMIT = _numbered(credit.ADMIT)
MAX_BATCH = 256  # admissions sent in one pipeline write
STATEMENT_TIMEOUT_MS = 10_000

_Item = tuple[list[bytes], "asyncio.Future[bool]"]


class AdmissionLine:
    def __init__(self, url: str, *, connect_timeout: float = 3.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._queue: list[_Item] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = self.admissions = 0  # counters: pipeline writes, admissions answered

    async def admit(self, tenant_id: int, amount: int, request_id: str, owner: str) -> bool:
        """Reserve ``amount`` for a request if the tenant's balance less every hold in the cluster covers it
        (``credit.admit``'s statement and answer)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="gatewaytui-admission-line")
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(([b"%d" % amount, b"%d" % tenant_id, request_id.encode(), owner.encode()], fut))
        self._wake.set()
        return await fut

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._fail(self._queue, psycopg.OperationalError("the admission line was closed"))
        self._queue = []
        await self._drop()

    # ------------------------------------------------------------------ the line's task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._send(batch)
                except asyncio.CancelledError:
                    self._fail(batch, psycopg.OperationalError("the admission line was closed"))
                    raise
                except Exception as exc:  # noqa: BLE001 - reported to each waiter; the next batch reconnects
                    await self._drop()
                    if not isinstance(exc, psycopg.Error):  # a timeout: the wallet retries, then answers 503
                        exc = psycopg.OperationalError(str(exc) or type(exc).__name__)
                    self._fail(batch, exc)

    async def _send(self, batch: list[_Item], *, together: bool = True) -> None:
        """Send ``batch`` in one write, one transaction per tenant (``together``) or per admission, and
        answer each waiter."""
        pg = await self._connected()
        groups: dict[bytes, list[_Item]] = {}
        for n, item in enumerate(batch):
            groups.setdefault(item[0][1] if together else b"%d" % n, []).append(item)
        for items in groups.values():
            for params, _ in items:
                pg.send_query_prepared(STATEMENT, params)
            pg.pipeline_sync()
        alone: list[_Item] = []
        async with asyncio.timeout(STATEMENT_TIMEOUT_MS / 1000 + 5):
            while pg.flush():
                await self._ready(pg, write=True)
            for items in groups.values():
                results = []
                for _ in items:
                    results.append(await self._result(pg))
                    await self._result(pg)  # the end of that statement's results
                await self._result(pg)  # the transaction's sync
                if any(r is None for r in results):
                    raise psycopg.OperationalError("an admission got no answer")
                failed = [r for r in results if r is not None and r.status != pq.ExecStatus.TUPLES_OK]
                if failed and len(items) > 1:
                    alone += items  # rolled back together: each again in a transaction of its own
                    continue
                for (_, fut), result in zip(items, results, strict=True):
                    if fut.done() or result is None:  # its request was cancelled meanwhile
                        continue
                    if result.status == pq.ExecStatus.TUPLES_OK:
                        fut.set_result(result.ntuples > 0)
                    else:
                        fut.set_exception(psycopg.errors.error_from_result(result))
        self.batches += 1
        self.admissions += len(batch) - len(alone)
        if alone:
            await self._send(alone, together=False)

    async def _result(self, pg: pq.abc.PGconn) -> pq.abc.PGresult | None:
        while pg.is_busy():  # nothing buffered yet: wait for the socket, not a read that finds nothing
            await self._ready(pg)
            pg.consume_input()
        return pg.get_result()

    @staticmethod
    async def _ready(pg: pq.abc.PGconn, *, write: bool = False) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = pg.socket
        add, remove = (
            (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
        )

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        add(fd, ready)
        try:
            await fut
        finally:
            remove(fd)

    async def _connected(self) -> pq.abc.PGconn:
        if self._conn is not None and not self._conn.closed:
            return self._conn.pgconn
        await self._drop()
        conn = await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(1, int(self.connect_timeout)),
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
        try:
            pg = conn.pgconn
            pg.nonblocking = 1
            pg.send_prepare(STATEMENT, ADMIT.encode())
            while pg.flush():
                await self._ready(pg, write=True)
            result = await self._result(pg)
            while await self._result(pg) is not None:
                pass
            if result is None or result.status != pq.ExecStatus.COMMAND_OK:
                raise (
                    psycopg.errors.error_from_result(result)
                    if result
                    else psycopg.OperationalError("could not prepare the admission statement")
                )
            pg.enter_pipeline_mode()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return pg

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    @staticmethod
    def _fail(items: list[_Item], exc: BaseException) -> None:
        for _, fut in items:
            if not fut.done():
                fut.set_exception(exc)
