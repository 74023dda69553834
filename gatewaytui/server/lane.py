"""The chat lane: the four client protocols' chat routes, served straight over ASGI in front of Quart.

Quart's request and response objects, its routing and its per-request tasks cost about 0.16 ms of CPU
per request here (bench/README.md), as much as everything after the body is read for a passthrough.
The chat routes are the gateway's hot path, so this ASGI layer takes them before Quart's router; every
other route (discovery, counting, health, admin, tenant, billing, events) is Quart's as usual.

It keeps what Quart gave those routes: the header bound (431), the body size limit (413) and read
timeout (408), errors in the caller's protocol, 405 for other methods, no response timeout on streams
(the relay's idle timeout guards them), and a client disconnect cancels the request (its cleanup settles).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from ..inbox import Inbox
from ..model import GatewayError
from ..runtime import Runtime
from . import limits, relay
from .auth import presented_key, require_route
from .protocols import Reply, Route, chat_route, error_reply, new_request_id

log = logging.getLogger("gatewaytui.server")
WATCH_AFTER = 0.05  # seconds after its body is read that a request starts watching for its client to leave


class ClientGone(Exception):
    """The client disconnected before its request was read."""


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class ChatLane:
    """ASGI middleware: chat routes here, everything else to ``inner`` (Quart's own ASGI app)."""

    def __init__(self, inner: ASGIApp, rt: Runtime) -> None:
        self.inner = inner
        self.rt = rt
        self.max_body = limits.max_body_bytes(rt.cfg.server)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = chat_route(scope["path"])
            if route is not None:
                if scope["method"] == "POST":
                    return await self.serve(route, scope, receive, send)
                if route.protocol != "gemini":  # Gemini's paths also name models (GET): Quart's
                    return await self.not_allowed(route, scope, send)
            self.rt.backlog.drain()  # what a client may read next (usage, balances, metrics) is settled
        return await self.inner(scope, receive, send)

    async def serve(self, route: Route, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher: asyncio.Task[None] | None = None
        timer: asyncio.TimerHandle | None = None
        gone: list[bool] = []  # the watcher saw the client leave (and cancelled this task)
        answered: list[bool] = []  # the whole answer was handed to the server: a disconnect now is no news
        started: list[bool] = []

        async def sender(message: dict[str, Any]) -> None:
            started.append(True)
            await send(message)

        request_id = new_request_id()
        try:
            admitted = await self.admit(route, scope, receive, request_id)
            if isinstance(admitted, Reply):
                reply = admitted
            else:
                # the request is read: from here on a disconnect (Hypercorn's http.disconnect) ends it, seen by
                # a watcher that starts after WATCH_AFTER (it finds a disconnect queued meanwhile at once): most
                # answers are handed over sooner and need none
                def watch() -> None:
                    nonlocal watcher
                    watcher = asyncio.ensure_future(_watch(receive, task, gone, answered))

                timer = asyncio.get_running_loop().call_later(WATCH_AFTER, watch)
                reply = await admitted
            await respond(reply, sender)
            answered.append(True)
        except ClientGone:
            return
        except asyncio.CancelledError:
            # our own doing (the client left) and no one else's: the relay's cleanup settled it
            if gone and task.uncancel() == 0:
                return
            raise
        except Exception:  # noqa: BLE001 - never a traceback to the client
            log.exception("unhandled error on POST %s", scope["path"][:200])
            if not started:
                await respond(error_reply(route.protocol, limits.internal_error(), request_id), send)
        finally:
            # answered: the server closed the request's stream and so already put its http.disconnect, which
            # ends the watcher; cancelling it instead would throw into a finished wait (asyncio.Queue then
            # formats the waiter's repr into an exception it drops: ~4% of a request's CPU)
            if timer is not None:
                timer.cancel()
            if watcher is not None and not answered:
                watcher.cancel()

    async def admit(
        self, route: Route, scope: dict[str, Any], receive: Receive, request_id: str
    ) -> Reply | Awaitable[Reply]:
        """Check the caller and read the body: an error reply, or the relay's answer to await."""
        rt = self.rt
        size = 0
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        query: dict[str, str] | None = None
        if route.protocol == "gemini":
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            limits.check_header_size(size)
            key = rt.keyring.authenticate(presented_key(headers, query))
            require_route(key, route.route)
            rt.keyring.check_rpm(key)
            data = await self.read_body(headers, receive)
        except GatewayError as err:
            rt.telemetry.rejected(route.protocol, route.route, request_id, err)
            return error_reply(route.protocol, err, request_id)
        extras = {"gemini_sse": (query or {}).get("alt") == "sse"} if route.protocol == "gemini" else None
        return relay.handle(
            rt,
            route.protocol,
            route.route,
            key,
            data,  # parsed and decoded by the relay (off the loop when large)
            len(data),
            headers,
            request_id,
            model=route.model,
            stream=route.stream,
            extras=extras,
        )

    async def read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise limits.body_too_large(self.rt.cfg.server)
        chunks: list[bytes] = []
        total = 0
        queued = _queue_of(receive)
        deadline = asyncio.get_running_loop().time() + limits.BODY_TIMEOUT  # for the whole body
        try:
            while True:
                if (
                    queued is not None and queued.qsize()
                ):  # already there (a small body and its end): no timer
                    message = queued.get_nowait()
                else:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                if message["type"] != "http.request":  # http.disconnect: nobody is left to answer
                    raise ClientGone
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    async with asyncio.timeout_at(deadline):
                        await _discard(receive, message, limit * 4)
                    raise limits.body_too_large(self.rt.cfg.server)  # built only when needed
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except TimeoutError:
            raise GatewayError(
                "invalid_request",
                f"the request body did not arrive within {limits.BODY_TIMEOUT:g} s",
                status=408,
            ) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def not_allowed(self, route: Route, scope: dict[str, Any], send: Send) -> None:
        method = scope["method"]
        if method in ("OPTIONS", "HEAD"):  # no body may follow a HEAD answer
            status = 200 if method == "OPTIONS" else 405
            return await respond(Reply(status, b"", "text/plain", {"allow": "OPTIONS, POST"}), send)
        err = limits.method_not_allowed(method, scope["path"])
        reply = error_reply(route.protocol, err, new_request_id(), {"allow": "OPTIONS, POST"})
        await respond(reply, send)


def _queue_of(receive: Receive) -> asyncio.Queue[dict[str, Any]] | Inbox | None:
    """The queue ``receive`` takes its messages from, when it is the ``get`` of an ``Inbox``
    (``connection.install``) or an ``asyncio.Queue`` (Hypercorn's own): messages already in it are read
    without arming the body timeout."""
    queue = getattr(receive, "__self__", None)
    if type(queue) in (Inbox, asyncio.Queue) and getattr(receive, "__name__", None) == "get":
        return queue
    return None


async def _discard(receive: Receive, message: dict[str, Any], budget: int) -> None:
    """Read and drop the rest of a body that is over the limit (up to ``budget`` bytes), so the client, still
    sending, reads the 413 instead of a reset connection."""
    while message.get("more_body", False) and budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        budget -= len(message.get("body", b""))


async def _watch(receive: Receive, task: asyncio.Task[Any], gone: list[bool], answered: list[bool]) -> None:
    """Cancel the request's task when its client disconnects before the whole answer was handed over (the
    server always ends a request's stream with ``http.disconnect``, so this returns then at the latest)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not answered:
                gone.append(True)
                task.cancel()
            return


async def respond(reply: Reply, send: Send) -> None:
    headers = [(b"content-type", reply.content_type.encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    body = reply.body
    if isinstance(body, bytes):
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    # what is sent is dropped at once (del, chunk = b""): an idle open stream keeps no bytes it already sent
    try:
        first = b""
        if reply.ready:  # the upstream already answered: its first chunk follows the headers at once
            first = await anext(body, b"")
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        del headers
        if first:
            await send({"type": "http.response.body", "body": first, "more_body": True})
        del first
        async for chunk in body:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = b""
    finally:
        await body.aclose()  # type: ignore[attr-defined]  # its cleanup settles the request
    await send({"type": "http.response.body", "body": b"", "more_body": False})
