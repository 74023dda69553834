"""How long an account rests after a failure, by cause."""

from __future__ import annotations

from ..providers.base import UpstreamError

MAX_RETRY_AFTER = 3600.0  # cap on an upstream's retry-after
QUOTA_DEFAULT = 3600.0  # a quota wall without a reset time
MODEL_MISSING = 3600.0  # model-not-found cools that model on that account


def cooldown_seconds(err: UpstreamError, failures: int) -> float | None:
    """Seconds the account (or model) should rest; ``None`` means no cooldown (the client's fault).

    ``failures`` counts consecutive failures including this one, for exponential backoff.
    """
    backoff = min(2.0 ** max(0, failures - 1), 64.0)
    if err.cause == "rate_limit":
        if err.retry_after is not None:
            return min(MAX_RETRY_AFTER, max(1.0, err.retry_after))
        return min(60.0, 1.0 * backoff)
    if err.cause == "quota":
        return min(6 * 3600.0, err.retry_after if err.retry_after else QUOTA_DEFAULT)
    if err.cause in ("overloaded", "server", "connection", "timeout"):
        if err.retry_after is not None:
            return min(300.0, max(1.0, err.retry_after))
        return min(120.0, 5.0 * backoff)
    if err.cause == "model_not_found":
        return MODEL_MISSING
    return None
