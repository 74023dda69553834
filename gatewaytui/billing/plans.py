"""Each tenant's plan: subscription tier and status, and per-call spending caps, cached in memory.

Admission reads plans on every request, so they are kept in memory and re-read from the database at
most every ``ttl`` seconds per tenant. Changes made by this process (webhooks, operator actions) are
applied at once with ``put``; when the runtime's watcher sees the database changed by another process (the
CLI) it calls ``clear``, so those reach admission at the next request.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import TierConfig
from ..model import GatewayError
from ..store import tenants as tenant_store

log = logging.getLogger("gatewaytui.billing")

ACTIVE_STATUSES = frozenset({"active", "trialing"})


def check_tier(tiers: list[TierConfig], tier: str | None) -> None:
    """A tier an operator names must be one the config defines (``None``: off any tier)."""
    if tier is not None and tier not in {t.name for t in tiers}:
        configured = ", ".join(t.name for t in tiers) or "none"
        raise GatewayError("not_found", f"no tier {tier!r}; configured: {configured}")


class ReaderSource(Protocol):
    def get(self) -> Any: ...


@dataclass(slots=True)
class Plan:
    tenant_id: int
    name: str = ""
    tier: str | None = None
    status: str | None = None
    period_end: float | None = None
    subscription_id: str | None = None
    stripe_customer_id: str | None = None
    per_call_cap_micro: int | None = None
    model_caps: dict[str, int] = field(default_factory=dict)
    tpm: int | None = None  # tokens per minute across the tenant's keys (billing.limits)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Plan:
        caps: dict[str, int] = {}
        raw = row.get("model_caps")
        if raw:
            try:
                parsed = json.loads(raw) if isinstance(raw, str) else raw
                caps = {
                    str(k): int(v)
                    for k, v in parsed.items()
                    if isinstance(v, int) and not isinstance(v, bool)
                }
            except (ValueError, AttributeError, TypeError):
                log.warning("tenant %s: unreadable model_caps %r ignored", row.get("id"), raw)
        return cls(
            tenant_id=int(row["id"]),
            name=row.get("name") or "",
            tier=row.get("tier"),
            status=row.get("subscription_status"),
            period_end=row.get("period_end"),
            subscription_id=row.get("subscription_id"),
            stripe_customer_id=row.get("stripe_customer_id"),
            per_call_cap_micro=row.get("per_call_cap_micro"),
            model_caps=caps,
            tpm=row.get("tpm"),
        )

    def subscription_state(self, now: float | None = None, grace: float = 86400.0) -> str:
        """``none`` (no tier), ``active``, or why it is not (the Stripe status, or ``lapsed``)."""
        if not self.tier:
            return "none"
        status = self.status or "active"  # an operator-assigned tier without a status is active
        if status not in ACTIVE_STATUSES:
            return status
        now = time.time() if now is None else now
        if self.period_end and now > self.period_end + grace:
            return "lapsed"
        return "active"


class Plans:
    def __init__(self, readers: ReaderSource, ttl: float = 2.0) -> None:
        self._readers = readers
        self._ttl = ttl
        self._cache: dict[int, tuple[float, Plan | None]] = {}

    def get(self, tenant_id: int) -> Plan | None:
        now = time.monotonic()
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = tenant_store.by_id(self._readers.get(), tenant_id)
        plan = Plan.from_row(row) if row else None
        self._cache[tenant_id] = (now + self._ttl, plan)
        return plan

    def clear(self) -> None:
        """Forget every cached plan (a shared store reported a tenant change)."""
        self._cache.clear()

    def put(self, row: dict[str, Any]) -> Plan:
        plan = Plan.from_row(row)
        self._cache[plan.tenant_id] = (time.monotonic() + self._ttl, plan)
        return plan
