"""Content parts of a message: the one vocabulary every protocol and provider maps to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(slots=True)
class Text:
    text: str
    cache_control: dict[str, Any] | None = None
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class Image:
    """An image given inline (base64 ``data``) or by ``url``."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    detail: str | None = None
    cache_control: dict[str, Any] | None = None
    kind: Literal["image"] = "image"


@dataclass(slots=True)
class Document:
    """A document (PDF or plain text) given inline, by URL, or as text."""

    media_type: str = "application/pdf"
    data: str | None = None
    url: str | None = None
    text: str | None = None
    title: str | None = None
    filename: str | None = None
    cache_control: dict[str, Any] | None = None
    kind: Literal["document"] = "document"


@dataclass(slots=True)
class ToolCall:
    """A call the model made. ``arguments`` is the parsed JSON object; ``raw_arguments`` the text."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    signature: str | None = None  # Gemini thoughtSignature carried with the call
    custom: bool = False  # an OpenAI Responses free-form (custom) tool call; input in arguments["input"]
    cache_control: dict[str, Any] | None = None
    kind: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image | Document] = field(default_factory=list)
    is_error: bool = False
    name: str | None = None
    cache_control: dict[str, Any] | None = None
    kind: Literal["tool_result"] = "tool_result"

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, Text))


@dataclass(slots=True)
class Thinking:
    """Reasoning. ``signature`` is opaque and only valid for the ``family`` that produced it."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None  # Anthropic redacted_thinking data
    family: str | None = None  # "anthropic", "openai", "gemini" — who can verify the signature
    kind: Literal["thinking"] = "thinking"


@dataclass(slots=True)
class Opaque:
    """A block only its own protocol family understands (server tools, citations...). Passed, not translated."""

    family: str
    data: dict[str, Any]
    kind: Literal["opaque"] = "opaque"


Part = Text | Image | Document | ToolCall | ToolResult | Thinking | Opaque
