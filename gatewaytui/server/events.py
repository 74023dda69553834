"""What the console reads and does, over HTTP: a state snapshot, the event stream, and operator actions.

    GET  /admin/snapshot                  everything one console frame shows (see ``build_snapshot``)
    GET  /admin/events                    server-sent bus events; ``?topics=account.,tenant.`` filters by prefix
    GET  /admin/console/requests/<id>     one request in full: safe headers, usage line items, error
    GET  /admin/console/history           finished requests from the store (tenant/model/account/status,
                                          q, sort, order=asc|desc, limit; see ``request_history``)
    POST /admin/console/<action>          an operator action (JSON object of arguments; see ``ACTIONS``)

Every route needs the admin token. ``build_snapshot``, ``request_detail`` and ``run_action`` are also
what the in-process console calls, so the console and ``gatewaytui attach`` share one code path with
the admin functions in ``gatewaytui.admin``. Nothing here imports the console.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .. import admin
from ..model import GatewayError
from ..runtime import Runtime
from ..store import bodies as bodies_store
from ..store import requests as request_store
from ..traffic import Flight

log = logging.getLogger("gatewaytui.server")

HEARTBEAT_S = 15.0
RECENT = 50
_HIDDEN = ("headers", "line_items")  # per-request detail, fetched on demand


# ------------------------------------------------------------------ snapshot


async def build_snapshot(rt: Runtime, recent: int = RECENT) -> dict[str, Any]:
    """One consistent-enough picture of the gateway for a console frame (JSON-ready)."""
    now = time.time()
    t = rt.traffic
    traffic = {
        "inflight": [_flight(f, now, rt.catalog.models) for f in list(t.inflight.values())],
        "recent": [_flight(f, now) for f in itertools.islice(t.recent, recent)],
        "series": t.series(60, now),
        "stats": {"total": t.total, "errors": t.errors, **t.percentiles()},
    }
    accounts = rt.pool.snapshot()
    tenants = await _tenants(rt, now)
    return {
        "at": now,
        "started_at": rt.started_at,
        "draining": rt.draining,
        "traffic": traffic,
        "accounts": accounts,
        "tenants": tenants,
        "routing": routing_snapshot(rt),
        "stats": _stats(traffic, accounts, tenants),
        "console": {
            "refresh_ms": rt.cfg.console.refresh_ms,
            "theme": rt.cfg.console.theme,
            "keymap": dict(getattr(rt.cfg.console, "keymap", None) or {}),
        },
    }


def _flight(flight: Flight, now: float, models: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {k: v for k, v in flight.snapshot(now).items() if k not in _HIDDEN}
    out["started_at"], out["ended_at"] = flight.started, flight.ended
    model = (models or {}).get(flight.model)
    if model is not None and not flight.cost_micro and flight.ended is None:
        # The relay prices a request when it settles; until then show the cost of the tokens so far.
        exact = flight.input_tokens * model.input_per_mtok + flight.output_tokens * model.output_per_mtok
        out["cost_micro"], out["cost_estimated"] = -(-exact // 1_000_000), True
    return out


async def _tenants(rt: Runtime, now: float) -> list[dict[str, Any]]:
    tenants = await admin.tenants_overview(rt)
    tiers = {t.name: t for t in rt.cfg.tiers}
    subscribed = {t["id"]: tiers[t["tier"]] for t in tenants if t.get("tier") in tiers}
    used: dict[int, int] = {}
    if subscribed:
        day_start = now - (now % 86400)

        def work(conn: sqlite3.Connection) -> dict[int, int]:
            return {tid: request_store.tokens_since(conn, tid, day_start) for tid in subscribed}

        used = await rt.read(work)
    for t in tenants:
        tier = subscribed.get(t["id"])
        t["subscription"] = (
            {
                "tier": tier.name,
                "status": t.get("subscription_status"),
                "tokens_per_day": tier.tokens_per_day,
                "tokens_today": used.get(t["id"], 0),
            }
            if tier
            else None
        )
    return tenants


def routing_snapshot(rt: Runtime) -> dict[str, Any]:
    cat = rt.catalog
    return {
        "default_model": cat.default_model,
        "haiku_model": cat.haiku_model,
        "strategy": rt.pool.strategy,
        "models": [
            {
                "name": m.name,
                "provider": m.provider,
                "upstream": m.upstream,
                "api": m.api,
                "input_per_mtok": m.input_per_mtok,
                "output_per_mtok": m.output_per_mtok,
                "aliases": sorted(a for a, target in cat.aliases.items() if target == m.name),
            }
            for m in cat.models.values()
        ],
        "aliases": [
            {
                "alias": alias,
                "target": target,
                "source": "operator" if alias in cat.extra_aliases else "config",
            }
            for alias, target in sorted(cat.aliases.items())
        ],
        "presets": {
            route: {"system": p.get("system", ""), "defaults": p.get("defaults") or {}}
            for route, p in sorted(rt.presets.items())
        },
    }


def _stats(
    traffic: dict[str, Any], accounts: list[dict[str, Any]], tenants: list[dict[str, Any]]
) -> dict[str, Any]:
    series = traffic["series"]
    done = series["requests"][:-1]  # the current second is still filling
    last10 = done[-10:]
    reqs_60, errs_60 = sum(done), sum(series["errors"][:-1])
    return {
        **traffic["stats"],
        "inflight": len(traffic["inflight"]),
        "requests_per_s": round(sum(last10) / max(1, len(last10)), 2),
        "tokens_per_s": round(sum(series["tokens"][:-1][-10:]) / max(1, len(last10)), 1),
        "error_rate_60s": round(errs_60 / reqs_60, 4) if reqs_60 else 0.0,
        "spend_today_micro": sum(t["spend_today_micro"] for t in tenants),
        "accounts_total": len(accounts),
        "accounts_healthy": sum(1 for a in accounts if a["health"] == "healthy"),
    }


async def request_detail(rt: Runtime, request_id: str) -> dict[str, Any] | None:
    """A request still in memory (in flight or recent), else its stored usage row, else None; with its stored
    bodies (``bodies``: request/response text, or None) and whether bodies are being kept (``store_bodies``)."""
    detail = await _request_detail(rt, request_id)
    if detail is not None:
        detail["bodies"] = await rt.read(lambda c: bodies_store.get(c, request_id))
        detail["store_bodies"] = rt.cfg.console.store_bodies
    return detail


async def _request_detail(rt: Runtime, request_id: str) -> dict[str, Any] | None:
    flight = rt.traffic.inflight.get(request_id) or next(
        (f for f in rt.traffic.recent if f.id == request_id), None
    )
    if flight is not None:
        return {**flight.snapshot(), "source": "memory"}
    row = await rt.read(lambda c: request_store.get(c, request_id))
    if row is None:
        return None
    return {
        "id": row["id"],
        "route": row.get("route"),
        "protocol": row.get("protocol"),
        "model": row.get("model"),
        "stream": bool(row.get("stream")),
        "state": row.get("status"),
        "status": row.get("http_status"),
        "error": row.get("error"),
        "input_tokens": row.get("input_tokens"),
        "output_tokens": row.get("output_tokens"),
        "cost_micro": row.get("cost_micro"),
        "ttft_ms": row.get("ttft_ms"),
        "attempts": row.get("attempts"),
        "line_items": row.get("line_items"),
        "headers": {},
        "source": "database",
    }


async def request_history(rt: Runtime, args: dict[str, str]) -> list[dict[str, Any]]:
    """The console's history query from HTTP arguments (``store.requests.history`` checks the names)."""
    filters = {k: v for k, v in args.items() if k in request_store.HISTORY_FILTERS and v}
    try:
        limit = int(args.get("limit") or 200)
    except ValueError:
        raise GatewayError("invalid_request", "limit: expected an integer") from None
    if args.get("order", "desc") not in ("asc", "desc"):
        raise GatewayError("invalid_request", "order: expected asc or desc")
    text, sort, descending = (
        args.get("q") or "",
        args.get("sort") or "started",
        args.get("order", "desc") == "desc",
    )
    try:
        return await rt.read(
            lambda c: request_store.history(
                c, filters=filters, text=text, sort=sort, descending=descending, limit=limit
            )
        )
    except ValueError as exc:
        raise GatewayError("invalid_request", str(exc)) from None


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Arg:
    types: tuple[type, ...]
    required: bool = False
    nullable: bool = False


