"""Hypercorn's client connections, made cheaper where a request pays for them: the keep-alive timeout, and
the writes of an answer.

Hypercorn (0.17, 0.18) keeps a connection's idle timeout in a task: each request cancels that task and
awaits its end, and each answer starts a new one, which in turn runs ``asyncio.wait_for`` (another task,
a timer and an event waiter). That is ~120,000 instructions per request on this path, 5% of a whole
passthrough request (``python -m bench --cost``). ``Connection`` is Hypercorn's ``TCPServer`` with that
bookkeeping replaced by ``IdleClock``: a connection notes when it went idle, and its one timer, when it
fires, closes it or is set again for the rest of the timeout. Behaviour is Hypercorn's: an idle connection is closed after
``keep_alive_timeout`` seconds, or at once when the server terminates (one task per server waits for
that and closes every idle connection; a connection going idle after it closes at once).

Hypercorn also writes each piece of an answer to the socket as it is made: the head on
``http.response.start``, then the body, each a ``send`` system call that wakes the client (on loopback,
in the sender's own time). ``Connection`` gathers what the connection sends in one turn of the loop and
writes it together: a whole answer (head and body) as soon as it is complete, the head with the first
piece of a stream's body at once (the first token does not wait for the rest of a burst), the stream's
later pieces at the end of the turn that made them (they are never held longer), and anything at once
past ``FLUSH_AT`` bytes, waiting for the socket to drain as Hypercorn does.

``install()`` puts ``Connection`` in place of ``TCPServer`` where Hypercorn's asyncio worker makes its
connections, and ``inbox.py``'s light queue and event in place of the ``asyncio.Queue`` Hypercorn gives
each request (``Requests.spawn_app``) and the ``asyncio.Event`` it gives each connection. If a Hypercorn
release no longer has the parts this relies on, nothing is replaced and Hypercorn's own parts run
(``installed()`` says which).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import h11
import hypercorn.asyncio.run as hypercorn_run
import hypercorn.asyncio.tcp_server as hypercorn_tcp
from hypercorn.asyncio.task_group import TaskGroup, _handle
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import AsyncioSingleTask, EventWrapper, WorkerContext
from hypercorn.events import Closed, Event, RawData, Updated

from .inbox import Inbox, Signal

FLUSH_AT = 64 * 1024  # bytes gathered that are written (and drained) at once


class _IdleConnections:
    """The connections of one server; the idle ones are closed together when the server terminates."""

    def __init__(self, context: WorkerContext) -> None:
        self.clocks: set[IdleClock] = set()
        self.task = asyncio.get_running_loop().create_task(self._watch(context))

    async def _watch(self, context: WorkerContext) -> None:
        await context.terminated.wait()
        for clock in list(self.clocks):
            if clock.idle_since is not None:
                clock.expire()


_servers: weakref.WeakKeyDictionary[WorkerContext, _IdleConnections] = weakref.WeakKeyDictionary()


class IdleClock(AsyncioSingleTask):
    """``TCPServer.idle_task``: ``restart`` when the connection goes idle, ``stop`` when it is busy or
    closing. Both only note the time (no task, no timer per request): the connection's one timer, when it
    fires, closes the connection if it has been idle for the whole timeout, else is set again for the rest
    (a busy connection's timer is dropped and set again when it next goes idle)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection
        self.timer: asyncio.TimerHandle | None = None
        self.group: Any = None
        self.idle: _IdleConnections | None = None
        self.idle_since: float | None = None  # None: busy

    async def restart(self, task_group: Any, action: Callable[..., Any]) -> None:
        self.group = task_group
        conn = self.connection
        if conn.context.terminated.is_set():
            self.expire()
            return
        self.idle_since = now = conn.loop.time()
        if self.idle is None:
            idle = _servers.get(conn.context)
            if idle is None or idle.task.done():
                idle = _servers[conn.context] = _IdleConnections(conn.context)
            idle.clocks.add(self)
            self.idle = idle
        if self.timer is None:
            self.timer = conn.loop.call_at(now + conn.config.keep_alive_timeout, self.check)

    async def stop(self) -> None:
        self.idle_since = None

    def check(self) -> None:
        """The timer: close the connection if it has been idle for the whole timeout."""
        self.timer = None
        if self.idle_since is None:
            return
        conn = self.connection
        due = self.idle_since + conn.config.keep_alive_timeout
        if due > conn.loop.time():
            self.timer = conn.loop.call_at(due, self.check)
        else:
            self.expire()

    def cancel(self) -> None:
        """The connection is closing: no timer, no longer counted among the server's connections."""
        self.idle_since = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.idle is not None:
            self.idle.clocks.discard(self)
            self.idle = None

    def expire(self) -> None:
        """Close the idle connection (in its own task group, as Hypercorn does)."""
        self.cancel()
        closing = self.connection._initiate_server_close()
        try:
            self.group._task_group.create_task(closing)
        except RuntimeError:  # the connection's task group has ended: it is closing already
            closing.close()


class Connection(TCPServer):
    """Hypercorn's TCP connection with ``IdleClock`` as its idle timeout, and its writes gathered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_task = self.clock = IdleClock(self)
        self.pending: list[bytes] = []  # gathered, not yet written
        self.pending_size = 0
        self.pieces = 0  # written for the answer in progress (its head, then its body's pieces)

    async def protocol_send(self, event: Event) -> None:
        if type(event) is not RawData:
            self.flush()
            if type(event) is Updated and event.idle:
                self.pieces = 0
            return await super().protocol_send(event)
        data = event.data
        if data:
            if not self.pending:
                self.loop.call_soon(self.flush_soon)
            self.pending.append(data)
            self.pending_size += len(data)
            self.pieces += 1
        answered = self.answered()
        try:
            # the head with the first piece of its body goes at once (a stream's first token: the rest of a
            # burst the upstream sent with it is still to be relayed); so does a complete answer
            if answered or self.pieces == 2 or self.pending_size >= FLUSH_AT:
                if answered:
                    self.pieces = 0
                if not self.flush():
                    raise ConnectionResetError
            await self.writer.drain()  # a client that does not read holds its answer back (as Hypercorn did)
        except (ConnectionError, RuntimeError):
            await self.protocol.handle(Closed())

    def answered(self) -> bool:
        """The answer in progress is complete (HTTP/1.1; an HTTP/2 connection's writes go at each turn's end)."""
        state = getattr(getattr(self.protocol.protocol, "connection", None), "our_state", None)
        return state is not None and state in _ANSWERED

    def flush(self) -> bool:
        """Write what is gathered; False when the connection is closing or broken (nothing was written)."""
        pending = self.pending
        if not pending:
            return True
        self.pending, self.pending_size = [], 0
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(pending[0] if len(pending) == 1 else b"".join(pending))
        except (ConnectionError, RuntimeError):
            return False
        return True

    def flush_soon(self) -> None:
        """The end of the turn that gathered something: write it; a connection gone is the protocol's news."""
        if not self.flush():
            try:
                self._task_group.spawn(self.protocol.handle, Closed())
            except RuntimeError:  # the connection's task group has ended: it is closing already
                pass

    async def _close(self) -> None:
        self.flush()
        try:
            await super()._close()
        finally:
            self.clock.cancel()


class Requests(TaskGroup):
    """Hypercorn's task group of one connection, its requests' ``receive`` channel an ``Inbox``."""

    async def spawn_app(self, app: Any, config: Any, scope: Any, send: Any) -> Callable[..., Any]:
        inbox = Inbox(config.max_app_queue_size)

        def call_soon(func: Callable[..., Any], *args: Any) -> Any:  # (for sync apps, as Hypercorn's)
            return asyncio.run_coroutine_threadsafe(func(*args), self._loop).result()

        sync_spawn = partial(self._loop.run_in_executor, None)
        self.spawn(_handle, app, config, scope, inbox.get, send, sync_spawn, call_soon)
        return inbox.put


_ANSWERED = frozenset((h11.DONE, h11.MUST_CLOSE))


def _fits() -> bool:
    """Hypercorn still has what ``Connection`` and ``Requests`` rely on."""
    needed = ("_initiate_server_close", "_idle_timeout", "_close", "protocol_send", "run")
    return (
        all(callable(getattr(TCPServer, name, None)) for name in needed)
        and callable(getattr(AsyncioSingleTask, "restart", None))
        and callable(getattr(hypercorn_run, "worker_serve", None))
        and hypercorn_run.__dict__.get("TCPServer") in (TCPServer, Connection)
        and hypercorn_tcp.__dict__.get("TaskGroup") in (TaskGroup, Requests)
        and callable(getattr(TaskGroup, "spawn", None))
        and WorkerContext.event_class in (EventWrapper, Signal)
    )


def install() -> bool:
    """Use ``Connection``, ``Requests`` and ``Signal`` for the connections Hypercorn's asyncio worker serves;
    False if they do not fit."""
    if not _fits():
        return False
    hypercorn_run.TCPServer = Connection  # type: ignore[misc]
    hypercorn_tcp.TaskGroup = Requests  # type: ignore[misc]
    WorkerContext.event_class = Signal
    return True


def installed() -> bool:
    return (
        hypercorn_run.__dict__.get("TCPServer") is Connection
        and hypercorn_tcp.__dict__.get("TaskGroup") is Requests
        and WorkerContext.event_class is Signal
    )
