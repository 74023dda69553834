"""OpenAI's rate-limit headers, ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, as the Chat
and Responses providers both read them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str) -> float | None:
    """A reset duration such as ``6m0s``, ``1.5s``, ``20ms``, ``1h2m``; a bare number is seconds."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def read_windows(headers: Mapping[str, str], now: float) -> tuple[dict[str, Any], dict[str, float]]:
    """The counts and reset times (epoch seconds) of the ``requests`` and ``tokens`` windows, as
    ``{requests_limit, requests_remaining, requests_reset, tokens_...}``, and each window's wait in
    seconds until it resets."""
    out: dict[str, Any] = {}
    waits: dict[str, float] = {}
    for kind in ("requests", "tokens"):
        for part in ("limit", "remaining"):
            value = headers.get(f"x-ratelimit-{part}-{kind}")
            if value is not None and value.strip().isdigit():
                out[f"{kind}_{part}"] = int(value)
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = parse_duration(reset) if reset else None
        if seconds is not None:
            waits[kind] = seconds
            out[f"{kind}_reset"] = now + seconds
    return out, waits
