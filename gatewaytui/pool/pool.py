"""Choosing accounts for a request, and keeping their health.

Order of preference for one request: the operator's preferred account, then priority, then the
strategy — round-robin, least-used, or sticky (a conversation keeps its account so prompt caches stay
warm; see ``affinity``). Sticky is only a preference: it fails over, and a session's concurrent requests
(parallel sub-agents) spill onto other accounts instead of piling onto one.

Every health change is recorded on the account (cause, since, until, last error), handed to ``persist``
(the runtime writes it to SQLite, so it survives a restart) and published on the event bus.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from ..bus import EventBus
from ..config import STRATEGIES
from ..providers.base import UpstreamError
from .account import Account
from .cooldown import cooldown_seconds, refine

STICKY_SPILL = 2  # a sticky account with this many more in flight than the least busy one spills over
QUOTA_EVERY = 5.0  # seconds between quota events (and writes) per account while nothing changes
# Failures that may be the request's fault or the account's: the account pays only when this many
# different tenants meet one in a row (no success between), or when the gateway's own request (a probe,
# no tenant) meets it.
SUSPECT_CAUSES = ("forbidden", "timeout")
SUSPECT_TENANTS = 3
REQUEST_CAUSES = ("bad_request", "too_large")  # the request's own fault: the account is untouched

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
    def __init__(
        self,
        bus: EventBus,
        *,
        strategy: str = "sticky",
        persist: Callable[[Account], None] | None = None,
        live: Callable[[str], bool] | None = None,
    ) -> None:
        self.bus = bus
        self.strategy = strategy
        self.accounts: dict[str, Account] = {}
        self._persist = persist or (lambda acc: None)
        self._live = live  # is this request id still in flight? (lets claims clean themselves up)
        self._rr = itertools.count()
        self._claims: dict[str, tuple[str, str]] = {}  # request id -> (session, account id)
        self.on_auth_failure: Callable[[Account], None] | None = None  # e.g. try an OAuth refresh

    # ------------------------------------------------------------ membership

    def put(self, acc: Account) -> None:
        old = self.accounts.get(acc.id)
        if old is not None:  # keep live counters across a reload
            acc.inflight, acc.served, acc.errors, acc.recent = (
                old.inflight,
                old.served,
                old.errors,
                old.recent,
            )
        self.accounts[acc.id] = acc

    def remove(self, account_id: str) -> None:
        self.accounts.pop(account_id, None)

    def find(self, ref: str) -> Account | None:
        if ref in self.accounts:
            return self.accounts[ref]
        return next((a for a in self.accounts.values() if a.label == ref), None)

    def serving(self, provider: str, upstream_model: str, name: str) -> list[Account]:
        """Accounts that could ever serve this model (whatever their health)."""
        kinds = SERVES.get(provider, (provider,))
        return [a for a in self.accounts.values() if a.provider in kinds and a.serves(upstream_model, name)]

    def apply_settings(self, settings: dict[str, Any]) -> None:
        strategy = settings.get("strategy")
        if isinstance(strategy, str) and strategy in STRATEGIES:
            self.strategy = strategy

    # ------------------------------------------------------------ selection

    def candidates(
        self,
        provider: str,
        upstream_model: str,
        name: str,
        sticky_key: str | Callable[[], str | None] | None = None,
        *,
        session: str | None = None,
    ) -> list[Account]:
        """Accounts that can serve now, best first (``sticky_key`` may be a function that makes the key: it is
        called only when there is a choice to make)."""
        now = time.time()
        pool = [
            a for a in self.serving(provider, upstream_model, name) if a.ready_at(now, upstream_model) <= now
        ]
        if len(pool) < 2:
            return pool  # nothing to rank (a model served by one account: the common case)
        strategy = self.strategy
        key = sticky_key() if callable(sticky_key) and strategy == "sticky" else sticky_key
        if strategy == "sticky" and isinstance(key, str) and key:
            ranked = sorted(pool, key=lambda a: _rendezvous(key, a.id, a.weight), reverse=True)
            if session:  # a session's concurrent requests go to different accounts
                busy = self.session_load(session)
                ranked.sort(key=lambda a: busy.get(a.id, 0))
            least = min(a.inflight for a in pool)
            if ranked[0].inflight - least >= STICKY_SPILL:  # the sticky account is far busier: spread out
                ranked.sort(key=lambda a: a.inflight)
        elif strategy == "least-used":
            ranked = sorted(pool, key=lambda a: (a.inflight / max(1, a.weight), a.rpm_used(now), a.served))
        else:
            start = next(self._rr)
            weighted = [a for a in pool for _ in range(max(1, a.weight))]
            offset = start % len(weighted)
            firsts: dict[str, Account] = {}
            for a in weighted[offset:] + weighted[:offset]:
                firsts.setdefault(a.id, a)
            ranked = list(firsts.values())
        # preferred, then priority; the sort is stable, so the strategy's order holds within a tier
        ranked.sort(key=lambda a: (not a.preferred, -a.priority))
        return ranked

    def earliest_recovery(self, provider: str, upstream_model: str, name: str) -> float | None:
        """Seconds until some account could serve this model again (None: never without the operator)."""
        now = time.time()
        times = [a.ready_at(now, upstream_model) for a in self.serving(provider, upstream_model, name)]
        finite = [t for t in times if t != float("inf")]
        return max(1.0, min(finite) - now) if finite else None

    # ------------------------------------------------------------ session claims

    def claim(self, request_id: str, session: str | None, account_id: str) -> None:
        """Note that a request of ``session`` is being served by ``account_id`` (a failover moves it)."""
        if session:
            self._claims[request_id] = (session, account_id)

    def release(self, request_id: str) -> None:
        self._claims.pop(request_id, None)

    def session_load(self, session: str) -> Counter[str]:
        """How many of this session's requests each account serves right now."""
        if self._live is not None:
            for rid in [r for r in self._claims if not self._live(r)]:
                del self._claims[rid]
        return Counter(acc for s, acc in self._claims.values() if s == session)

    # ------------------------------------------------------------ outcomes

    def begin(self, acc: Account) -> None:
        acc.inflight += 1
        now = time.time()
        acc.recent.append(now)
        acc.rpm_used(now)  # trims the one-minute window, so it stays bounded with or without an rpm limit

    def end(self, acc: Account) -> None:
        acc.inflight = max(0, acc.inflight - 1)

    def success(self, acc: Account, quota: dict[str, Any] | None = None) -> None:
        acc.served += 1
        acc.suspects.clear()
        changed = False
        if acc.failures or acc.cause:
            acc.failures = 0
            if acc.cooldown_until <= time.time() and acc.cause != "auth":
                acc.cause, acc.since = None, None
            changed = True
        if quota and self.update_quota(acc, quota, persist=False):
            changed = True
        if changed:
            self._persist(acc)

    def update_quota(
        self, acc: Account, quota: dict[str, Any], *, persist: bool = True, force: bool = False
    ) -> bool:
        """Keep the upstream's latest quota facts. Every answer carries them, so the event and the write
        happen at most every ``QUOTA_EVERY`` seconds per account, or at once when the status changes."""
        now = time.time()
        old = acc.quota or {}
        acc.quota = {**old, **quota, "updated_at": now}
        due = force or now - (old.get("published_at") or 0) >= QUOTA_EVERY
        if not due and quota.get("unified_status") == old.get("unified_status"):
            return False
        acc.quota["published_at"] = now
        self.bus.publish("account.quota", account=acc.id, label=acc.label, quota=acc.quota)
        if persist:
            self._persist(acc)
        return True

    def failure(
        self,
        acc: Account,
        err: UpstreamError,
        upstream_model: str | None = None,
        quota: dict[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> None:
        """Record a failed attempt and rest the account (or just the model) as its cause deserves.

        ``tenant`` is whose request failed (None: the gateway's own, e.g. a probe). A failure the request
        may have caused (``SUSPECT_CAUSES``) rests or disables the account only once ``SUSPECT_TENANTS``
        different tenants met it in a row; one it caused (``REQUEST_CAUSES``) never does."""
        now = time.time()
        err.message = acc.scrub(err.message)  # every path that records or shows the error sees it clean
        cause = refine(err, quota)
        if quota:
            self.update_quota(acc, quota, persist=False, force=True)
        if cause in REQUEST_CAUSES:
            if quota:
                self._persist(acc)
            return  # the request's fault: not the account's error
        acc.errors += 1
        acc.last_error = f"{err.status} {cause}: {err.message}"[:500]
        if cause in SUSPECT_CAUSES and not self._confirmed(acc, cause, tenant):
            if quota:
                self._persist(acc)
            return  # not yet shown to be the account's
        if cause in ("auth", "forbidden"):
            why = "rejected the credentials" if cause == "auth" else "refused requests of several tenants"
            self.disable(acc, f"upstream {why} ({err.status}): {err.message}", cause="auth")
            if acc.oauth and self.on_auth_failure is not None:
                self.on_auth_failure(acc)
            return
        acc.failures += 1
        seconds = cooldown_seconds(err, acc.failures, quota, now)
        if seconds is None:
            self._persist(acc)
            return
        if cause == "model_not_found" and upstream_model:
            acc.model_cooldowns[upstream_model] = now + seconds
            self.bus.publish(
                "account.model_cooldown",
                account=acc.id,
                label=acc.label,
                model=upstream_model,
                until=now + seconds,
                error=acc.last_error,
            )
        else:
            if acc.cooldown_until <= now or acc.since is None:  # a new streak starts; else it continues
                acc.since = now
            acc.cooldown_until = max(acc.cooldown_until, now + seconds)
            acc.cause = cause
            self.bus.publish(
                "account.cooldown",
                account=acc.id,
                label=acc.label,
                cause=cause,
                since=acc.since,
                until=acc.cooldown_until,
                error=acc.last_error,
            )
        self._persist(acc)

    def _confirmed(self, acc: Account, cause: str, tenant: str | None) -> bool:
        """Is this suspect failure now the account's? (Counts ``tenant`` toward the streak.)"""
        if tenant is None:
            acc.suspects.pop(cause, None)
            return True
        seen = acc.suspects.setdefault(cause, set())
        seen.add(tenant)
        if len(seen) < SUSPECT_TENANTS:
            return False
        del acc.suspects[cause]
        return True

    def disable(self, acc: Account, reason: str, *, cause: str | None = None) -> None:
        """Take an account out of rotation until the operator (or, for ``auth``, a credential refresh) acts."""
        acc.enabled = False
        acc.disabled_reason = reason[:300]
        if cause:
            acc.cause, acc.since = cause, time.time()
        self.bus.publish(
            "account.disabled", account=acc.id, label=acc.label, reason=acc.disabled_reason, cause=cause
        )
        self._persist(acc)

    def reenable(self, acc: Account, why: str = "credentials refreshed") -> bool:
        """Undo a disable caused by rejected credentials (never an operator's disable)."""
        if acc.enabled or acc.cause != "auth":
            return False
        acc.enabled, acc.disabled_reason = True, None
        acc.cause, acc.since, acc.failures = None, None, 0
        self.bus.publish("account.enabled", account=acc.id, label=acc.label, reason=why)
        self._persist(acc)
        return True

    def reset(self, acc: Account) -> None:
        """Clear the account's cooldown and model cooldowns (the operator says: try it again)."""
        acc.cooldown_until, acc.failures = 0.0, 0
        if acc.cause != "auth" or acc.enabled:
            acc.cause, acc.since = None, None
        acc.model_cooldowns.clear()
        self.bus.publish("account.cooldown_end", account=acc.id, label=acc.label, reason="reset")
        self._persist(acc)

    def persist(self, acc: Account) -> None:
        self._persist(acc)

    def tick(self) -> None:
        """Publish cooldown ends that happened by the clock."""
        now = time.time()
        for acc in list(self.accounts.values()):
            changed = False
            if acc.cause and acc.cause != "auth" and 0 < acc.cooldown_until <= now:
                acc.cause, acc.since = None, None
                self.bus.publish("account.cooldown_end", account=acc.id, label=acc.label)
                changed = True
            for model in [m for m, t in acc.model_cooldowns.items() if t <= now]:
                del acc.model_cooldowns[model]
                self.bus.publish("account.model_cooldown_end", account=acc.id, label=acc.label, model=model)
                changed = True
            if changed:
                self._persist(acc)

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.time()
        return [a.public(now) for a in sorted(self.accounts.values(), key=lambda a: (a.provider, a.label))]

    def __iter__(self) -> Iterator[Account]:
        return iter(list(self.accounts.values()))


def _rendezvous(key: str, account_id: str, weight: int) -> float:
    """Weighted rendezvous hashing: each key ranks the accounts the same way every time."""
    digest = hashlib.blake2b(f"{key}|{account_id}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)  # in (0, 1)
    return -max(1, weight) / math.log(u)
