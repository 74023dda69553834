"""Stripe webhook events -> ledger entries and subscription changes, applied in one transaction.

``apply(conn, event, ctx)`` runs on the single writer. It first claims the event id in
``stripe_events``; a replayed event changes nothing. Money comes only from Stripe's own objects:
a top-up credits the Checkout session's ``amount_total`` once the session is ``paid``; a refund
reverses the refunded part (``amount_refunded``) of that top-up's credit, never more than was credited.

Handled: checkout.session.completed / async_payment_succeeded (top-up or new subscription),
invoice.paid (renewal: active, new period end), invoice.payment_failed (past_due),
customer.subscription.created / updated / deleted, charge.refunded. Anything else is acknowledged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import TierConfig
from ..store import ledger as ledger_store
from ..store import payments as payment_store
from ..store import tenants as tenant_store
from .stripe_billing import MICRO_PER_CENT


class EventError(ValueError):
    """The event is malformed; nothing was applied (Stripe will retry it)."""


@dataclass(slots=True)
class Context:
    tiers: dict[str, TierConfig]
    currency: str
    origin: str  # the wallet origin stamped on ledger entries this process writes


@dataclass(slots=True)
class Outcome:
    action: str  # credited, refunded, subscription, ignored, duplicate
    tenant_id: int | None = None
    delta_micro: int = 0  # the ledger change to apply to the in-memory wallet
    tenant: dict[str, Any] | None = None  # the tenant row after a subscription change
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def apply(conn: sqlite3.Connection, event: dict[str, Any], ctx: Context) -> Outcome:
    event_id, event_type = _str(event, "id"), _str(event, "type")
    if not event_id or not event_type:
        raise EventError("an event needs an id and a type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise EventError("event.data.object must be an object")
    if not payment_store.claim_event(conn, event_id, event_type):
        return Outcome("duplicate", detail=f"event {event_id} was already processed")
    handler = HANDLERS.get(event_type)
    if handler is None:
        return Outcome("ignored", detail=f"{event_type} is not used by the gateway")
    created = event.get("created")
    return handler(conn, obj, ctx, float(created) if isinstance(created, (int, float)) else 0.0)


# ---------------------------------------------------------------------- checkout


def _checkout_completed(
    conn: sqlite3.Connection, session: dict[str, Any], ctx: Context, created: float
) -> Outcome:
    mode = _str(session, "mode")
    if mode == "payment":
        return _topup(conn, session, ctx, created)
    if mode == "subscription":
        return _subscribed(conn, session, ctx, created)
    return Outcome("ignored", detail=f"Checkout mode {mode!r} is not used by the gateway")


def _topup(conn: sqlite3.Connection, session: dict[str, Any], ctx: Context, created: float) -> Outcome:
    meta = _dict(session, "metadata")
    if meta.get("kind") != "topup":
        return Outcome("ignored", detail="not a gateway top-up session")
    session_id = _str(session, "id")
    if _str(session, "payment_status") != "paid":
        return Outcome(
            "ignored", detail=f"session {session_id} is not paid ({session.get('payment_status')!r})"
        )
    if not session_id:  # it keys the credit (one per session) and the payment record
        raise EventError("a paid top-up session needs an id")
    tenant = _tenant(conn, meta, session)
    if tenant is None:
        return Outcome("ignored", detail=f"session {session_id} names no known tenant")
    currency = (_str(session, "currency") or "").lower()
    if currency != ctx.currency.lower():
        return Outcome(
            "ignored", detail=f"session {session_id} is in {currency!r}, the ledger is in {ctx.currency!r}"
        )
    cents = session.get("amount_total")
    if not isinstance(cents, int) or isinstance(cents, bool) or cents <= 0:
        return Outcome("ignored", detail=f"session {session_id} has no positive amount_total")
    amount = cents * MICRO_PER_CENT
    fresh = ledger_store.append(
        conn,
        tenant["id"],
        "topup",
        amount,
        f"stripe:topup:{session_id}",
        note=f"Stripe Checkout {session_id}",
        origin=ctx.origin,
    )
    payment_intent = _ref(session.get("payment_intent"))
    if payment_intent:
        payment_store.record_payment(conn, payment_intent, tenant["id"], session_id, amount)
    if not fresh:
        return Outcome(
            "duplicate", tenant_id=tenant["id"], detail=f"session {session_id} was already credited"
        )
    return Outcome(
        "credited", tenant_id=tenant["id"], delta_micro=amount, detail=f"credited session {session_id}"
    )


def _subscribed(conn: sqlite3.Connection, session: dict[str, Any], ctx: Context, created: float) -> Outcome:
    if _str(session, "payment_status") not in ("paid", "no_payment_required"):
        return Outcome("ignored", detail="subscription session not paid")
    meta = _dict(session, "metadata")
    tenant = _tenant(conn, meta, session)
    if tenant is None:
        return Outcome("ignored", detail="subscription session names no known tenant")
    tier = meta.get("tier")
    if tier not in ctx.tiers:
        return Outcome("ignored", tenant_id=tenant["id"], detail=f"unknown tier {tier!r}")
    fields: dict[str, Any] = {"tier": tier, "subscription_status": "active"}
    sub = _ref(session.get("subscription"))
    if sub:
        fields["subscription_id"] = sub
    customer = _ref(session.get("customer"))
    if customer and not tenant.get("stripe_customer_id"):
        fields["stripe_customer_id"] = customer
    return _update_tenant(conn, tenant, fields, f"subscribed to {tier}", created)


# ---------------------------------------------------------------------- invoices and subscriptions


def _invoice_paid(conn: sqlite3.Connection, invoice: dict[str, Any], ctx: Context, created: float) -> Outcome:
    sub, meta = _invoice_subscription(invoice)
    if not sub:
        return Outcome("ignored", detail="invoice is not for a subscription")
    tenant = _tenant(conn, meta, invoice, subscription=sub)
    if tenant is None:
        return Outcome("ignored", detail=f"no tenant for subscription {sub}")
    fields: dict[str, Any] = {"subscription_status": "active", "subscription_id": sub}
    ends = [
        end for line in _lines(invoice) if isinstance(end := _dict(line, "period").get("end"), (int, float))
    ]
    if ends:
        fields["period_end"] = float(max(ends))
    tier = _tier_of_prices(ctx, [_line_price(line) for line in _lines(invoice)]) or _known_tier(
        ctx, meta.get("tier")
    )
    if tier:
        fields["tier"] = tier
    return _update_tenant(conn, tenant, fields, "subscription renewed", created)


def _invoice_failed(
    conn: sqlite3.Connection, invoice: dict[str, Any], ctx: Context, created: float
) -> Outcome:
    sub, meta = _invoice_subscription(invoice)
    if not sub:
        return Outcome("ignored", detail="invoice is not for a subscription")
    tenant = _tenant(conn, meta, invoice, subscription=sub)
    if tenant is None or (tenant.get("subscription_id") and tenant["subscription_id"] != sub):
        return Outcome("ignored", detail=f"subscription {sub} is not a tenant's current one")
    return _update_tenant(
        conn, tenant, {"subscription_status": "past_due"}, "renewal payment failed", created
    )


def _subscription_changed(
    conn: sqlite3.Connection, sub: dict[str, Any], ctx: Context, created: float
) -> Outcome:
    sub_id = _str(sub, "id")
    meta = _dict(sub, "metadata")
    tenant = _tenant(conn, meta, sub, subscription=sub_id)
    if tenant is None:
        return Outcome("ignored", detail=f"no tenant for subscription {sub_id}")
    if (
        tenant.get("subscription_id")
        and tenant["subscription_id"] != sub_id
        and tenant.get("subscription_status") in ("active", "trialing")
    ):
        return Outcome("ignored", detail=f"subscription {sub_id} is not the tenant's current one")
    fields: dict[str, Any] = {"subscription_id": sub_id}
    status = _str(sub, "status")
    if status:
        fields["subscription_status"] = status
    items = _items(sub)
    end = sub.get("current_period_end")
    if not isinstance(end, (int, float)):
        ends = [e for item in items if isinstance(e := item.get("current_period_end"), (int, float))]
        end = max(ends) if ends else None
    if end is not None:
        fields["period_end"] = float(end)
    tier = _tier_of_prices(ctx, [_ref(item.get("price")) for item in items]) or _known_tier(
        ctx, meta.get("tier")
    )
    if tier:
        fields["tier"] = tier
    return _update_tenant(conn, tenant, fields, f"subscription {status or 'updated'}", created)


def _subscription_deleted(
    conn: sqlite3.Connection, sub: dict[str, Any], ctx: Context, created: float
) -> Outcome:
    sub_id = _str(sub, "id")
    tenant = _tenant(conn, _dict(sub, "metadata"), sub, subscription=sub_id)
    if tenant is None or (tenant.get("subscription_id") and tenant["subscription_id"] != sub_id):
        return Outcome("ignored", detail=f"subscription {sub_id} is not a tenant's current one")
    return _update_tenant(
        conn, tenant, {"subscription_status": "canceled"}, "subscription cancelled", created
    )


# ---------------------------------------------------------------------- refunds


def _charge_refunded(
    conn: sqlite3.Connection, charge: dict[str, Any], ctx: Context, created: float
) -> Outcome:
    payment_intent = _ref(charge.get("payment_intent"))
    paid = payment_store.payment(conn, payment_intent) if payment_intent else None
    if not payment_intent or paid is None:
        return Outcome("ignored", detail="the refunded charge is not a gateway top-up")
    refunded_cents = charge.get("amount_refunded")
    if not isinstance(refunded_cents, int) or isinstance(refunded_cents, bool) or refunded_cents < 0:
        raise EventError("charge.amount_refunded must be a non-negative integer")
    target = min(refunded_cents * MICRO_PER_CENT, paid["amount_micro"])
    delta = target - paid["refunded_micro"]
    if delta <= 0:
        return Outcome("ignored", tenant_id=paid["tenant_id"], detail="refund already reversed")
    charge_id = _str(charge, "id") or payment_intent
    fresh = ledger_store.append(
        conn,
        paid["tenant_id"],
        "refund",
        -delta,
        f"stripe:refund:{charge_id}:{refunded_cents}",
        note=f"Stripe refund of {payment_intent}",
        origin=ctx.origin,
    )
    payment_store.set_refunded(conn, payment_intent, target)
    if not fresh:
        return Outcome("duplicate", tenant_id=paid["tenant_id"])
    return Outcome(
        "refunded",
        tenant_id=paid["tenant_id"],
        delta_micro=-delta,
        detail=f"reversed refund on {payment_intent}",
    )


HANDLERS: dict[str, Callable[[sqlite3.Connection, dict[str, Any], Context, float], Outcome]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
    "charge.refunded": _charge_refunded,
}


# ---------------------------------------------------------------------- helpers


def _update_tenant(
    conn: sqlite3.Connection, tenant: dict[str, Any], fields: dict[str, Any], detail: str, created: float
) -> Outcome:
    """Apply subscription fields, unless a newer event already did (Stripe does not order deliveries)."""
    last = payment_store.event_time(conn, tenant["id"])
    if created and last and created < last:
        return Outcome("ignored", tenant_id=tenant["id"], detail="an older event than one already applied")
    if (
        fields.get("subscription_status") == "incomplete"
        and tenant.get("subscription_status") in ("active", "trialing")
        and fields.get("subscription_id") == tenant.get("subscription_id")
    ):
        fields.pop("subscription_status")  # a subscription never returns to incomplete once active
    tenant_store.update(conn, tenant["id"], **fields)
    if created:
        payment_store.set_event_time(conn, tenant["id"], created)
    return Outcome(
        "subscription", tenant_id=tenant["id"], tenant=tenant_store.by_id(conn, tenant["id"]), detail=detail
    )


def _tenant(
    conn: sqlite3.Connection, meta: dict[str, Any], obj: dict[str, Any], *, subscription: str | None = None
) -> dict[str, Any] | None:
    """The tenant an object belongs to: our metadata first, then the subscription, then the customer."""
    for raw in (meta.get("tenant_id"), obj.get("client_reference_id")):
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 19:
            found = tenant_store.by_id(conn, int(raw))
            if found is not None:
                return found
    if subscription:
        found = payment_store.tenant_by_subscription(conn, subscription)
        if found is not None:
            return found
    customer = _ref(obj.get("customer"))
    return payment_store.tenant_by_customer(conn, customer) if customer else None


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The subscription an invoice bills, in both the older and the current (``parent``) API shapes."""
    details = _dict(_dict(invoice, "parent"), "subscription_details")
    sub = _ref(details.get("subscription")) or _ref(invoice.get("subscription"))
    meta = _dict(details, "metadata") or _dict(_dict(invoice, "subscription_details"), "metadata")
    return sub, meta


def _lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    data = _dict(invoice, "lines").get("data")
    return [x for x in data if isinstance(x, dict)] if isinstance(data, list) else []


def _line_price(line: dict[str, Any]) -> str | None:
    details = _dict(_dict(line, "pricing"), "price_details")
    return _ref(details.get("price")) or _ref(line.get("price"))


def _items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    data = _dict(sub, "items").get("data")
    return [x for x in data if isinstance(x, dict)] if isinstance(data, list) else []


def _tier_of_prices(ctx: Context, prices: list[str | None]) -> str | None:
    for price in prices:
        if not price:
            continue
        for tier in ctx.tiers.values():
            if tier.stripe_price_id and tier.stripe_price_id == price:
                return tier.name
    return None


def _known_tier(ctx: Context, name: Any) -> str | None:
    return name if isinstance(name, str) and name in ctx.tiers else None


def _ref(value: Any) -> str | None:
    """A Stripe reference: an id string, or an expanded object's id."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}
