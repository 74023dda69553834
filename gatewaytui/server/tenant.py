"""The tenant API (self-service, authenticated by any of the tenant's own keys) and public pricing.

    GET  /pricing, /pricing/tokens                        public tier table and pay-per-token rates
    GET  /tenant/keys, POST /tenant/keys                  list / mint keys (the secret is shown once)
    GET  /tenant/keys/{id}, DELETE /tenant/keys/{id}      one key / revoke it (own keys only, else 404)
    GET  /tenant/usage?from=YYYY-MM-DD&to=YYYY-MM-DD       one entry per UTC day
    GET  /v1/usage/{request_id}                           one request's usage and cost (owner only, else 404)
    GET  /tenant/credits                                  balance and holds in flight
    GET  /tenant/subscription                             tier, quota used / remaining, reset time
    POST /tenant/billing/topup | checkout | portal        Stripe Checkout / portal sessions

Keys are accepted as ``Authorization: Bearer``, ``x-api-key`` or ``x-goog-api-key``. Errors are
OpenAI-style JSON (``{"error": {"type", "message", ...}}``) with a proper status.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from quart import Blueprint, Quart, Response, request

from ..billing.pricing import Price, format_usd
from ..billing.quota import iso
from ..billing.stripe_billing import parse_topup
from ..codec import dumps, loads_request
from ..model import GatewayError
from ..ops import tenants as tenant_ops
from ..ops.keys import MAX_KEYS, key_request
from ..runtime import Runtime
from ..store import keys as key_store
from ..store import requests as request_store
from ..store import usage as usage_store
from .auth import presented_key
from .protocols import error_response

MAX_USAGE_DAYS = 366
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
USAGE_FIELDS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "cost_micro",
)

Handler = Callable[..., Awaitable[Response]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status=status, content_type="application/json")


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError("invalid_request", message, param=param)


def api(fn: Handler) -> Handler:
    """Tenant-API errors come back as OpenAI-style JSON with their status."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await fn(*args, **kwargs)
        except GatewayError as err:
            from .protocols import new_request_id

            return error_response("openai_chat", err, new_request_id())

    return wrapper


async def _body() -> dict[str, Any]:
    data = await request.get_data(cache=False)
    assert isinstance(data, bytes)
    if not data.strip():
        return {}
    body = loads_request(data)
    return body


