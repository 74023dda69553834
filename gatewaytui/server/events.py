"""What the console reads and does, over HTTP: a state snapshot, the event stream, and operator actions.

    GET  /admin/snapshot                  everything one console frame shows (see ``build_snapshot``)
    GET  /admin/events                    server-sent bus events; ``?topics=account.,tenant.`` filters by prefix
    GET  /admin/console/requests/<id>     one request in full: safe headers, usage line items, error
    GET  /admin/console/history           finished requests from the store (tenant/model/account/status,
                                          q, sort, order=asc|desc, limit; see ``ops.snapshot.request_history``)
    POST /admin/console/<action>          an operator action (JSON object of arguments; see ``ACTIONS``)

Every route needs the admin token. This module is only the HTTP adapter: the snapshot, the request detail
and the actions are ``gatewaytui.ops`` (``snapshot.py``, ``actions.py``), which the in-process console
calls directly, so the console and ``gatewaytui attach`` share one code path. Nothing here imports the
console.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from quart import Blueprint, Quart, Response, request

from ..model import GatewayError
from ..ops.actions import run_action
from ..ops.snapshot import build_snapshot, request_detail, request_history
from ..runtime import Runtime
from . import admin

log = logging.getLogger("gatewaytui.server")

HEARTBEAT_S = 15.0


# ------------------------------------------------------------------ HTTP


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str), status=status, content_type="application/json")


def register(app: Quart, rt: Runtime) -> None:
    bp = Blueprint("console_events", __name__)

    def guarded(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        return admin.guarded(rt, handler)

    @bp.get("/admin/snapshot")
    @guarded
    async def snapshot() -> Response:
        return _json(await build_snapshot(rt))

    @bp.get("/admin/console/requests/<request_id>")
    @guarded
    async def request_info(request_id: str) -> Response:
        found = await request_detail(rt, request_id)
        if found is None:
            raise GatewayError("not_found", f"no request {request_id!r} in memory or in the database")
        return _json(found)

    @bp.get("/admin/console/history")
    @guarded
    async def history() -> Response:
        return _json({"requests": await request_history(rt, dict(request.args.items()))})

    @bp.post("/admin/console/<name>")
    @guarded
    async def action(name: str) -> Response:
        raw = await request.get_data(cache=False)
        try:
            args = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise GatewayError("invalid_request", "the body must be JSON") from None
        return _json({"result": await run_action(rt, name, args)})

    @bp.get("/admin/events")
    @guarded
    async def events() -> Response:
        prefixes = tuple(p for p in request.args.get("topics", "").split(",") if p)
        response = Response(
            _event_stream(rt, prefixes),
            content_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        response.timeout = None
        return response

    app.register_blueprint(bp)


async def _event_stream(rt: Runtime, prefixes: tuple[str, ...]) -> AsyncIterator[bytes]:
    """Subscribe first, then say ``ready``: a client that saw ``ready`` misses nothing published after it."""
    sub = rt.bus.subscribe()
    try:
        yield _frame("ready", {"published": rt.bus.published})
        while True:
            try:  # (asyncio.timeout: wait_for on 3.11 loses a cancellation that meets an event)
                async with asyncio.timeout(HEARTBEAT_S):
                    event = await sub.get()
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if prefixes and not event.topic.startswith(prefixes):
                continue
            yield _frame(event.topic, event.to_dict())
    finally:
        sub.close()


def _frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data, default=str) + b"\n\n"
