"""Outbound Stripe calls: customers, Checkout sessions (top-ups, subscriptions) and portal sessions.

Uses the official ``stripe`` library through a ``StripeClient`` built from the configuration (secret key
from the environment, optional ``api_base`` for tests or stripe-mock); nothing is set on the module.
The library's synchronous client runs on a worker thread: these calls are rare and short.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar

import stripe

from ..config import StripeConfig, TierConfig
from ..model import GatewayError
from ..store import tenants as tenant_store
from .plans import Plans

T = TypeVar("T")


class BillingHost(Protocol):
    """What Stripe calls need of the running gateway (``gatewaytui.runtime.Runtime`` has it)."""

    @property
    def plans(self) -> Plans: ...

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


log = logging.getLogger("gatewaytui.billing")

TOPUP_MIN_CENTS = 500
TOPUP_MAX_CENTS = 100_000
MICRO_PER_CENT = 10_000


def parse_topup(value: Any) -> int:
    """``amount_usd`` (a number or decimal string, at most 2 decimals) -> cents, within $5..$1,000."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise GatewayError(
            "invalid_request", "amount_usd: expected a number of US dollars", param="amount_usd"
        )
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise GatewayError("invalid_request", "amount_usd: not a number", param="amount_usd") from None
    if not amount.is_finite():
        raise GatewayError("invalid_request", "amount_usd: not a finite number", param="amount_usd")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise GatewayError(
            "invalid_request", "amount_usd: at most 2 decimal places (whole cents)", param="amount_usd"
        )
    if not TOPUP_MIN_CENTS <= cents <= TOPUP_MAX_CENTS:
        raise GatewayError(
            "invalid_request", "amount_usd: a top-up must be between $5 and $1,000", param="amount_usd"
        )
    return int(cents)


class StripeBilling:
    def __init__(self, cfg: StripeConfig) -> None:
        self.cfg = cfg
        self._client: stripe.StripeClient | None = None
        self._client_key = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.secret_key.strip())

    def client(self) -> stripe.StripeClient:
        key = self.cfg.secret_key.strip()
        if not key:
            raise GatewayError(
                "unavailable",
                f"Stripe billing is not enabled on this gateway (set {self.cfg.secret_key_env})",
            )
        if self._client is None or key != self._client_key:
            base = {"api": self.cfg.api_base.rstrip("/")} if self.cfg.api_base else None
            self._client = stripe.StripeClient(key, base_addresses=base, max_network_retries=1)  # type: ignore[arg-type]
            self._client_key = key
        return self._client

    async def _call(self, what: str, fn: Any, params: dict[str, Any]) -> Any:
        try:
            return await asyncio.to_thread(fn, params)
        except stripe.StripeError as exc:
            log.warning("Stripe %s failed: %s", what, exc)
            detail = getattr(exc, "user_message", None) or "see the gateway log"
            raise GatewayError("api_error", f"Stripe could not {what}: {detail}", status=502) from None

    # ------------------------------------------------------------------ customers

    async def customer_for(self, rt: BillingHost, tenant_id: int) -> str:
        """The tenant's Stripe customer id, creating the customer on first use."""
        plan = rt.plans.get(tenant_id)
        if plan is not None and plan.stripe_customer_id:
            return plan.stripe_customer_id
        client = self.client()
        name = plan.name if plan else str(tenant_id)
        customer = await self._call(
            "create a customer",
            client.v1.customers.create,
            {"name": name, "metadata": {"tenant_id": str(tenant_id), "tenant": name}},
        )

        def work(conn: Any) -> dict[str, Any] | None:
            row = tenant_store.by_id(conn, tenant_id)
            if row is not None and not row.get("stripe_customer_id"):
                tenant_store.update(conn, tenant_id, stripe_customer_id=customer.id)
            return tenant_store.by_id(conn, tenant_id)

        row = await rt.write(work)
        if row is None:
            raise GatewayError("not_found", "tenant not found")
        rt.plans.put(row)
        return str(row["stripe_customer_id"])

    # ------------------------------------------------------------------ sessions

    async def topup_session(self, rt: BillingHost, tenant_id: int, cents: int) -> Any:
        client = self.client()
        customer = await self.customer_for(rt, tenant_id)
        meta = {"tenant_id": str(tenant_id), "kind": "topup"}
        return await self._call(
            "create a Checkout session",
            client.v1.checkout.sessions.create,
            {
                "mode": "payment",
                "customer": customer,
                "client_reference_id": str(tenant_id),
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": self.cfg.currency,
                            "unit_amount": cents,
                            "product_data": {"name": "gatewaytui credit"},
                        },
                    }
                ],
                "metadata": meta,
                "payment_intent_data": {"metadata": meta},
                "success_url": self.cfg.success_url,
                "cancel_url": self.cfg.cancel_url,
            },
        )

    async def subscription_session(self, rt: BillingHost, tenant_id: int, tier: TierConfig) -> Any:
        client = self.client()
        customer = await self.customer_for(rt, tenant_id)
        meta = {"tenant_id": str(tenant_id), "kind": "subscription", "tier": tier.name}
        return await self._call(
            "create a Checkout session",
            client.v1.checkout.sessions.create,
            {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": str(tenant_id),
                "line_items": [{"price": tier.stripe_price_id, "quantity": 1}],
                "metadata": meta,
                "subscription_data": {"metadata": meta},
                "success_url": self.cfg.success_url,
                "cancel_url": self.cfg.cancel_url,
            },
        )

    async def portal_session(self, rt: BillingHost, tenant_id: int) -> Any:
        client = self.client()
        customer = await self.customer_for(rt, tenant_id)
        return await self._call(
            "create a billing portal session",
            client.v1.billing_portal.sessions.create,
            {"customer": customer, "return_url": self.cfg.success_url},
        )
