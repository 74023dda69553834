"""Stripe: Checkout and portal sessions against a fake Stripe API, and signed webhooks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import stripe
from conftest import GatewayHandle
from fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, event, serve, signed

from gatewaytui.store import ledger

KEY_ENV, HOOK_ENV = "GWT_TEST_STRIPE_KEY", "GWT_TEST_STRIPE_WHSEC"
TIERS = [
    {
        "name": "pro",
        "monthly_usd": 20.0,
        "tokens_per_day": 100_000,
        "routes": ["claudecode"],
        "stripe_price_id": "price_pro",
    },
    {"name": "team", "monthly_usd": 50.0, "tokens_per_day": 500_000, "stripe_price_id": "price_team"},
    {"name": "internal", "tokens_per_day": 0},
]


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    async with serve(fake):
        yield fake


@pytest.fixture
async def billing_gw(
    make_gateway: Any, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Awaitable[GatewayHandle]]:
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv(HOOK_ENV, WEBHOOK_SECRET)

    async def start(**stripe_cfg: Any) -> GatewayHandle:
        cfg = {
            "secret_key_env": KEY_ENV,
            "webhook_secret_env": HOOK_ENV,
            "api_base": fake_stripe.base_url,
            "success_url": "https://app.test/ok",
            "cancel_url": "https://app.test/cancel",
            **stripe_cfg,
        }
        return await make_gateway(tiers=TIERS, stripe=cfg)

    return start


async def call(
    gw: GatewayHandle, method: str, path: str, key: str | None = None, **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key:
        headers["authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:
        return await h.request(method, path, headers=headers, **kw)


async def deliver(
    gw: GatewayHandle, evt: dict[str, Any], secret: str = WEBHOOK_SECRET, **kw: Any
) -> httpx.Response:
    payload, headers = signed(evt, secret, **kw)
    return await call(gw, "POST", "/stripe/webhook", content=payload, headers=headers)


async def balance(gw: GatewayHandle, key: str) -> int:
    r = await call(gw, "GET", "/tenant/credits", key)
    tid = gw.rt.keyring.authenticate(key)["tenant_id"]
    await gw.flush()
    assert r.json()["balance_micro"] == ledger.balance(gw.rt.readers.get(), tid)  # memory and ledger agree
    return int(r.json()["balance_micro"])


async def topup_session(gw: GatewayHandle, fake: FakeStripe, key: str, usd: Any = 25) -> dict[str, Any]:
    r = await call(gw, "POST", "/tenant/billing/topup", key, json={"amount_usd": usd})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"].startswith("https://checkout.stripe.test/")
    return fake.complete(body["id"])


# ---------------------------------------------------------------------- outbound sessions


async def test_topup_creates_a_checkout_session(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    tid = gw.rt.keyring.authenticate(key)["tenant_id"]
    await topup_session(gw, fake_stripe, key, 25)
    await topup_session(gw, fake_stripe, key, "5.50")
    assert len(fake_stripe.customers) == 1  # created once, then reused
    sessions = [r.params for r in fake_stripe.requests if r.path == "/v1/checkout/sessions"]
    first = sessions[0]
    assert first["mode"] == "payment" and first["customer"] in fake_stripe.customers
    assert first["line_items"][0]["price_data"]["unit_amount"] == "2500"
    assert first["line_items"][0]["price_data"]["currency"] == "usd"
    assert first["metadata"] == {"tenant_id": str(tid), "kind": "topup"}
    assert first["success_url"] == "https://app.test/ok"
    assert sessions[1]["line_items"][0]["price_data"]["unit_amount"] == "550"
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in fake_stripe.requests)
    assert stripe.api_key is None  # the library's module globals are never set


@pytest.mark.parametrize("amount", [4.99, 1000.01, 0, -5, "abc", True, 10.001, None, [5], "NaN", "1e3000"])
async def test_topup_amount_limits(billing_gw: Any, fake_stripe: FakeStripe, amount: Any) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    r = await call(gw, "POST", "/tenant/billing/topup", key, json={"amount_usd": amount})
    assert r.status_code == 400 and "amount_usd" in r.json()["error"]["message"]
    assert not [x for x in fake_stripe.requests if x.path == "/v1/checkout/sessions"]


async def test_topup_bounds_are_inclusive_and_field_required(
    billing_gw: Any, fake_stripe: FakeStripe
) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    await topup_session(gw, fake_stripe, key, 5)
    await topup_session(gw, fake_stripe, key, 1000)
    r = await call(gw, "POST", "/tenant/billing/topup", key, json={})
    assert r.status_code == 400 and "amount_usd" in r.json()["error"]["message"]
    assert (await call(gw, "POST", "/tenant/billing/topup", json={"amount_usd": 5})).status_code == 401


async def test_stripe_not_configured_is_a_clear_error(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    gw = await make_gateway()
    key = await gw.mint("acme", usd=None)
    r = await call(gw, "POST", "/tenant/billing/topup", key, json={"amount_usd": 10})
    assert r.status_code == 503 and "not enabled" in r.json()["error"]["message"]


async def test_stripe_api_failure_is_502_not_500(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    fake_stripe.api_key = "sk_test_other"  # the fake now refuses the gateway's key
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    r = await call(gw, "POST", "/tenant/billing/topup", key, json={"amount_usd": 10})
    assert r.status_code == 502 and r.json()["error"]["message"].startswith("Stripe could not")


async def test_subscription_checkout_and_portal(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    r = await call(gw, "POST", "/tenant/billing/checkout", key, json={"tier": "pro"})
    assert r.status_code == 200 and r.json()["tier"] == "pro"
    params = fake_stripe.requests[-1].params
    assert params["mode"] == "subscription" and params["line_items"] == [
        {"price": "price_pro", "quantity": "1"}
    ]
    assert params["subscription_data"]["metadata"]["tier"] == "pro"
    for body, text in [({"tier": "gold"}, "tier"), ({}, "tier"), ({"tier": "internal"}, "not sold")]:
        bad = await call(gw, "POST", "/tenant/billing/checkout", key, json=body)
        assert bad.status_code == 400 and text in bad.json()["error"]["message"]
    portal = await call(gw, "POST", "/tenant/billing/portal", key)
    assert portal.status_code == 200 and portal.json()["url"].startswith("https://billing.stripe.test/")
    assert fake_stripe.requests[-1].params["customer"] == params["customer"]


# ---------------------------------------------------------------------- webhooks: top-ups


async def test_paid_session_is_credited_once(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    session = await topup_session(gw, fake_stripe, key, 25)
    evt = event("checkout.session.completed", session)
    r = await deliver(gw, evt)
    assert r.status_code == 200 and r.json()["action"] == "credited"
    assert await balance(gw, key) == 25_000_000
    replay = await deliver(gw, evt)  # Stripe retries deliver the same event again
    assert replay.status_code == 200 and replay.json()["action"] == "duplicate"
    other = await deliver(
        gw, event("checkout.session.async_payment_succeeded", session)
    )  # another event, same session
    assert other.json()["action"] == "duplicate"
    assert await balance(gw, key) == 25_000_000
    # the running gateway spends the new credit at once
    async with httpx.AsyncClient(base_url=gw.base_url) as h:
        ok = await h.post(
            "/v1/messages",
            headers={"x-api-key": key},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert ok.status_code == 200


async def test_amount_comes_from_stripes_object(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    session = await topup_session(gw, fake_stripe, key, 500)
    session["amount_total"] = 1234  # e.g. a promotion code: Stripe collected $12.34
    session["metadata"]["amount_usd"] = "500"  # nothing the client could influence is trusted
    assert (await deliver(gw, event("checkout.session.completed", session))).json()["action"] == "credited"
    assert await balance(gw, key) == 12_340_000


async def test_unpaid_session_is_not_credited_until_paid(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    r = await call(gw, "POST", "/tenant/billing/topup", key, json={"amount_usd": 40})
    unpaid = fake_stripe.complete(r.json()["id"], paid=False)
    assert (await deliver(gw, event("checkout.session.completed", unpaid))).json()["action"] == "ignored"
    assert await balance(gw, key) == 0
    paid = fake_stripe.complete(r.json()["id"])
    assert (await deliver(gw, event("checkout.session.async_payment_succeeded", paid))).json()[
        "action"
    ] == "credited"
    assert await balance(gw, key) == 40_000_000


async def test_tampered_or_unsigned_events_are_refused(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    session = await topup_session(gw, fake_stripe, key, 10)
    evt = event("checkout.session.completed", session)
    payload, headers = signed(evt)
    tampered = payload.replace(b'"amount_total": 1000', b'"amount_total": 99900')
    assert tampered != payload
    r = await call(gw, "POST", "/stripe/webhook", content=tampered, headers=headers)
    assert r.status_code == 400 and "signature" in r.json()["error"]["message"]
    assert (await deliver(gw, evt, secret="whsec_wrong")).status_code == 400
    assert (await call(gw, "POST", "/stripe/webhook", content=payload)).status_code == 400  # no header
    assert (await deliver(gw, evt, timestamp=int(time.time()) - 3600)).status_code == 400  # too old to trust
    assert (
        await call(gw, "POST", "/stripe/webhook", content=b"\xff\xfe", headers=headers)
    ).status_code == 400
    assert await balance(gw, key) == 0
    assert (await deliver(gw, evt)).json()["action"] == "credited"  # the genuine event still applies once


async def test_webhooks_fail_closed_without_a_secret(
    billing_gw: Any, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOK_ENV, "  ")
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    session = await topup_session(gw, fake_stripe, key, 10)
    for secret in ("", "  ", WEBHOOK_SECRET):
        r = await deliver(gw, event("checkout.session.completed", session), secret=secret)
        assert r.status_code == 503 and "disabled" in r.json()["error"]["message"]
    assert await balance(gw, key) == 0


async def test_refunds_reverse_credit(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    session = await topup_session(gw, fake_stripe, key, 25)
    await deliver(gw, event("checkout.session.completed", session))
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": session["payment_intent"],
        "amount": 2500,
        "amount_refunded": 500,
        "refunded": False,
        "customer": session["customer"],
    }
    r = await deliver(gw, event("charge.refunded", charge))
    assert r.json()["action"] == "refunded" and await balance(gw, key) == 20_000_000
    full = event("charge.refunded", {**charge, "amount_refunded": 2500, "refunded": True})
    assert (await deliver(gw, full)).json()["action"] == "refunded"
    assert await balance(gw, key) == 0
    assert (await deliver(gw, full)).json()["action"] == "duplicate"
    stale = event("charge.refunded", charge)  # an older partial report arriving late changes nothing
    assert (await deliver(gw, stale)).json()["action"] == "ignored"
    stranger = event("charge.refunded", {**charge, "id": "ch_2", "payment_intent": "pi_not_a_topup"})
    assert (await deliver(gw, stranger)).json()["action"] == "ignored"
    assert await balance(gw, key) == 0
    kinds = [
        e["kind"] for e in ledger.entries(gw.rt.readers.get(), gw.rt.keyring.authenticate(key)["tenant_id"])
    ]
    assert sorted(kinds) == ["refund", "refund", "topup"]


async def test_malformed_events_are_400(billing_gw: Any) -> None:
    gw = await billing_gw()
    for evt in (
        {"id": "evt_x", "type": "invoice.paid"},
        {"type": "invoice.paid", "data": {"object": {}}},
        ["not", "an", "event"],
    ):
        payload, headers = signed(evt)  # type: ignore[arg-type]
        r = await call(gw, "POST", "/stripe/webhook", content=payload, headers=headers)
        assert r.status_code == 400, r.text
    ok = await deliver(gw, event("customer.created", {"id": "cus_1"}))
    assert ok.status_code == 200 and ok.json()["action"] == "ignored"


async def test_paid_session_without_an_id_is_400(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    key = await gw.mint("acme", usd=None)
    session = await topup_session(gw, fake_stripe, key, 25)
    del session["id"]  # the id keys the credit: without one nothing is credited
    r = await deliver(gw, event("checkout.session.completed", session))
    assert r.status_code == 400 and "needs an id" in r.json()["error"]["message"], r.text
    assert await balance(gw, key) == 0


# ---------------------------------------------------------------------- webhooks: subscriptions


async def test_subscription_lifecycle(billing_gw: Any, fake_stripe: FakeStripe) -> None:
    gw = await billing_gw()
    payg = await gw.mint("acme", usd=None)
    sub_key = await gw.mint("acme", usd=None, kind="subscription")

    async def use() -> int:
        async with httpx.AsyncClient(base_url=gw.base_url) as h:
            r = await h.post(
                "/claudecode/v1/messages",
                headers={"x-api-key": sub_key},
                json={
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
        return r.status_code

    async def state() -> dict[str, Any]:
        return (await call(gw, "GET", "/tenant/subscription", sub_key)).json()

    assert await use() == 402
    r = await call(gw, "POST", "/tenant/billing/checkout", payg, json={"tier": "pro"})
    session = fake_stripe.complete(r.json()["id"])
    sub_id, customer = session["subscription"], session["customer"]
    t0 = int(time.time())
    assert (await deliver(gw, event("checkout.session.completed", session, created=t0))).json()[
        "action"
    ] == "subscription"
    assert (await state())["tier"] == "pro" and await use() == 200
    again = await call(gw, "POST", "/tenant/billing/checkout", payg, json={"tier": "team"})
    assert again.status_code == 400 and "already" in again.json()["error"]["message"]

    # a renewal payment fails: access is suspended until an invoice is paid
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "customer": customer,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": sub_id, "metadata": {}},
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "period": {"start": t0, "end": t0 + 30 * 86400},
                    "pricing": {"price_details": {"price": "price_pro"}},
                }
            ],
        },
    }
    assert (await deliver(gw, event("invoice.payment_failed", invoice, created=t0 + 1))).json()[
        "action"
    ] == "subscription"
    assert (await state())["status"] == "past_due" and await use() == 402
    assert (await deliver(gw, event("invoice.paid", invoice, created=t0 + 2))).json()[
        "action"
    ] == "subscription"
    st = await state()
    assert st["status"] == "active" and st["period_end"] is not None and await use() == 200
    # an older event delivered late does not undo a newer one
    late = await deliver(gw, event("invoice.payment_failed", invoice, created=t0 + 1))
    assert late.json()["action"] == "ignored" and await use() == 200

    # plan change through the portal (older API shape: price on the item, period end on the subscription)
    changed = {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "metadata": {},
        "current_period_end": t0 + 40 * 86400,
        "items": {"data": [{"price": {"id": "price_team"}}]},
    }
    await deliver(gw, event("customer.subscription.updated", changed, created=t0 + 3))
    assert (await state())["tier"] == "team"
    await deliver(
        gw, event("customer.subscription.deleted", {**changed, "status": "canceled"}, created=t0 + 4)
    )
    st = await state()
    assert st["status"] == "canceled" and await use() == 402
