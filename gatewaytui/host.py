"""Running the gateway: Hypercorn serving the app, and optionally the console, on one asyncio loop.

``Gateway`` is used by the CLI (with or without the console) and by the tests (started on loopback,
port 0). Shutdown drains: new connections stop, in-flight streams get ``graceful_timeout`` seconds to
finish, and anything cut at the deadline is settled by the relay's cleanup.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import time
from typing import Any
from wsgiref.handlers import format_date_time

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets

from . import connection
from .config import Config
from .model import GatewayError
from .runtime import Runtime
from .server.app import create_app
from .store.lock import StoreLocked
from .telemetry.siblings import Siblings, SiblingsError

log = logging.getLogger("gatewaytui")


# seconds an idle keep-alive connection is kept: they cost memory; SDK pools reconnect cheaply
KEEP_ALIVE = 20.0


class _Serving(HypercornConfig):
    """Hypercorn's configuration, serving the gateway's own listening socket object.

    Not ``bind = ["fd://N"]``: Hypercorn would wrap the number in a socket object of its own, and the one
    descriptor would have two owners. Hypercorn closes its object when it stops serving; the gateway's
    close came later and closed the number again, by then often another thread's file (seen: the writer's
    or the test cluster's PostgreSQL connection, whose statements then went down a socket that the next
    connection had reused, into another session; an event loop's epoll). One object: the second close is a
    no-op, and the socket is still closed when Hypercorn never got to serve it.

    Every response's ``date`` header is formatted once a second, not once per response, and no ``server``
    header names the software behind the gateway."""

    def __init__(self, listening: socket.socket) -> None:
        super().__init__()
        self._listening = listening
        self._second = -1
        self._date = b""

    def create_sockets(self) -> Sockets:
        return Sockets(secure_sockets=[], insecure_sockets=[self._listening], quic_sockets=[])

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        if second != self._second:
            self._date = format_date_time(second).encode("ascii")
            self._second = second
        return [(b"date", self._date)]


class Gateway:
    def __init__(self, cfg: Config, *, reuse_port: bool = False, siblings: str | None = None) -> None:
        self.cfg = cfg
        self.reuse_port = reuse_port  # one of --workers N processes sharing the port (SO_REUSEPORT)
        self.siblings = siblings  # --workers: the supervisor's private run directory (metrics of all workers)
        self.rt = Runtime(cfg)
        self.shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.port = cfg.server.port

    @property
    def base_url(self) -> str:
        host = self.cfg.server.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        await self.rt.start()
        family = socket.AF_INET6 if ":" in self.cfg.server.host else socket.AF_INET
        # proto IPPROTO_TCP, not 0: the stock asyncio loop turns Nagle off (TCP_NODELAY) only on sockets
        # whose proto says TCP, and accepted sockets inherit it; with 0, a response's body waited ~40 ms
        # for the client's delayed ACK of its head (uvloop sets TCP_NODELAY either way)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self.cfg.server.host, self.cfg.server.port))
        except OSError as exc:
            sock.close()
            await self.rt.stop()
            where = f"{self.cfg.server.host}:{self.cfg.server.port}"
            hint = ""
            if exc.errno == errno.EADDRINUSE:
                hint = (
                    f"; another process (another gateway?) is listening on port {self.cfg.server.port}: "
                    "choose another with --port N (or [server] port; 0 picks a free one)"
                )
            raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror}{hint}") from None
        sock.listen(1024)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.rt.base_url = self.base_url
        hc = _Serving(sock)
        hc.graceful_timeout = self.cfg.server.graceful_timeout
        hc.keep_alive_timeout = KEEP_ALIVE
        connection.install()  # Hypercorn's connections, made cheaper (connection.py)
        hc.accesslog = None
        hc.errorlog = logging.getLogger("hypercorn.error")
        hc.h11_max_incomplete_size = 64 * 1024
        app = create_app(self.rt)
        await self._join_siblings()
        self._task = asyncio.create_task(
            serve(app, hc, shutdown_trigger=self.shutdown.wait), name="gatewaytui-http"
        )

    async def _join_siblings(self) -> None:
        """A --workers worker: listen on its private socket and answer /metrics for every worker."""
        metrics = self.rt.telemetry.metrics
        if self.siblings is None or metrics is None:
            return
        siblings = Siblings(metrics.registry, self.siblings, self.rt.wallet.origin)
        try:
            await siblings.start()
        except (OSError, SiblingsError) as exc:  # this worker's scrapes show its own metrics only
            log.error("metrics of the other workers are not gathered: %s", exc)
            return
        self.rt.telemetry.siblings = siblings

    async def stop(self) -> None:
        self.rt.draining = True
        self.shutdown.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:  # noqa: BLE001
                log.exception("HTTP server stopped with an error")
            self._task = None
        if self.rt.telemetry.siblings is not None:
            await self.rt.telemetry.siblings.stop()
            self.rt.telemetry.siblings = None
        if self._sock is not None:
            try:
                self._sock.close()  # a no-op once Hypercorn closed it (the same object)
            except OSError:
                pass
            self._sock = None
        await settled(self.rt)
        await self.rt.stop()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def settled(rt: Runtime, limit: float = 5.0) -> None:
    """After the grace deadline: end the requests still running and wait until each has settled. Hypercorn
    cuts the connections, but the request handler tasks (which also send the streams) outlive them."""
    for task in list(rt.request_tasks.values()):
        task.cancel()  # their cleanup settles them: billed for what was generated, the rest released
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while rt.traffic.inflight and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if rt.traffic.inflight:
        log.error("%d requests did not settle before shutdown", len(rt.traffic.inflight))


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass


async def run(
    cfg: Config, *, ui: bool, announce: Any = print, reuse_port: bool = False, siblings: str | None = None
) -> int:
    """Run until SIGINT/SIGTERM (headless) or until the console quits."""
    demo_ctx = None
    if cfg.demo:
        from .demo.setup import DemoUpstream

        demo_ctx = DemoUpstream()
        await demo_ctx.start(cfg)
    gateway = Gateway(cfg, reuse_port=reuse_port, siblings=siblings)
    try:
        await gateway.start()
    except BaseException as exc:  # the port is taken, the key does not match, the store is locked...
        if demo_ctx:
            await demo_ctx.stop()
        if isinstance(exc, (StoreLocked, GatewayError)):  # GatewayError: the store is unreachable
            announce(f"error: {exc}")
            return 1
        raise  # the caller reports it (cannot listen, wrong secret key, unset api_key_env)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    if not ui:
        # what start-up built lives as long as the process: the collector need not walk it again (shorter
        # full collections, so fewer latency spikes; measured with bench/ --variant gc)
        gc.freeze()
    traffic_task = None
    notice: str | None = None
    demo_key: str | None = None
    try:
        if cfg.demo:
            from .demo.setup import seed, traffic

            key = demo_key = await seed(gateway.rt)
            notice = (
                f"Demo gateway at {gateway.base_url}\nDemo tenant key (shown once; also printed on exit):\n{key}\n"
                f"Demo database: {cfg.database.path} (admin commands: gatewaytui --demo keys list)"
            )
            announce(f"gatewaytui demo: base URL {gateway.base_url}")
            announce(f"demo tenant key (shown once): {key}")
            announce(
                f"try: curl {gateway.base_url}/v1/messages -H 'x-api-key: {key}' -H 'content-type: application/json' "
                '-d \'{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}\''
            )
            traffic_task = asyncio.create_task(traffic(gateway.base_url, key))
        else:
            notice = f"gatewaytui listening on {gateway.base_url}"
            announce(notice)
        if ui:
            from .tui.app import ConsoleApp
            from .tui.source import LocalSource

            app = ConsoleApp(
                LocalSource(gateway.rt),
                notice=notice,
                base_url=gateway.base_url,
                demo_key=demo_key,
                refresh_ms=cfg.console.refresh_ms,
                theme=cfg.console.theme,
            )
            console = asyncio.create_task(app.run_async())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({console, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not console.done():
                app.exit()
                await console
            stopper.cancel()
            if cfg.demo and notice:
                announce(notice)  # the console cleared the screen; leave the key where the user can copy it
        else:
            await stop.wait()
            log.info("shutting down: draining in-flight requests (up to %ss)", cfg.server.graceful_timeout)
    finally:
        if traffic_task is not None:
            traffic_task.cancel()
        await gateway.stop()
        if demo_ctx:
            await demo_ctx.stop()
    return 0
