"""The internal chat request every client protocol decodes into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .content import Part, Text

Role = Literal["user", "assistant", "system"]
ToolChoiceMode = Literal["auto", "any", "none", "tool"]


@dataclass(slots=True)
class Message:
    """One turn. A ``system`` turn is an instruction given mid-conversation (Chat/Responses system or
    developer messages after the first turn, Anthropic's mid-conversation ``role: system``); it holds text.
    Instructions given before the conversation live in ``ChatRequest.system``."""

    role: Role
    content: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    custom: bool = False  # free-form input tool (OpenAI Responses "custom"); schema is one string "input"
    cache_control: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None  # provider-native tool (e.g. Anthropic server tools) kept as given


@dataclass(slots=True)
class ToolChoice:
    mode: ToolChoiceMode = "auto"
    name: str | None = None
    parallel: bool | None = None  # False = disable parallel tool use


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class ThinkingConfig:
    enabled: bool = True
    budget_tokens: int | None = None
    effort: str | None = None  # low / medium / high ...
    adaptive: bool = False
    include: bool = True  # return reasoning summaries to the client


@dataclass(slots=True)
class ChatRequest:
    """One chat request in gateway terms, whatever protocol it arrived in.

    ``protocol`` names the client protocol; ``raw`` keeps the original body so a same-family
    upstream can receive it untouched (passthrough, unknown fields kept).
    """

    model: str
    messages: list[Message] = field(default_factory=list)
    system: list[Text] = field(default_factory=list)
    max_tokens: int | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    thinking: ThinkingConfig | None = None
    user_id: str | None = None
    protocol: str = "anthropic"
    raw: dict[str, Any] | None = None
    headers: dict[str, str] = field(
        default_factory=dict
    )  # protocol headers worth forwarding (anthropic-beta)
    include_usage: bool = False  # OpenAI chat stream_options.include_usage
    extras: dict[str, Any] = field(default_factory=dict)  # protocol specific knobs (seed, penalties, ...)

    def system_text(self) -> str:
        return "\n\n".join(t.text for t in self.system if t.text)

    def folded_system(self) -> list[Text]:
        """Every instruction for a wire with one system slot: the leading system, then each
        mid-conversation system turn's text, in order."""
        mid = [p for m in self.messages if m.role == "system" for p in m.content if isinstance(p, Text)]
        return [*self.system, *mid]

    def turns(self) -> list[Message]:
        """The user and assistant turns (mid-conversation system turns left out, see ``folded_system``)."""
        return [m for m in self.messages if m.role != "system"]
