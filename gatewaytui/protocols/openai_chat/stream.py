"""Internal stream events -> ``chat.completion.chunk`` SSE frames for a Chat client."""

from __future__ import annotations

import time
from typing import Any

from ...codec import sse
from ...model import (
    BlockStart,
    ChatRequest,
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    StopReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Usage,
)
from .errors import encode_error
from .response import chat_id, finish_reason, wants_reasoning
from .usage import encode_usage


class StreamEncoder:
    """Internal events -> ``chat.completion.chunk`` SSE frames, ending with ``data: [DONE]``."""

    def __init__(self, req: ChatRequest, request_id: str) -> None:
        self.req = req
        self.request_id = request_id
        self.id = chat_id(None, request_id)
        self.model = req.model
        self.created = int(time.time())
        self.role_sent = False
        self.tool_slots: dict[int, int] = {}  # internal block index -> Chat tool_calls index
        self.args_sent: dict[int, bool] = {}
        self.usage: Usage | None = None
        self.finished = False
        self.closed = False
        self.reasoning = wants_reasoning(req)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if not self.role_sent:
            delta = {"role": "assistant", **delta}
            self.role_sent = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [choice],
            }
        )

    def encode(self, ev: Event) -> bytes:
        if self.closed:
            return b""
        if isinstance(ev, TextDelta):
            return self._chunk({"content": ev.text}) if ev.text else b""
        if isinstance(ev, ToolArgsDelta):
            slot = self.tool_slots.get(ev.index)
            if slot is None or not ev.partial_json:
                return b""
            self.args_sent[slot] = True
            return self._chunk({"tool_calls": [{"index": slot, "function": {"arguments": ev.partial_json}}]})
        if isinstance(ev, ThinkingDelta):
            return self._chunk({"reasoning_content": ev.text}) if ev.text and self.reasoning else b""
        if isinstance(ev, BlockStart):
            if ev.type != "tool_call":
                return b""
            slot = len(self.tool_slots)
            self.tool_slots[ev.index] = slot
            call = {
                "index": slot,
                "id": ev.id or f"call_{slot}",
                "type": "function",
                "function": {"name": ev.name or "", "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if isinstance(ev, MessageStart):
            self.id = chat_id(ev.id, self.request_id)
            self.model = ev.model or self.req.model
            return self._chunk({"content": ""})
        if isinstance(ev, MessageDelta):
            return self._finish(ev.stop_reason, ev.usage)
        if isinstance(ev, MessageStop):
            out = b"" if self.finished else self._finish("end_turn", Usage())
            if self.req.include_usage:
                usage = encode_usage(self.usage or Usage())
                out += sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            self.closed = True
            return out + b"data: [DONE]\n\n"
        if isinstance(ev, StreamError):
            self.closed = True
            return sse(encode_error(GatewayError(ev.kind, ev.message, status=ev.status), self.request_id))
        return b""  # BlockStop, SignatureDelta: nothing to say on this wire

    def _finish(self, stop: StopReason | None, usage: Usage) -> bytes:
        self.usage = usage
        if self.finished:
            return b""
        self.finished = True
        out = b""
        for slot in self.tool_slots.values():
            if not self.args_sent.get(slot):  # a call with no argument text still needs "{}"
                out += self._chunk({"tool_calls": [{"index": slot, "function": {"arguments": "{}"}}]})
        return out + self._chunk({}, finish_reason(stop, bool(self.tool_slots)))

    def keepalive(self) -> bytes:
        return b": ping\n\n"

    def finish(self) -> bytes:
        return b""
