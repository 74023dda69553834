"""POST /stripe/webhook: verified Stripe events, applied once, through the single writer.

The signature is checked with the ``stripe`` library's scheme against the configured endpoint secret;
with no secret configured every event is refused (fail closed). An event and its ledger entry are
written in one transaction (see ``billing.stripe_events``); the running gateway's wallet and plan
cache are updated as soon as it commits.
"""

from __future__ import annotations

import logging

import orjson
import stripe
from quart import Quart, Response, request

from ..billing import stripe_events
from ..billing.pricing import format_usd
from ..codec import dumps
from ..model import GatewayError
from ..runtime import Runtime
from .protocols import error_response, new_request_id

log = logging.getLogger("gatewaytui.billing")

MAX_EVENT_BYTES = 512 * 1024


def register(app: Quart, rt: Runtime) -> None:
    @app.post("/stripe/webhook")
    async def stripe_webhook() -> Response:
        try:
            return await _handle(rt)
        except GatewayError as err:
            return error_response("openai_chat", err, new_request_id())


async def _handle(rt: Runtime) -> Response:
    cfg = rt.cfg.stripe
    secret = cfg.webhook_secret.strip()
    if not secret:
        raise GatewayError(
            "unavailable", f"Stripe webhooks are disabled: {cfg.webhook_secret_env} is not set"
        )
    payload = await request.get_data(cache=False)
    assert isinstance(payload, bytes)
    if len(payload) > MAX_EVENT_BYTES:
        raise GatewayError("request_too_large", "webhook payload too large")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, request.headers.get("stripe-signature"), secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = orjson.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        log.warning("Stripe webhook refused: %s", exc)
        raise GatewayError("invalid_request", "invalid Stripe signature") from None
    except orjson.JSONDecodeError:
        raise GatewayError("invalid_request", "webhook payload is not JSON") from None
    if not isinstance(event, dict):
        raise GatewayError("invalid_request", "webhook payload is not an event object")

    ctx = stripe_events.Context(
        tiers={t.name: t for t in rt.cfg.tiers}, currency=cfg.currency, origin=rt.wallet.origin
    )
    try:
        outcome = await rt.write(lambda conn: stripe_events.apply(conn, event, ctx))
    except stripe_events.EventError as exc:
        raise GatewayError("invalid_request", f"malformed event: {exc}") from None

    if outcome.delta_micro and outcome.tenant_id is not None:
        await rt.wallet.credit(outcome.tenant_id, outcome.delta_micro)
        rt.bus.publish(
            "tenant.balance",
            tenant_id=outcome.tenant_id,
            balance_micro=rt.wallet.balance[outcome.tenant_id],
            note=f"Stripe {outcome.action} {format_usd(outcome.delta_micro)}",
        )
    if outcome.tenant is not None:
        plan = rt.plans.put(outcome.tenant)
        rt.bus.publish("tenant.subscription", tenant_id=plan.tenant_id, tier=plan.tier, status=plan.status)
    if outcome.action not in ("duplicate", "ignored"):
        log.info("Stripe %s %s: %s", event.get("type"), event.get("id"), outcome.detail)
    body = {"received": True, "action": outcome.action, "detail": outcome.detail}
    return Response(dumps(body), status=200, content_type="application/json")
