"""A fake Stripe API on loopback (the few endpoints the gateway calls), and signed webhook helpers.

Serves ``POST /v1/customers``, ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}`` and
``POST /v1/billing_portal/sessions`` with form-encoded bodies decoded into nested dicts, the way Stripe
reads them. Every request is recorded. Webhook payloads are signed with the ``stripe`` library's own
``WebhookSignature.generate_signature_header``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import stripe
from aiohttp import web

API_KEY = "sk_test_gatewaytui_fake"
WEBHOOK_SECRET = "whsec_test_gatewaytui_fake"


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


def decode_form(body: str) -> dict[str, Any]:
    """``a[b][0][c]=1`` -> ``{"a": {"b": [{"c": "1"}]}}`` (Stripe's bracket encoding)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return root


@dataclass
class FakeStripe:
    api_key: str = API_KEY
    requests: list[Recorded] = field(default_factory=list)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    # ------------------------------------------------------------------ HTTP

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        params = decode_form(body) if request.method == "POST" else dict(request.query)
        self.requests.append(
            Recorded(request.method, request.path, params, {k.lower(): v for k, v in request.headers.items()})
        )
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "invalid_request_error", "Invalid API Key provided")
        path = request.path
        if request.method == "POST" and path == "/v1/customers":
            cus = {
                "id": self._id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "metadata": params.get("metadata", {}),
                "created": int(time.time()),
            }
            self.customers[cus["id"]] = cus
            return web.json_response(cus)
        if request.method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        m = re.fullmatch(r"/v1/checkout/sessions/([^/]+)", path)
        if request.method == "GET" and m:
            session = self.sessions.get(m.group(1))
            if session is None:
                return self._error(404, "invalid_request_error", f"No such checkout.session: '{m.group(1)}'")
            return web.json_response(session)
        if request.method == "POST" and path == "/v1/billing_portal/sessions":
            customer = params.get("customer")
            if customer not in self.customers:
                return self._error(400, "invalid_request_error", f"No such customer: '{customer}'")
            sid = self._id("bps")
            return web.json_response(
                {
                    "id": sid,
                    "object": "billing_portal.session",
                    "customer": customer,
                    "return_url": params.get("return_url"),
                    "url": f"https://billing.stripe.test/p/session/{sid}",
                }
            )
        return self._error(
            404, "invalid_request_error", f"Unrecognized request URL ({request.method}: {path})"
        )

    def _create_session(self, params: dict[str, Any]) -> web.Response:
        mode = params.get("mode")
        items = params.get("line_items") or []
        if mode not in ("payment", "subscription") or not items:
            return self._error(400, "invalid_request_error", "mode and line_items are required")
        if params.get("customer") and params["customer"] not in self.customers:
            return self._error(400, "invalid_request_error", f"No such customer: '{params['customer']}'")
        sid = self._id("cs")
        amount = None
        currency = None
        if mode == "payment":
            pd = items[0].get("price_data") or {}
            amount = int(pd.get("unit_amount", 0)) * int(items[0].get("quantity", 1))
            currency = pd.get("currency")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": currency or "usd",
            "customer": params.get("customer"),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "payment_intent": None,
            "subscription": None,
            "success_url": params.get("success_url"),
            "cancel_url": params.get("cancel_url"),
            "url": f"https://checkout.stripe.test/c/pay/{sid}",
            "line_items_requested": items,
        }
        self.sessions[sid] = session
        return web.json_response({k: v for k, v in session.items() if k != "line_items_requested"})

    @staticmethod
    def _error(status: int, etype: str, message: str) -> web.Response:
        return web.json_response({"error": {"type": etype, "message": message}}, status=status)

    # ------------------------------------------------------------------ what Stripe would send back later

    def complete(self, session_id: str, *, paid: bool = True) -> dict[str, Any]:
        """The session as Stripe reports it after the customer finishes Checkout."""
        s = {k: v for k, v in self.sessions[session_id].items() if k != "line_items_requested"}
        s["status"] = "complete"
        if paid:
            s["payment_status"] = "paid"
            if s["mode"] == "payment":
                s["payment_intent"] = "pi_" + session_id.removeprefix("cs_")
            else:
                s["subscription"] = "sub_" + session_id.removeprefix("cs_")
        return s


def event(
    event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{event_type.replace('.', '_')}_{time.time_ns()}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created or int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
        "pending_webhooks": 1,
        "request": {"id": None},
    }


def signed(
    evt: dict[str, Any], secret: str = WEBHOOK_SECRET, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The payload and headers Stripe would POST for ``evt``."""
    payload = json.dumps(evt)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload.encode(), {"stripe-signature": header, "content-type": "application/json"}


@asynccontextmanager
async def serve(fake: FakeStripe) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake.base_url
    finally:
        await runner.cleanup()
