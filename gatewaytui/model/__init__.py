"""The internal representation: one request, one response, one stream grammar."""

from .content import Document, Image, Opaque, Part, Text, Thinking, ToolCall, ToolResult
from .errors import STATUS_BY_KIND, GatewayError, kind_for_status
from .events import (
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from .request import ChatRequest, Message, ResponseFormat, ThinkingConfig, Tool, ToolChoice, ToolChoiceMode
from .response import ChatResponse, StopReason, Usage, UsageReader

__all__ = [
    "STATUS_BY_KIND",
    "BlockStart",
    "BlockStop",
    "ChatRequest",
    "ChatResponse",
    "Document",
    "Event",
    "GatewayError",
    "Image",
    "Message",
    "MessageDelta",
    "MessageStart",
    "MessageStop",
    "Opaque",
    "Part",
    "ResponseFormat",
    "SignatureDelta",
    "StopReason",
    "StreamError",
    "Text",
    "TextDelta",
    "Thinking",
    "ThinkingConfig",
    "ThinkingDelta",
    "Tool",
    "ToolArgsDelta",
    "ToolCall",
    "ToolChoice",
    "ToolChoiceMode",
    "ToolResult",
    "Usage",
    "UsageReader",
    "kind_for_status",
]