def _str(required: bool = False, nullable: bool = False) -> Arg:
    return Arg((str,), required, nullable)


@dataclass(frozen=True, slots=True)
class Action:
    fn: Callable[..., Awaitable[Any]]
    args: dict[str, Arg]
    shape: Callable[[Any], Any] = lambda result: result


def _key_result(result: tuple[dict[str, Any], str]) -> dict[str, Any]:
    key, secret = result
    return {"key": key, "secret": secret}


def _tenant_result(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "name", "tier", "subscription_status", "per_call_cap_micro", "model_caps")
    return {k: row.get(k) for k in keep}


ACTIONS: dict[str, Action] = {
    "create_tenant": Action(admin.create_tenant, {"name": _str(True)}),
    "mint_key": Action(
        admin.mint_key,
        {
            "tenant": _str(True),
            "kind": _str(),
            "label": _str(nullable=True),
            "rpm": Arg((int,), nullable=True),
            "models": Arg((list,), nullable=True),
            "expires_at": Arg((int, float), nullable=True),
        },
        _key_result,
    ),
    "revoke_key": Action(admin.revoke_key, {"key_id": _str(True)}, lambda done: {"revoked": done}),
    "credit": Action(
        admin.credit,
        {
            "tenant": _str(True),
            "amount_micro": Arg((int,), True),
            "kind": _str(),
            "note": _str(nullable=True),
            "idempotency_key": _str(nullable=True),
        },
        lambda balance: {"balance_micro": balance},
    ),
    "add_account": Action(
        admin.add_account,
        {
            "provider": _str(True),
            "label": _str(nullable=True),
            "api_key": _str(nullable=True),
            "base_url": _str(nullable=True),
            "priority": Arg((int,)),
            "weight": Arg((int,)),
            "models": Arg((list,), nullable=True),
            "rpm": Arg((int,), nullable=True),
        },
    ),
    "set_account_enabled": Action(
        admin.set_account_enabled, {"ref": _str(True), "enabled": Arg((bool,), True)}
    ),
    "reset_account": Action(admin.reset_account, {"ref": _str(True)}),
    "prefer_account": Action(admin.prefer_account, {"ref": _str(True)}),
    "remove_account": Action(admin.remove_account, {"ref": _str(True)}, lambda _: {"removed": True}),
    "set_default_model": Action(admin.set_default_model, {"name": _str(True)}, lambda _: {}),
    "set_haiku_model": Action(admin.set_haiku_model, {"name": _str(True)}, lambda _: {}),
    "set_alias": Action(
        admin.set_alias,
        {"alias": _str(True), "target": _str(True, nullable=True)},
        lambda aliases: {"aliases": aliases},
    ),
    "set_tier": Action(
        admin.set_tier, {"tenant": _str(True), "tier": _str(True, nullable=True)}, _tenant_result
    ),
    "set_cap": Action(
        admin.set_cap,
        {"tenant": _str(True), "cap_micro": Arg((int,), True, nullable=True), "model": _str(nullable=True)},
        _tenant_result,
    ),
    "set_preset": Action(
        admin.set_preset, {"route": _str(True), "system": _str(True), "defaults": Arg((dict,), nullable=True)}
    ),
}


