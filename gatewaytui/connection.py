"""Hypercorn's keep-alive timeout, kept with one timer per idle connection instead of two tasks per request.

Hypercorn (0.17, 0.18) keeps a connection's idle timeout in a task: each request cancels that task and
awaits its end, and each answer starts a new one, which in turn runs ``asyncio.wait_for`` (another task,
a timer and an event waiter). That is ~120,000 instructions per request on this path, 5% of a whole
passthrough request (``python -m bench --cost``). ``Connection`` is Hypercorn's ``TCPServer`` with that
bookkeeping replaced by ``IdleClock``: an idle connection holds one ``call_later`` handle, cancelled when
its next request arrives. Behaviour is Hypercorn's: an idle connection is closed after
``keep_alive_timeout`` seconds, or at once when the server terminates (one task per server waits for
that and closes every idle connection; a connection going idle after it closes at once).

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

import hypercorn.asyncio.run as hypercorn_run
import hypercorn.asyncio.tcp_server as hypercorn_tcp
from hypercorn.asyncio.task_group import TaskGroup, _handle
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import AsyncioSingleTask, EventWrapper, WorkerContext

from .inbox import Inbox, Signal


class _IdleConnections:
    """The idle connections of one server; closed together when the server terminates."""

    def __init__(self, context: WorkerContext) -> None:
        self.clocks: set[IdleClock] = set()
        self.task = asyncio.get_running_loop().create_task(self._watch(context))

    async def _watch(self, context: WorkerContext) -> None:
        await context.terminated.wait()
        for clock in list(self.clocks):
            clock.expire()


_servers: weakref.WeakKeyDictionary[WorkerContext, _IdleConnections] = weakref.WeakKeyDictionary()


class IdleClock(AsyncioSingleTask):
    """``TCPServer.idle_task``: ``restart`` when the connection goes idle, ``stop`` when it is busy or
    closing. Both are synchronous inside (no task is awaited or made)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection
        self.timer: asyncio.TimerHandle | None = None
        self.group: Any = None
        self.idle: _IdleConnections | None = None

    async def restart(self, task_group: Any, action: Callable[..., Any]) -> None:
        self.cancel()
        self.group = task_group
        conn = self.connection
        if conn.context.terminated.is_set():
            self.expire()
            return
        idle = _servers.get(conn.context)
        if idle is None or idle.task.done():
            idle = _servers[conn.context] = _IdleConnections(conn.context)
        idle.clocks.add(self)
        self.idle = idle
        self.timer = conn.loop.call_later(conn.config.keep_alive_timeout, self.expire)

    async def stop(self) -> None:
        self.cancel()

    def cancel(self) -> None:
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
    """Hypercorn's TCP connection with ``IdleClock`` as its idle timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_task = IdleClock(self)


class Requests(TaskGroup):
    """Hypercorn's task group of one connection, its requests' ``receive`` channel an ``Inbox``."""

    async def spawn_app(self, app: Any, config: Any, scope: Any, send: Any) -> Callable[..., Any]:
        inbox = Inbox(config.max_app_queue_size)

        def call_soon(func: Callable[..., Any], *args: Any) -> Any:  # (for sync apps, as Hypercorn's)
            return asyncio.run_coroutine_threadsafe(func(*args), self._loop).result()

        sync_spawn = partial(self._loop.run_in_executor, None)
        self.spawn(_handle, app, config, scope, inbox.get, send, sync_spawn, call_soon)
        return inbox.put


def _fits() -> bool:
    """Hypercorn still has what ``Connection`` and ``Requests`` rely on."""
    needed = ("_initiate_server_close", "_idle_timeout", "protocol_send", "run")
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
