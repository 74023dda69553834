"""Snapshots: what one console frame shows, and one request in full.

``build_snapshot`` and ``request_detail`` serve the in-process console and, through the console API
(``server/events.py``), ``gatewaytui attach``. The shape is described in ``gatewaytui.tui.source``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..model import GatewayError
from ..store import bodies as bodies_store
from ..store import requests as request_store
from ..traffic import Flight
from .tenants import tenants_overview

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("gatewaytui.ops")

RECENT = 50
CLUSTER_TIMEOUT = 1.0  # seconds a console frame waits for the store's list of instances
_HIDDEN = ("headers", "line_items")  # per-request detail, fetched on demand


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
        "cluster": await cluster_snapshot(rt),
        "stats": _stats(traffic, accounts, tenants),
        "console": {
            "refresh_ms": rt.cfg.console.refresh_ms,
            "theme": rt.cfg.console.theme,
            "keymap": dict(rt.cfg.console.keymap),
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


async def cluster_snapshot(rt: Runtime) -> dict[str, Any] | None:
    """Every live instance on a shared (PostgreSQL) store, oldest first: id, host, pid, url, started_at,
    ``lease_age`` (seconds since its last renewal), ``lease_left``, ``self``, and its live state as of that
    renewal (``inflight``, ``streams``: see ``billing.shared_wallet.live_state``); this instance's own live
    state is current. None on an embedded (SQLite) store. When the store is unreachable: this instance
    alone, with ``error``."""
    wallet = rt.shared_wallet
    if wallet is None:
        return None
    from ..billing.shared_wallet import live_state

    mine = {
        "id": wallet.origin,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "url": wallet.public_url,
        "started_at": rt.started_at,
        "lease_age": None,
        "lease_left": None,
        **live_state(list(rt.traffic.inflight.values())),
    }
    try:
        rows = await wallet.instances(timeout=CLUSTER_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the store is down: show what this instance knows
        error = str(exc).strip() or type(exc).__name__
        log.debug("cluster snapshot: the store is unreachable (%s)", error)
        return {"instances": [{**mine, "self": True}], "error": error}
    instances = []
    for row in rows:
        live = row.pop("live")
        if row["id"] == wallet.origin:
            instances.append({**row, **{k: mine[k] for k in ("inflight", "streams")}, "self": True})
        else:
            instances.append(
                {
                    **row,
                    "inflight": int(live.get("inflight") or 0),
                    "streams": live.get("streams") or [],
                    "self": False,
                }
            )
    if not any(i["self"] for i in instances):  # not renewed yet, or its lease lapsed
        instances.append({**mine, "self": True})
    return {"instances": instances, "error": None}


async def _tenants(rt: Runtime, now: float) -> list[dict[str, Any]]:
    tenants = await tenants_overview(rt)
    if rt.shared_wallet is not None:  # held by the whole cluster, not this instance alone
        for t in tenants:
            t["held_micro"] = rt.shared_wallet.held_by_all(t["id"])
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
        "fallbacks": [{"model": model, "then": then} for model, then in sorted(cat.fallbacks.items())],
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
        "requested_model": row.get("requested_model") or row.get("model"),
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
