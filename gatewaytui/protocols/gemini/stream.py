"""Internal stream events -> Gemini chunks: SSE ``data:`` frames, or elements of one streamed JSON array."""

from __future__ import annotations

from typing import Any

from ...codec import dumps
from ...model import (
    BlockStart,
    BlockStop,
    ChatRequest,
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StopReason,
    StreamError,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgsDelta,
    Usage,
)
from ..arguments import json_object
from .errors import encode_error
from .response import FINISH_BY_STOP, show_thoughts
from .signatures import carry_signature
from .spec import MINTED_ID_PREFIX, NAME
from .usage import encode_usage


class StreamEncoder:
    """Internal events -> Gemini chunks: SSE ``data:`` frames, or elements of one streamed JSON array."""

    def __init__(self, req: ChatRequest, request_id: str) -> None:
        self.req = req
        self.request_id = request_id
        self.sse = bool(req.extras.get("gemini_sse", True))
        self.show_thoughts = show_thoughts(req)
        self.model = req.model
        self.response_id = request_id
        self.usage = Usage()
        self.stop: StopReason | None = None
        self.opened = False  # the JSON array's "[" was sent
        self.done = False
        self.block: BlockStart | None = None
        self.buffer: list[str] = []  # tool-call arguments, or whether a thinking block had text
        self.signature: str | None = None

    def encode(self, ev: Event) -> bytes:
        if self.done:
            return b""
        if isinstance(ev, TextDelta):
            return self._chunk([{"text": ev.text}]) if ev.text else b""
        if isinstance(ev, ThinkingDelta):
            if not ev.text:
                return b""
            self.buffer.append(ev.text)
            return self._chunk([{"text": ev.text, "thought": True}]) if self.show_thoughts else b""
        if isinstance(ev, ToolArgsDelta):
            self.buffer.append(ev.partial_json)
            return b""
        if isinstance(ev, SignatureDelta):
            self.signature = (self.signature or "") + ev.signature
            return b""
        if isinstance(ev, BlockStart):
            self.block, self.buffer, self.signature = ev, [], ev.signature
            if ev.type == "opaque" and ev.family == NAME and ev.data:
                return self._chunk([ev.data])
            return b""
        if isinstance(ev, BlockStop):
            return self._block_stop()
        if isinstance(ev, MessageStart):
            self.model = ev.model or self.model
            self.response_id = ev.id or self.response_id
            self.usage.merge(ev.usage)
            return b""
        if isinstance(ev, MessageDelta):
            self.stop = ev.stop_reason
            self.usage.merge(ev.usage)
            return b""
        if isinstance(ev, MessageStop):
            self.done = True
            finish = FINISH_BY_STOP.get(self.stop or "end_turn", "STOP")
            return self._chunk([{"text": ""}], finish=finish, usage=encode_usage(self.usage))
        if isinstance(ev, StreamError):
            self.done = True
            return self._frame(
                encode_error(GatewayError(ev.kind, ev.message, status=ev.status), self.request_id)
            )
        return b""

    def _block_stop(self) -> bytes:
        block, self.block = self.block, None
        if block is None:
            return b""
        if block.type == "tool_call":
            raw = "".join(self.buffer)
            args = json_object(raw) if raw.strip() else {}
            if args is None:
                args = {"input": raw} if block.custom else {"raw": raw}
            call: dict[str, Any] = {"name": block.name or "", "args": args}
            if block.id and not block.id.startswith(MINTED_ID_PREFIX):
                call = {"id": block.id, **call}
            sig = self.signature if block.family in (None, NAME) else None
            return self._chunk([{"functionCall": call, **({"thoughtSignature": sig} if sig else {})}])
        if block.type == "thinking" and (self.signature or block.redacted):
            th = Thinking(
                "".join(self.buffer), signature=self.signature, redacted=block.redacted, family=block.family
            )
            sig = self.signature if block.family == NAME and self.signature else carry_signature(th)
            part: dict[str, Any] = {"text": "", "thoughtSignature": sig}
            if self.buffer and self.show_thoughts:
                part = {"text": "", "thought": True, "thoughtSignature": sig}
            return self._chunk([part])
        return b""

    def _chunk(
        self, parts: list[dict[str, Any]], *, finish: str | None = None, usage: dict[str, Any] | None = None
    ) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if usage:
            chunk["usageMetadata"] = usage
        chunk["modelVersion"] = self.model
        chunk["responseId"] = self.response_id
        return self._frame(chunk)

    def _frame(self, obj: dict[str, Any]) -> bytes:
        payload = dumps(obj)
        if self.sse:
            return b"data: " + payload + b"\r\n\r\n"
        head = b",\r\n" if self.opened else b"["
        self.opened = True
        return head + payload

    def keepalive(self) -> bytes:
        return b""  # google-genai cannot parse anything but data frames

    def finish(self) -> bytes:
        if self.sse:
            return b""
        tail = b"]" if self.opened else b"[]"
        self.opened = True
        return tail
