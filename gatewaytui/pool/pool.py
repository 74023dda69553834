"""Choosing accounts for a request, and keeping their health.

Order of preference for one request: the operator's preferred account, then priority, then the
strategy — round-robin, least-used, or sticky (a session keeps its account so prompt caches stay warm;
sticky is only a preference: it fails over, and a session's concurrent sub-agents spill onto other
accounts instead of piling onto one).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..bus import EventBus
from ..providers.base import UpstreamError
from .account import Account
from .cooldown import cooldown_seconds

STICKY_SPILL = 2  # a sticky account with this many more in flight than the least busy one spills over

# Which account providers can serve a model routed to a provider module.
SERVES = {
    "anthropic": ("anthropic",),
    "openai": ("openai",),
    "openai-responses": ("openai",),
    "gemini": ("gemini",),
    "openrouter": ("openrouter",),
    "openai-compatible": ("openai-compatible",),
}


class Pool:
    def __init__(self, bus: EventBus, *, strategy: str = "sticky", persist: Callable[[Account], None] | None = None) -> None:
        self.bus = bus
        self.strategy = strategy
        self.accounts: dict[str, Account] = {}
        self._persist = persist or (lambda acc: None)
        self._rr = itertools.count()

    # ------------------------------------------------------------ membership

    def put(self, acc: Account) -> None:
        old = self.accounts.get(acc.id)
        if old is not None:  # keep live counters across a reload
            acc.inflight, acc.served, acc.errors, acc.recent = old.inflight, old.served, old.errors, old.recent
        self.accounts[acc.id] = acc

    def remove(self, account_id: str) -> None:
        self.accounts.pop(account_id, None)

    def find(self, ref: str) -> Account | None:
        if ref in self.accounts:
            return self.accounts[ref]
        return next((a for a in self.accounts.values() if a.label == ref), None)

    # ------------------------------------------------------------ selection

    def candidates(self, provider: str, upstream_model: str, name: str, sticky_key: str | None = None) -> list[Account]:
        """Accounts that can serve now, best first."""
        now = time.time()
        kinds = SERVES.get(provider, (provider,))
        pool = [
            a for a in self.accounts.values()
            if a.provider in kinds and a.serves(upstream_model, name) and a.ready_at(now, upstream_model) <= now
        ]
        if not pool:
            return []
        strategy = self.strategy
        if strategy == "sticky" and sticky_key:
            ranked = sorted(pool, key=lambda a: _rendezvous(sticky_key, a.id, a.weight), reverse=True)
            least = min(a.inflight for a in pool)
            if ranked[0].inflight - least >= STICKY_SPILL:  # sub-agents of one session: spread out
                ranked.sort(key=lambda a: a.inflight)
        elif strategy == "least-used":
            ranked = sorted(pool, key=lambda a: (a.inflight / max(1, a.weight), a.rpm_used(now), a.served))
        else:
            start = next(self._rr)
            weighted = [a for a in pool for _ in range(max(1, a.weight))]
            offset = start % len(weighted)
            seen: set[str] = set()
            ranked = [a for a in weighted[offset:] + weighted[:offset] if not (a.id in seen or seen.add(a.id))]
        ranked.sort(key=lambda a: (not a.preferred, -a.priority))  # stable: keeps strategy order within a tier
        return ranked

    def earliest_recovery(self, provider: str, upstream_model: str, name: str) -> float | None:
        """Seconds until some account could serve this model again (None: never without the operator)."""
        now = time.time()
        kinds = SERVES.get(provider, (provider,))
        times = [
            a.ready_at(now, upstream_model) for a in self.accounts.values()
            if a.provider in kinds and a.serves(upstream_model, name)
        ]
        finite = [t for t in times if t != float("inf")]
        return max(1.0, min(finite) - now) if finite else None

    # ------------------------------------------------------------ outcomes

    def begin(self, acc: Account) -> None:
        acc.inflight += 1
        acc.recent.append(time.time())

    def end(self, acc: Account) -> None:
        acc.inflight = max(0, acc.inflight - 1)

    def success(self, acc: Account, quota: dict[str, Any] | None = None) -> None:
        acc.served += 1
        changed = False
        if acc.failures or acc.cause:
            acc.failures = 0
            if acc.cooldown_until <= time.time():
                acc.cause = None
            changed = True
        if quota:
            acc.quota = {**(acc.quota or {}), **quota, "updated_at": time.time()}
            self.bus.publish("account.quota", account=acc.id, label=acc.label, quota=acc.quota)
            changed = True
        if changed:
            self._persist(acc)

    def failure(self, acc: Account, err: UpstreamError, upstream_model: str | None = None) -> None:
        now = time.time()
        acc.errors += 1
        acc.last_error = f"{err.status} {err.cause}: {err.message}"[:500]
        if err.cause == "bad_request":
            return  # the request's fault, not the account's
        if err.cause == "auth":
            acc.enabled = False
            acc.disabled_reason = f"upstream rejected credentials ({err.status}): {err.message}"[:300]
            acc.cause, acc.since = "auth", now
            self.bus.publish("account.disabled", account=acc.id, label=acc.label, reason=acc.disabled_reason)
            self._persist(acc)
            return
        acc.failures += 1
        seconds = cooldown_seconds(err, acc.failures)
        if seconds is None:
            return
        if err.cause == "model_not_found" and upstream_model:
            acc.model_cooldowns[upstream_model] = now + seconds
            self.bus.publish("account.model_cooldown", account=acc.id, label=acc.label, model=upstream_model, until=now + seconds)
        else:
            acc.cooldown_until = max(acc.cooldown_until, now + seconds)
            acc.cause, acc.since = err.cause, now
            self.bus.publish(
                "account.cooldown", account=acc.id, label=acc.label, cause=err.cause,
                until=acc.cooldown_until, error=acc.last_error,
            )
        self._persist(acc)

    def reset(self, acc: Account) -> None:
        acc.cooldown_until, acc.cause, acc.since, acc.failures = 0.0, None, None, 0
        acc.model_cooldowns.clear()
        self.bus.publish("account.cooldown_end", account=acc.id, label=acc.label)
        self._persist(acc)

    def tick(self) -> None:
        """Publish cooldown ends that happened by the clock."""
        now = time.time()
        for acc in self.accounts.values():
            if acc.cause and acc.cause != "auth" and 0 < acc.cooldown_until <= now:
                acc.cause = None
                self.bus.publish("account.cooldown_end", account=acc.id, label=acc.label)
                self._persist(acc)

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.time()
        return [a.public(now) for a in sorted(self.accounts.values(), key=lambda a: (a.provider, a.label))]

    def __iter__(self) -> Iterable[Account]:  # type: ignore[override]
        return iter(self.accounts.values())


def _rendezvous(key: str, account_id: str, weight: int) -> float:
    digest = hashlib.blake2b(f"{key}|{account_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * max(1, weight)
