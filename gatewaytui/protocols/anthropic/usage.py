"""Messages usage both ways, with the 5-minute/1-hour split of cache writes."""

from __future__ import annotations

from typing import Any

from ...model import Usage, UsageReader


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
    if not isinstance(u, dict) or not u:
        return UsageReader.unreadable(u or None)
    read = UsageReader()
    cc = read.section(u, "cache_creation")
    write_total = read.count(u, "cache_creation_input_tokens")
    w5 = read.count(cc, "ephemeral_5m_input_tokens")
    w1 = read.count(cc, "ephemeral_1h_input_tokens")
    if w5 + w1 != write_total:  # unsplit report: keep an earlier 1h share, the rest is 5-minute writes
        w1 = min(write_total, prev.cache_write_1h_tokens) if prev is not None and not cc else w1
        w5 = max(0, write_total - w1)
    details = read.section(u, "output_tokens_details")
    return Usage(
        input_tokens=read.count(u, "input_tokens"),
        output_tokens=read.count(u, "output_tokens"),
        cache_read_tokens=read.count(u, "cache_read_input_tokens"),
        cache_write_5m_tokens=w5,
        cache_write_1h_tokens=w1,
        reasoning_tokens=read.count(details, "thinking_tokens"),
        server_tool_uses=read.server_tools(u, "server_tool_use"),
        invalid=read.invalid,
    )