def _check_args(name: str, spec: dict[str, Arg], args: Any) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise GatewayError("invalid_request", f"{name}: the body must be a JSON object of arguments")
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise GatewayError(
            "invalid_request", f"{name}: unknown argument {unknown[0]!r}; known: {', '.join(spec)}"
        )
    out: dict[str, Any] = {}
    for key, arg in spec.items():
        if key not in args:
            if arg.required:
                raise GatewayError("invalid_request", f"{name}: argument {key!r} is required")
            continue
        value = args[key]
        if value is None:
            if not arg.nullable:
                raise GatewayError("invalid_request", f"{name}: argument {key!r} must not be null")
        elif not isinstance(value, arg.types) or (isinstance(value, bool) and bool not in arg.types):
            expected = " or ".join(t.__name__ for t in arg.types)
            raise GatewayError(
                "invalid_request", f"{name}: argument {key!r} must be {expected}, not {type(value).__name__}"
            )
        elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise GatewayError("invalid_request", f"{name}: argument {key!r} must be a list of strings")
        out[key] = value
    return out


async def run_action(rt: Runtime, name: str, args: Any) -> Any:
    """Validate ``args`` and call the admin function ``name``; the result is JSON-ready."""
    action = ACTIONS.get(name)
    if action is None:
        raise GatewayError("not_found", f"no console action {name!r}; one of {', '.join(ACTIONS)}")
    checked = _check_args(name, action.args, args)
    try:
        result = await action.fn(rt, **checked)
    except (ValueError, sqlite3.IntegrityError) as exc:  # a store's own validation
        raise GatewayError("invalid_request", f"{name}: {exc}") from None
    return action.shape(result)


# ------------------------------------------------------------------ HTTP


def _json(data: Any, status: int = 200) -> Any:
    from quart import Response

    return Response(orjson.dumps(data, default=str), status=status, content_type="application/json")


def _error(err: GatewayError) -> Any:
    return _json({"error": {"type": err.kind, "message": err.message}}, err.status)


def register(app: Any, rt: Runtime) -> None:
    from quart import Blueprint, Response, request
    from werkzeug.exceptions import HTTPException

    from .auth import require_admin

    bp = Blueprint("console_events", __name__)

    def guarded(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                require_admin(rt)
                return await handler(*args, **kwargs)
            except GatewayError as err:
                return _error(err)
            except HTTPException:  # e.g. 413 for an oversized body: the app's handlers answer these
                raise
            except Exception:  # noqa: BLE001 - never a traceback to the client
                log.exception("console API %s %s failed", request.method, request.path)
                return _error(GatewayError("api_error", "internal error; see the gateway log"))

        wrapper.__name__ = handler.__name__
        return wrapper

    @bp.get("/admin/snapshot")
    @guarded
    async def snapshot() -> Any:
        return _json(await build_snapshot(rt))

    @bp.get("/admin/console/requests/<request_id>")
    @guarded
    async def request_info(request_id: str) -> Any:
        found = await request_detail(rt, request_id)
        if found is None:
            raise GatewayError("not_found", f"no request {request_id!r} in memory or in the database")
        return _json(found)

    @bp.get("/admin/console/history")
    @guarded
    async def history() -> Any:
        return _json({"requests": await request_history(rt, dict(request.args.items()))})

    @bp.post("/admin/console/<name>")
    @guarded
    async def action(name: str) -> Any:
        raw = await request.get_data(cache=False)
        try:
            args = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise GatewayError("invalid_request", "the body must be JSON") from None
        return _json({"result": await run_action(rt, name, args)})

    @bp.get("/admin/events")
    @guarded
    async def events() -> Any:
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
            try:
                event = await asyncio.wait_for(sub.get(), HEARTBEAT_S)
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
