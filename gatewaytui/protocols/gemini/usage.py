"""Gemini usageMetadata both ways."""

from __future__ import annotations

from typing import Any

from ...model import Usage, UsageReader


def decode_usage(u: dict[str, Any] | None) -> Usage:
    """Gemini usageMetadata: the prompt count includes cached tokens; thoughts are outside candidates."""
    if not isinstance(u, dict):
        return UsageReader.unreadable(u)
    read = UsageReader()
    prompt = read.count(u, "promptTokenCount") + read.count(u, "toolUsePromptTokenCount")
    cached = min(read.count(u, "cachedContentTokenCount"), prompt)
    thoughts = read.count(u, "thoughtsTokenCount")
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=read.count(u, "candidatesTokenCount") + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
        invalid=read.invalid,
    )


def encode_usage(u: Usage) -> dict[str, Any]:
    out = {
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
        "totalTokenCount": u.total_tokens,
    }
    if u.cache_read_tokens:
        out["cachedContentTokenCount"] = u.cache_read_tokens
    if u.reasoning_tokens:
        out["thoughtsTokenCount"] = u.reasoning_tokens
    return out
