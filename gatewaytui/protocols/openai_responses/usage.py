"""Responses usage both ways."""

from __future__ import annotations

from typing import Any

from ...model import Usage


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
        return Usage()
    details = u.get("input_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    return Usage(
        input_tokens=max(0, (u.get("input_tokens") or 0) - cached - written),
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=cached,
        cache_write_5m_tokens=written,
        reasoning_tokens=(u.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
    )
