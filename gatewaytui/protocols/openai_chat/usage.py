"""Chat usage both ways: ``prompt_tokens`` counts cached and cache-written tokens too."""

from __future__ import annotations

from typing import Any

from ...model import Usage


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
        return Usage()
    prompt = _int(u.get("prompt_tokens"))
    details = u.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    if not cached:
        cached = _int(u.get("prompt_cache_hit_tokens"))  # DeepSeek
    written = _int(details.get("cache_write_tokens")) if isinstance(details, dict) else 0
    completion = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=max(0, prompt - cached - written),
        output_tokens=_int(u.get("completion_tokens")),
        cache_read_tokens=cached,
        cache_write_5m_tokens=written,
        reasoning_tokens=_int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