def register(app: Quart, rt: Runtime) -> None:
    bp = Blueprint("tenant", __name__)

    def caller() -> dict[str, Any]:
        return rt.keyring.authenticate(presented_key(request.headers))

    # ------------------------------------------------------------------ public pricing

    @bp.get("/pricing")
    @api
    async def pricing_tiers() -> Response:
        tiers = [
            {
                "name": t.name,
                "monthly_usd": t.monthly_usd,
                "tokens_per_day": t.tokens_per_day or None,
                "window": "rolling 24 hours",
                "routes": [f"/{r}" for r in t.routes],
                "models": t.models or None,
                "purchasable": bool(t.stripe_price_id),
            }
            for t in rt.cfg.tiers
        ]
        return _json({"object": "list", "data": tiers})

    @bp.get("/pricing/tokens")
    @api
    async def pricing_tokens() -> Response:
        data = []
        for m in rt.catalog.models.values():
            p = Price.of(m)
            data.append(
                {
                    "model": m.name,
                    "aliases": sorted(a for a, t in rt.catalog.aliases.items() if t == m.name),
                    "currency": "USD",
                    "unit": "per_million_tokens",
                    "usd_per_mtok": p.usd_per_mtok(),
                    "micro_usd_per_mtok": p.to_dict(),
                }
            )
        return _json({"object": "list", "data": data})

    # ------------------------------------------------------------------ keys

    @bp.get("/tenant/keys")
    @api
    async def list_keys() -> Response:
        key = caller()
        rows = await rt.read(lambda c: key_store.listing(c, key["tenant_id"]))
        return _json({"object": "list", "data": [_public(r, key) | rt.limits.key_status(r) for r in rows]})

    @bp.post("/tenant/keys")
    @api
    async def create_key() -> Response:
        key = caller()
        body = await _body()
        spec = key_request(rt, key, body)
        active = await rt.read(
            lambda c: [k for k in key_store.listing(c, key["tenant_id"]) if key_store.state(k) == "active"]
        )
        if len(active) >= MAX_KEYS:
            raise _bad(f"a tenant may have at most {MAX_KEYS} active keys; revoke one first")
        public, secret = await tenant_ops.mint_key(rt, key["tenant"], **spec)
        return _json(
            {
                "key": {**public, "current": False},
                "secret": secret,
                "note": "store the secret now: it is shown only once",
            },
            status=201,
        )

    async def own_key(caller_key: dict[str, Any], key_id: str) -> dict[str, Any]:
        row = await rt.read(lambda c: key_store.get(c, key_id)) if len(key_id) <= 100 else None
        if row is None or row["tenant_id"] != caller_key["tenant_id"]:
            raise GatewayError("not_found", f"no key {key_id[:100]!r}")
        return row

    @bp.get("/tenant/keys/<key_id>")
    @api
    async def get_key(key_id: str) -> Response:
        key = caller()
        row = await own_key(key, key_id)
        return _json(_public(row, key) | rt.limits.key_status(row))  # budget spent/remaining, token rate

    @bp.delete("/tenant/keys/<key_id>")
    @api
    async def delete_key(key_id: str) -> Response:
        key = caller()
        await own_key(key, key_id)
        await tenant_ops.revoke_key(rt, key_id, key["tenant_id"])
        row = await own_key(key, key_id)
        return _json(_public(row, key) | rt.limits.key_status(row))  # budget spent/remaining, token rate

    # ------------------------------------------------------------------ usage and credit

    @bp.get("/tenant/usage")
    @api
    async def usage() -> Response:
        key = caller()
        day_from, day_to = _range(request.args.get("from"), request.args.get("to"))
        await rt.write(lambda c: None)  # usage rows are journaled in batches: include the latest
        found = await rt.read(
            lambda c: usage_store.daily(c, key["tenant_id"], day_from.isoformat(), day_to.isoformat())
        )
        days = []
        total = dict.fromkeys(USAGE_FIELDS, 0)
        d = day_from
        while d <= day_to:
            entry = {f: found.get(d.isoformat(), {}).get(f, 0) for f in USAGE_FIELDS}
            entry["cache_write_tokens"] = entry["cache_write_5m_tokens"] + entry["cache_write_1h_tokens"]
            for f in USAGE_FIELDS:
                total[f] += entry[f]
            days.append({"date": d.isoformat(), **entry, "cost_usd": format_usd(entry["cost_micro"])})
            d += timedelta(days=1)
        total["cache_write_tokens"] = total["cache_write_5m_tokens"] + total["cache_write_1h_tokens"]
        return _json(
            {
                "object": "list",
                "tenant": key.get("tenant"),
                "from": day_from.isoformat(),
                "to": day_to.isoformat(),
                "data": days,
                "total": {**total, "cost_usd": format_usd(total["cost_micro"])},
            }
        )

    @bp.get("/v1/usage/<request_id>")
    @api
    async def request_usage(request_id: str) -> Response:
        key = caller()
        missing = GatewayError("not_found", f"no request {request_id[:100]!r}")
        if len(request_id) > 100:
            raise missing
        flight = rt.traffic.inflight.get(request_id)
        if flight is not None and flight.tenant_id == key["tenant_id"]:
            return _json(
                {
                    "id": request_id,
                    "object": "request.usage",
                    "status": "in_progress",
                    "model": flight.model,
                    "hold_micro": flight.hold_micro,
                }
            )
        row = await rt.read(lambda c: request_store.get(c, request_id))
        if row is None:
            await rt.write(lambda c: None)  # the row may still be in the writer's queue
            row = await rt.read(lambda c: request_store.get(c, request_id))
        if row is None or row["tenant_id"] != key["tenant_id"]:
            raise missing
        return _json(_request_usage(row))

    @bp.get("/tenant/credits")
    @api
    async def credits() -> Response:
        key = caller()
        tid = key["tenant_id"]
        w = rt.wallet
        holds = [{"request_id": h.request_id, "amount_micro": h.amount} for h in w.holds_of(tid) if h.charged]
        return _json(
            {
                "object": "credits",
                "tenant": key.get("tenant"),
                "balance_micro": w.balance[tid],
                "held_micro": w.held[tid],
                "available_micro": w.available(tid),
                "balance_usd": format_usd(w.balance[tid]),
                "available_usd": format_usd(w.available(tid)),
                "holds": holds,
            }
        )

    @bp.get("/tenant/subscription")
    @api
    async def subscription() -> Response:
        key = caller()
        plan = rt.plans.get(key["tenant_id"])
        st = rt.quota.status(key["tenant_id"])
        tier = st.tier
        return _json(
            {
                "object": "subscription",
                "tenant": key.get("tenant"),
                "tier": tier.name if tier else (plan.tier if plan else None),
                "status": st.state,
                "monthly_usd": tier.monthly_usd if tier else None,
                "tokens_per_day": st.limit or None,
                "window": "rolling 24 hours",
                "used_tokens": st.used,
                "remaining_tokens": st.remaining,
                "reset_at": iso(st.reset_at),
                "reset_at_unix": round(st.reset_at, 3) if st.reset_at else None,
                "routes": [f"/{r}" for r in tier.routes] if tier else [],
                "models": (tier.models or None) if tier else None,
                "period_end": iso(plan.period_end) if plan and plan.period_end else None,
            }
        )

    # ------------------------------------------------------------------ Stripe

    @bp.post("/tenant/billing/topup")
    @api
    async def topup() -> Response:
        key = caller()
        body = await _body()
        if "amount_usd" not in body:
            raise _bad("amount_usd: field required (US dollars, $5 to $1,000)", "amount_usd")
        cents = parse_topup(body["amount_usd"])
        session = await rt.stripe.topup_session(rt, key["tenant_id"], cents)
        return _json(
            {
                "object": "checkout.session",
                "id": session.id,
                "url": session.url,
                "amount_usd": f"{cents / 100:.2f}",
            }
        )

    @bp.post("/tenant/billing/checkout")
    @api
    async def checkout() -> Response:
        key = caller()
        body = await _body()
        name = body.get("tier")
        tiers = {t.name: t for t in rt.cfg.tiers}
        if not isinstance(name, str) or name not in tiers:
            raise _bad(f"tier: one of {', '.join(tiers) or '(no tiers are configured)'}", "tier")
        tier = tiers[name]
        if not tier.stripe_price_id:
            raise _bad(f"the {name} tier is not sold through Stripe on this gateway", "tier")
        plan = rt.plans.get(key["tenant_id"])
        if plan is not None and plan.subscription_id and plan.subscription_state() == "active":
            raise _bad(
                f"this tenant already has an active {plan.tier} subscription; change it with POST /tenant/billing/portal"
            )
        session = await rt.stripe.subscription_session(rt, key["tenant_id"], tier)
        return _json({"object": "checkout.session", "id": session.id, "url": session.url, "tier": name})

    @bp.post("/tenant/billing/portal")
    @api
    async def portal() -> Response:
        key = caller()
        session = await rt.stripe.portal_session(rt, key["tenant_id"])
        return _json({"object": "billing_portal.session", "id": session.id, "url": session.url})

    app.register_blueprint(bp)


