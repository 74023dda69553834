"""Messages usage both ways, with the 5-minute/1-hour split of cache writes."""

from __future__ import annotations

from typing import Any

from ...model import Usage


def encode_usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
    }


def decode_usage(u: dict[str, Any] | None, prev: Usage | None = None) -> Usage:
    """Anthropic usage JSON -> Usage. ``prev`` (an earlier report in the same stream) resolves a later
    report that gives the cache-write total without its 5m/1h split."""
    if not u:
        return Usage()
    cc = u.get("cache_creation") or {}
    write_total = u.get("cache_creation_input_tokens") or 0
    w5 = cc.get("ephemeral_5m_input_tokens") or 0
    w1 = cc.get("ephemeral_1h_input_tokens") or 0
    if w5 + w1 != write_total:  # unsplit report: keep an earlier 1h share, the rest is 5-minute writes
        w1 = min(write_total, prev.cache_write_1h_tokens) if prev is not None and not cc else w1
        w5 = max(0, write_total - w1)
    details = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=u.get("input_tokens") or 0,
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=u.get("cache_read_input_tokens") or 0,
        cache_write_5m_tokens=w5,
        cache_write_1h_tokens=w1,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )
