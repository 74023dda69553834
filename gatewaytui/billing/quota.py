"""Subscription quotas: tokens per rolling 24 hours, per tenant, by tier.

Tokens counted are everything the upstream reported for subscription-key requests: input, output,
cache reads and cache writes. Usage is kept in memory per tenant (loaded from the request rows on
first use, then appended as requests settle). A request is admitted while the tokens used in the last
24 hours are below the tier's allowance; past it the key gets 429 with the time enough usage rolls out
of the window. Requests already admitted finish even if they take the tenant over the allowance.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import ModelConfig, TierConfig
from ..model import GatewayError, Usage
from ..store import usage as usage_store
from .plans import Plan, Plans, ReaderSource

WINDOW = 86400.0


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens


@dataclass(slots=True)
class QuotaStatus:
    tier: TierConfig | None
    state: str
    used: int
    limit: int  # 0: unlimited
    reset_at: float | None  # over quota: when it frees up; otherwise when the oldest usage rolls off

    @property
    def remaining(self) -> int | None:
        return None if not self.limit else max(0, self.limit - self.used)


class Quota:
    def __init__(
        self,
        tiers: list[TierConfig],
        plans: Plans,
        readers: ReaderSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tiers = {t.name: t for t in tiers}
        self.plans = plans
        self._readers = readers
        self._clock = clock
        self._usage: dict[int, deque[tuple[float, int]]] = {}

    # ------------------------------------------------------------------ relay hooks

    def check(self, key: dict[str, Any], model: ModelConfig, route: str) -> None:
        """Admit a subscription-key request or raise (402 no active subscription, 403 not in tier, 429 quota)."""
        tenant_id = key["tenant_id"]
        plan = self.plans.get(tenant_id)
        tier = self._tier(plan)
        state = plan.subscription_state(self._clock()) if plan else "none"
        if tier is None or state != "active":
            raise GatewayError("billing", self._inactive_message(plan, state), code="subscription_inactive")
        if route not in tier.routes:
            raise GatewayError(
                "permission",
                f"the {tier.name} tier does not include the /{route} route (it covers "
                f"{', '.join('/' + r for r in tier.routes) or 'no routes'})",
            )
        if tier.models and model.name not in tier.models:
            raise GatewayError(
                "permission",
                f"the {tier.name} tier does not include model {model.name!r} (it covers {', '.join(tier.models)})",
            )
        if not tier.tokens_per_day:
            return
        used, window = self._used(tenant_id)
        if used >= tier.tokens_per_day:
            reset = self._reset_at(window, tier.tokens_per_day)
            now = self._clock()
            raise GatewayError(
                "rate_limit",
                f"subscription quota reached: {used:,} of {tier.tokens_per_day:,} tokens used in the last 24 hours "
                f"on the {tier.name} tier; it frees up at {iso(reset)}",
                retry_after=max(1.0, reset - now),
                code="subscription_quota_exceeded",
            )

    def forget(self) -> None:
        """Drop the usage windows: they are read afresh (other instances on a shared store used tokens)."""
        self._usage.clear()

    def record(self, tenant_id: int, usage: Usage) -> None:
        tokens = usage_tokens(usage)
        if tokens <= 0:
            return
        self._window(tenant_id).append((self._clock(), tokens))

    # ------------------------------------------------------------------ reporting

    def status(self, tenant_id: int) -> QuotaStatus:
        plan = self.plans.get(tenant_id)
        tier = self._tier(plan)
        state = plan.subscription_state(self._clock()) if plan else "none"
        used, window = self._used(tenant_id)
        limit = tier.tokens_per_day if tier else 0
        if limit and used >= limit:
            reset: float | None = self._reset_at(window, limit)
        else:
            reset = window[0][0] + WINDOW if window else None
        return QuotaStatus(tier=tier, state=state, used=used, limit=limit, reset_at=reset)

    # ------------------------------------------------------------------ internals

    def _tier(self, plan: Plan | None) -> TierConfig | None:
        if plan is None or not plan.tier:
            return None
        return self.tiers.get(plan.tier)

    def _window(self, tenant_id: int) -> deque[tuple[float, int]]:
        window = self._usage.get(tenant_id)
        if window is None:
            since = self._clock() - WINDOW
            window = deque(usage_store.subscription_usage(self._readers.get(), tenant_id, since))
            self._usage[tenant_id] = window
        return window

    def _used(self, tenant_id: int) -> tuple[int, deque[tuple[float, int]]]:
        window = self._window(tenant_id)
        cutoff = self._clock() - WINDOW
        while window and window[0][0] <= cutoff:
            window.popleft()
        return sum(t for _, t in window), window

    def _reset_at(self, window: deque[tuple[float, int]], limit: int) -> float:
        """The earliest time the usage left in the window drops below ``limit``."""
        remaining = sum(t for _, t in window)
        for at, tokens in window:
            remaining -= tokens
            if remaining < limit:
                return at + WINDOW
        return self._clock()

    def _inactive_message(self, plan: Plan | None, state: str) -> str:
        hint = "subscribe with POST /tenant/billing/checkout or use a pay-per-token key"
        if plan is None or state == "none":
            return f"this tenant has no subscription; {hint}"
        if plan.tier not in self.tiers:
            return f"this tenant's tier {plan.tier!r} is no longer offered; {hint}"
        if state in ("past_due", "unpaid"):
            return "the subscription's last payment failed; update the payment method with POST /tenant/billing/portal"
        if state == "lapsed":
            return f"the {plan.tier} subscription period has ended without a renewal payment; {hint}"
        return f"the {plan.tier} subscription is {state}; {hint}"