# ---------------------------------------------------------------------- helpers


def _public(row: dict[str, Any], caller_key: dict[str, Any]) -> dict[str, Any]:
    return {**key_store.public(row), "current": row["id"] == caller_key["id"]}


def _range(raw_from: str | None, raw_to: str | None) -> tuple[date, date]:
    today = datetime.now(UTC).date()

    def parse(raw: str | None, name: str, default: date) -> date:
        if raw is None or raw == "":
            return default
        if not DAY_RE.match(raw):
            raise _bad(f"{name}: expected a date as YYYY-MM-DD", name)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise _bad(f"{name}: {raw!r} is not a calendar date", name) from None

    day_to = parse(raw_to, "to", today)
    day_from = parse(raw_from, "from", day_to - timedelta(days=29))
    if day_from > day_to:
        raise _bad("from must not be after to", "from")
    if (day_to - day_from).days + 1 > MAX_USAGE_DAYS:
        raise _bad(f"at most {MAX_USAGE_DAYS} days per query", "from")
    return day_from, day_to


def _request_usage(row: dict[str, Any]) -> dict[str, Any]:
    cw5, cw1h = row["cache_write_5m_tokens"], row["cache_write_1h_tokens"]
    return {
        "id": row["id"],
        "object": "request.usage",
        "model": row["model"],
        "route": row["route"],
        "protocol": row["protocol"],
        "stream": bool(row["stream"]),
        "status": row["status"],
        "http_status": row["http_status"],
        "created_at": iso(row["started_at"]),
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cache_read_input_tokens": row["cache_read_tokens"],
        "cache_creation_input_tokens": cw5 + cw1h,
        "cache_creation": {"ephemeral_5m_input_tokens": cw5, "ephemeral_1h_input_tokens": cw1h},
        "reasoning_tokens": row["reasoning_tokens"],
        "cost_micro": row["cost_micro"],
        "cost_usd": format_usd(row["cost_micro"]),
        "hold_micro": row["hold_micro"],
        "line_items": row.get("line_items") or {},
        "price": row.get("price"),
    }
