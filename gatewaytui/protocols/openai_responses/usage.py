"""Responses usage both ways."""

from __future__ import annotations

from typing import Any

from ...model import Usage, UsageReader


def encode_usage(u: Usage) -> dict[str, Any]:
    """Responses usage: ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes reasoning."""
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def decode_usage(u: dict[str, Any] | None) -> Usage:
    if not isinstance(u, dict):
        return UsageReader.unreadable(u)
    read = UsageReader()
    details = read.section(u, "input_tokens_details")
    cached = read.count(details, "cached_tokens")
    written = read.count(details, "cache_write_tokens")
    return Usage(
        input_tokens=max(0, read.count(u, "input_tokens") - cached - written),
        output_tokens=read.count(u, "output_tokens"),
        cache_read_tokens=cached,
        cache_write_5m_tokens=written,
        reasoning_tokens=read.count(read.section(u, "output_tokens_details"), "reasoning_tokens"),
        invalid=read.invalid,
    )
