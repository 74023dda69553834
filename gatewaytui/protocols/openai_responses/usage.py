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


# hosted tools OpenAI runs (and bills per call) inside a response, by output item type
HOSTED_TOOL_CALLS = {"web_search_call": "web_search", "code_interpreter_call": "code_execution"}


def decode_usage(u: dict[str, Any] | None, output: Any = None) -> Usage:
    """Responses usage -> internal; ``output`` (the response's items) gives the hosted-tool calls made."""
    if not isinstance(u, dict):
        return UsageReader.unreadable(u)
    uses: dict[str, int] = {}
    for item in output if isinstance(output, list) else ():
        kind = HOSTED_TOOL_CALLS.get(str(item.get("type"))) if isinstance(item, dict) else None
        if kind is not None:
            uses[kind] = uses.get(kind, 0) + 1
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
        server_tool_uses=uses,
        invalid=read.invalid,
    )
