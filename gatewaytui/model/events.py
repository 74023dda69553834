"""Stream events: the internal vocabulary of a streamed answer.

Providers turn upstream bytes into these; protocols turn these into client bytes. The sequence
always follows one grammar, whatever the upstream did:

    MessageStart (BlockStart Delta* BlockStop)* MessageDelta MessageStop

with block indices 0, 1, 2 ... in start order and one block open at a time. ``StreamError`` may
appear anywhere and ends the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .response import StopReason, Usage

BlockKind = Literal["text", "tool_call", "thinking", "opaque"]


@dataclass(slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class BlockStart:
    index: int
    type: BlockKind
    id: str | None = None  # tool call id
    name: str | None = None  # tool name
    custom: bool = False  # free-form custom tool call
    signature: str | None = None  # thinking signature or Gemini thought signature known up front
    redacted: str | None = None  # redacted thinking data (arrives whole)
    data: dict[str, Any] | None = None  # an opaque block, whole
    family: str | None = None


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ToolArgsDelta:
    index: int
    partial_json: str


@dataclass(slots=True)
class ThinkingDelta:
    index: int
    text: str


@dataclass(slots=True)
class SignatureDelta:
    index: int
    signature: str


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class MessageDelta:
    stop_reason: StopReason | None
    usage: Usage
    stop_sequence: str | None = None


@dataclass(slots=True)
class MessageStop:
    pass


@dataclass(slots=True)
class StreamError:
    """The stream failed after it began: reported in-band in the client's protocol."""

    kind: str
    message: str
    status: int = 500


Event = (
    MessageStart
    | BlockStart
    | TextDelta
    | ToolArgsDelta
    | ThinkingDelta
    | SignatureDelta
    | BlockStop
    | MessageDelta
    | MessageStop
    | StreamError
)
