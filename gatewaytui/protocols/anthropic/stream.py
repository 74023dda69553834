"""Internal stream events -> Anthropic SSE frames for a Messages client: message frames around
content-block frames, ``ping`` as the keepalive."""

from __future__ import annotations

from typing import Any

from ...codec import sse
from ...model import ChatRequest, Event, GatewayError, MessageDelta, MessageStart, MessageStop, StreamError
from ...model.events import BlockStart, BlockStop, SignatureDelta, TextDelta, ThinkingDelta, ToolArgsDelta
from ..base import carry
from .errors import encode_error
from .spec import NAME
from .usage import encode_usage


class StreamEncoder:
    """Internal events -> Anthropic SSE. The internal grammar mirrors Anthropic's, so this is direct."""

    def __init__(self, req: ChatRequest, request_id: str) -> None:
        self.req = req
        self.request_id = request_id
        self.families: dict[int, str | None] = {}

    def encode(self, ev: Event) -> bytes:
        if isinstance(ev, TextDelta):
            return sse(
                {
                    "type": "content_block_delta",
                    "index": ev.index,
                    "delta": {"type": "text_delta", "text": ev.text},
                },
                "content_block_delta",
            )
        if isinstance(ev, ToolArgsDelta):
            delta: dict[str, Any] = {"type": "input_json_delta", "partial_json": ev.partial_json}
            return sse(
                {"type": "content_block_delta", "index": ev.index, "delta": delta}, "content_block_delta"
            )
        if isinstance(ev, ThinkingDelta):
            delta = {"type": "thinking_delta", "thinking": ev.text}
            return sse(
                {"type": "content_block_delta", "index": ev.index, "delta": delta}, "content_block_delta"
            )
        if isinstance(ev, SignatureDelta):
            family = self.families.get(ev.index)
            signature = ev.signature if family in (None, NAME) else carry(family, ev.signature) or ""
            delta = {"type": "signature_delta", "signature": signature}
            return sse(
                {"type": "content_block_delta", "index": ev.index, "delta": delta}, "content_block_delta"
            )
        if isinstance(ev, BlockStart):
            self.families[ev.index] = ev.family
            if ev.type == "thinking" and ev.family not in (None, NAME) and ev.redacted is not None:
                block = {"type": "thinking", "thinking": "", "signature": ""}
                start = sse(
                    {"type": "content_block_start", "index": ev.index, "content_block": block},
                    "content_block_start",
                )
                sig = {"type": "signature_delta", "signature": carry(ev.family, None, ev.redacted)}
                return start + sse(
                    {"type": "content_block_delta", "index": ev.index, "delta": sig}, "content_block_delta"
                )
            return sse(
                {"type": "content_block_start", "index": ev.index, "content_block": self._block(ev)},
                "content_block_start",
            )
        if isinstance(ev, BlockStop):
            return sse({"type": "content_block_stop", "index": ev.index}, "content_block_stop")
        if isinstance(ev, MessageStart):
            message: dict[str, Any] = {
                "id": ev.id,
                "type": "message",
                "role": "assistant",
                "model": ev.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": encode_usage(ev.usage),
            }
            return sse({"type": "message_start", "message": message}, "message_start")
        if isinstance(ev, MessageDelta):
            usage = encode_usage(ev.usage)
            delta = {"stop_reason": ev.stop_reason or "end_turn", "stop_sequence": ev.stop_sequence}
            return sse({"type": "message_delta", "delta": delta, "usage": usage}, "message_delta")
        if isinstance(ev, MessageStop):
            return sse({"type": "message_stop"}, "message_stop")
        if isinstance(ev, StreamError):
            err = GatewayError(ev.kind, ev.message, status=ev.status)
            return sse(encode_error(err, self.request_id), "error")
        return b""

    def _block(self, ev: BlockStart) -> dict[str, Any]:
        if ev.type == "text":
            return {"type": "text", "text": ""}
        if ev.type == "tool_call":
            return {"type": "tool_use", "id": ev.id, "name": ev.name, "input": {}}
        if ev.type == "thinking":
            if ev.redacted is not None:
                return {"type": "redacted_thinking", "data": ev.redacted}
            return {"type": "thinking", "thinking": "", "signature": ""}
        return dict(ev.data or {})

    def keepalive(self) -> bytes:
        return b'event: ping\ndata: {"type":"ping"}\n\n'

    def finish(self) -> bytes:
        return b""
