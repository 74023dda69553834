"""Chat usage both ways: ``prompt_tokens`` counts cached and cache-written tokens too."""

from __future__ import annotations

from typing import Any

from ...model import Usage, UsageReader


def encode_usage(u: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        prompt_details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def decode_usage(u: dict[str, Any] | None) -> Usage:
    """Chat usage -> internal: ``prompt_tokens`` includes cached and cache-written tokens."""
    if not isinstance(u, dict):
        return UsageReader.unreadable(u)
    read = UsageReader()
    prompt = read.count(u, "prompt_tokens")
    details = read.section(u, "prompt_tokens_details")
    cached = read.count(details, "cached_tokens")
    if not cached:
        cached = read.count(u, "prompt_cache_hit_tokens")  # DeepSeek
    written = read.count(details, "cache_write_tokens")
    completion = read.section(u, "completion_tokens_details")
    return Usage(
        input_tokens=max(0, prompt - cached - written),
        output_tokens=read.count(u, "completion_tokens"),
        cache_read_tokens=cached,
        cache_write_5m_tokens=written,
        reasoning_tokens=read.count(completion, "reasoning_tokens"),
        invalid=read.invalid,
    )
