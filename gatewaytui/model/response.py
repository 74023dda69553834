"""The internal result of a chat request and its token usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .content import Part

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


@dataclass(slots=True)
class Usage:
    """Token usage in Anthropic's convention: ``input_tokens`` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    # server tools the upstream ran, by kind ("web_search": 3): billed per use
    server_tool_uses: dict[str, int] = field(default_factory=dict)
    invalid: str | None = None  # the upstream's report was not non-negative integers: what was wrong

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens, cached or not (OpenAI's and Gemini's ``prompt`` count)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def merge(self, other: Usage) -> None:
        """Overwrite with the non-zero fields of a later, cumulative usage report."""
        for name in COUNTS:
            value = getattr(other, name)
            if value:
                setattr(self, name, value)
        for kind, uses in other.server_tool_uses.items():
            if uses:
                self.server_tool_uses[kind] = uses
        self.invalid = self.invalid or other.invalid

    def copy(self) -> Usage:
        counts = {name: getattr(self, name) for name in COUNTS}
        return Usage(**counts, server_tool_uses=dict(self.server_tool_uses), invalid=self.invalid)


COUNTS = tuple(f for f in Usage.__dataclass_fields__ if f.endswith("_tokens"))  # the token counts


class UsageReader:
    """Reads an upstream's usage report strictly: every count must be a non-negative integer.

    Anything else (a string, a float, a negative number, a boolean) is read as 0 and noted; the ``Usage``
    built from the report then carries ``invalid`` and settlement bills the request's hold instead of it.
    """

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def count(self, obj: Any, key: str) -> int:
        value = obj.get(key) if isinstance(obj, dict) else None
        if value is None:
            return 0
        if type(value) is int and value >= 0:
            return value
        self.problems.append(f"{key}={value!r:.40}")
        return 0

    def section(self, obj: Any, key: str) -> dict[str, Any]:
        """A nested object of the report ({} when absent; noted when it is not an object)."""
        value = obj.get(key) if isinstance(obj, dict) else None
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self.problems.append(f"{key}={value!r:.40}")
        return {}

    def server_tools(self, obj: Any, key: str) -> dict[str, int]:
        """``{"web_search_requests": 2, ...}`` -> ``{"web_search": 2}`` (Anthropic's ``server_tool_use``)."""
        section = self.section(obj, key)
        return {
            name.removesuffix("_requests"): self.count(section, name)
            for name in section
            if name.endswith("_requests")
        }

    @staticmethod
    def unreadable(report: Any) -> Usage:
        """The usage of a report that is not an object: none when absent, else invalid."""
        return Usage() if report is None else Usage(invalid=f"usage={report!r:.40}")

    @property
    def invalid(self) -> str | None:
        return ", ".join(self.problems)[:300] if self.problems else None


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    content: list[Part] = field(default_factory=list)
    stop_reason: StopReason = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
