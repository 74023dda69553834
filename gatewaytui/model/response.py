"""The internal result of a chat request and its token usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "reasoning_tokens",
        ):
            value = getattr(other, name)
            if value:
                setattr(self, name, value)


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    content: list[Part] = field(default_factory=list)
    stop_reason: StopReason = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
