"""How long an account rests after a failure, by cause.

A 429 is either a brief throttle (per-minute limits: rest until the window resets, seconds) or a quota
wall (a subscription's 5-hour / 7-day allowance is spent, or the upstream asks for a very long wait:
rest until the allowance resets, hours). The upstream's ``retry-after`` is honoured but capped; without
it the account backs off exponentially with its consecutive failures.
"""

from __future__ import annotations

import time
from typing import Any

from ..providers.base import UpstreamError

MAX_RETRY_AFTER = 3600.0  # cap on a throttle's retry-after
QUOTA_WALL_AFTER = 900.0  # a 429 asking for a longer wait than this is a quota wall, not a throttle
QUOTA_DEFAULT = 3600.0  # a quota wall without any reset time
QUOTA_MAX = 7 * 86400.0  # a weekly allowance resets within a week
MODEL_MISSING = 3600.0  # model-not-found cools that model on that account
THROTTLE_BACKOFF = (1.0, 60.0)  # base and cap of a 429's backoff without retry-after
OVERLOAD_BACKOFF = (2.0, 60.0)  # 529 / 503
SERVER_BACKOFF = (5.0, 120.0)  # 5xx, connection errors, timeouts
SERVER_RETRY_AFTER_CAP = 300.0

UNIFIED_WINDOWS = ("5h", "7d")


def backoff(failures: int, base: float, cap: float) -> float:
    """``base * 2**(failures-1)``, capped: 1st failure ``base``, 2nd ``2*base``, ..."""
    return min(cap, base * 2.0 ** min(max(0, failures - 1), 16))


def quota_reset(quota: dict[str, Any] | None, now: float | None = None) -> float | None:
    """When a spent subscription allowance comes back (epoch seconds), from the unified 5h/7d headers.

    The window that is full (utilisation >= 1, or the only one reported when the upstream says
    "rejected") decides; when both are full, the later reset wins.
    """
    if not quota:
        return None
    now = time.time() if now is None else now
    full: list[float] = []
    known: list[float] = []
    for window in UNIFIED_WINDOWS:
        reset = quota.get(f"unified_{window}_reset")
        if not isinstance(reset, (int, float)) or reset <= now:
            continue
        known.append(float(reset))
        util = quota.get(f"unified_{window}_utilization")
        if isinstance(util, (int, float)) and util >= 1.0:
            full.append(float(reset))
    if full:
        return max(full)
    if known and quota.get("unified_status") == "rejected":
        return min(known)
    return None


def refine(err: UpstreamError, quota: dict[str, Any] | None = None) -> str:
    """The cause to record, using what the upstream's rate-limit headers add to its status code."""
    if err.cause == "rate_limit":
        if quota and quota.get("unified_status") == "rejected":
            return "quota"
        if err.retry_after is not None and err.retry_after > QUOTA_WALL_AFTER:
            return "quota"
    return err.cause


def cooldown_seconds(
    err: UpstreamError, failures: int, quota: dict[str, Any] | None = None, now: float | None = None
) -> float | None:
    """Seconds the account (or, for model-not-found, the model) should rest; ``None``: no cooldown.

    ``failures`` counts consecutive failures including this one. ``quota`` is what the failed
    response's rate-limit headers said (``read_quota``), if anything.
    """
    now = time.time() if now is None else now
    cause = refine(err, quota)
    if cause == "rate_limit":
        if err.retry_after is not None:
            return min(MAX_RETRY_AFTER, max(1.0, err.retry_after))
        reset_in = (quota or {}).get("reset_in")
        if isinstance(reset_in, (int, float)) and reset_in > 0:
            return min(MAX_RETRY_AFTER, max(1.0, float(reset_in)))
        return backoff(failures, *THROTTLE_BACKOFF)
    if cause == "quota":
        reset = quota_reset(quota, now)
        if reset is not None:
            return min(QUOTA_MAX, max(1.0, reset - now))
        if err.retry_after is not None:
            return min(QUOTA_MAX, max(1.0, err.retry_after))
        return QUOTA_DEFAULT
    if cause == "overloaded":
        if err.retry_after is not None:
            return min(SERVER_RETRY_AFTER_CAP, max(1.0, err.retry_after))
        return backoff(failures, *OVERLOAD_BACKOFF)
    if cause in ("server", "connection", "timeout"):
        if err.retry_after is not None:
            return min(SERVER_RETRY_AFTER_CAP, max(1.0, err.retry_after))
        return backoff(failures, *SERVER_BACKOFF)
    if cause == "model_not_found":
        return MODEL_MISSING
    return None
