"""Internal stream events -> Responses SSE: created, in_progress, one item per block, one terminal event."""

from __future__ import annotations

import time
from typing import Any

from ...codec import sse
from ...model import (
    BlockStart,
    BlockStop,
    ChatRequest,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamError,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCall,
    Usage,
)
from ..arguments import arguments_object
from .errors import error_code
from .items import call_item
from .response import message_item, output_item_id, reasoning_item, response_id, response_object, status_for
from .spec import NAME


class StreamEncoder:
    """Internal events -> Responses SSE: created, in_progress, one item per block, one terminal event."""

    def __init__(self, req: ChatRequest, request_id: str) -> None:
        self.req = req
        self.request_id = request_id
        self.seq = 0
        self.resp_id = response_id(request_id)
        self.model = req.model
        self.created_at = int(time.time())
        self.output: list[dict[str, Any]] = []  # finished items, in output_index order
        self.block: dict[str, Any] | None = None  # the open block's state
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.started = False
        self.done = False

    # -- framing

    def _event(self, kind: str, **fields: Any) -> bytes:
        frame = sse({"type": kind, "sequence_number": self.seq, **fields}, kind)
        self.seq += 1
        return frame

    def _response(self, status: str, *, usage: Usage | None, **extra: Any) -> dict[str, Any]:
        return response_object(
            self.req,
            resp_id=self.resp_id,
            model=self.model,
            created_at=self.created_at,
            status=status,
            output=list(self.output),
            usage=usage,
            **extra,
        )

    def _start(self, ev: MessageStart | None = None) -> bytes:
        self.started = True
        if ev is not None:
            if ev.id:
                self.resp_id = response_id(ev.id)
            self.model = ev.model or self.model
            self.usage.merge(ev.usage)
        response = self._response("in_progress", usage=None)
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    # -- events

    def encode(self, ev: Event) -> bytes:
        if self.done:
            return b""
        if isinstance(ev, MessageStart):
            return b"" if self.started else self._start(ev)
        out = b"" if self.started else self._start()
        if isinstance(ev, BlockStart):
            out += self._close() + self._open(ev)
        elif isinstance(ev, (TextDelta, ToolArgsDelta, ThinkingDelta, SignatureDelta)):
            out += self._delta(ev)
        elif isinstance(ev, BlockStop):
            if self.block is not None and self.block["index"] == ev.index:
                out += self._close()
        elif isinstance(ev, MessageDelta):
            self.stop_reason = ev.stop_reason or self.stop_reason
            self.usage.merge(ev.usage)
        elif isinstance(ev, MessageStop):
            out += self._close() + self._terminal()
        elif isinstance(ev, StreamError):
            out += self._failed(ev.kind, ev.message)
        return out

    def _open(self, ev: BlockStart) -> bytes:
        oi = len(self.output)
        b: dict[str, Any] = {"index": ev.index, "type": ev.type, "oi": oi, "text": [], "sig": ev.signature}
        self.block = b
        if ev.type == "text":
            b["id"] = output_item_id("msg", self.resp_id, oi)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            return self._event(
                "response.output_item.added", output_index=oi, item=message_item(b["id"], [], "in_progress")
            ) + self._event(
                "response.content_part.added", item_id=b["id"], output_index=oi, content_index=0, part=part
            )
        if ev.type == "tool_call":
            b.update(call_id=ev.id or "", name=ev.name or "", custom=ev.custom)
            if ev.custom:
                b["id"] = output_item_id("ctc", self.resp_id, oi)
                item = {
                    "type": "custom_tool_call",
                    "id": b["id"],
                    "call_id": ev.id,
                    "name": ev.name,
                    "input": "",
                }
            else:
                b["id"] = output_item_id("fc", self.resp_id, oi)
                item = {
                    "type": "function_call",
                    "id": b["id"],
                    "call_id": ev.id,
                    "name": ev.name,
                    "arguments": "",
                    "status": "in_progress",
                }
            return self._event("response.output_item.added", output_index=oi, item=item)
        if ev.type == "thinking":
            b.update(
                id=output_item_id("rs", self.resp_id, oi), family=ev.family, redacted=ev.redacted, part=False
            )
            item = {"type": "reasoning", "id": b["id"], "summary": []}
            return self._event("response.output_item.added", output_index=oi, item=item)
        # opaque: only our own family's items have a Responses form
        data = ev.data or {}
        if ev.family == NAME and isinstance(data.get("item"), dict):
            b["item"] = data["item"]
            return self._event("response.output_item.added", output_index=oi, item=data["item"])
        self.block = {"index": ev.index, "type": "skip"}
        return b""

    def _delta(self, ev: TextDelta | ToolArgsDelta | ThinkingDelta | SignatureDelta) -> bytes:
        b = self.block
        if b is None or b["index"] != ev.index:
            return b""
        if isinstance(ev, TextDelta) and b["type"] == "text":
            b["text"].append(ev.text)
            return self._event(
                "response.output_text.delta",
                item_id=b["id"],
                output_index=b["oi"],
                content_index=0,
                delta=ev.text,
                logprobs=[],
            )
        if isinstance(ev, ToolArgsDelta) and b["type"] == "tool_call":
            b["text"].append(ev.partial_json)
            if b["custom"] or not ev.partial_json:
                return b""  # custom input is JSON-wrapped internally: unwrapped and sent whole at the end
            return self._event(
                "response.function_call_arguments.delta",
                item_id=b["id"],
                output_index=b["oi"],
                delta=ev.partial_json,
            )
        if isinstance(ev, ThinkingDelta) and b["type"] == "thinking":
            if not ev.text:
                return b""
            out = b""
            if not b["part"]:
                b["part"] = True
                out = self._event(
                    "response.reasoning_summary_part.added",
                    item_id=b["id"],
                    output_index=b["oi"],
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            b["text"].append(ev.text)
            return out + self._event(
                "response.reasoning_summary_text.delta",
                item_id=b["id"],
                output_index=b["oi"],
                summary_index=0,
                delta=ev.text,
            )
        if isinstance(ev, SignatureDelta) and b["type"] == "thinking":
            b["sig"] = (b["sig"] or "") + ev.signature
        return b""

    def _close(self) -> bytes:
        b, self.block = self.block, None
        if b is None or b["type"] == "skip":
            return b""
        oi, text = b["oi"], "".join(b["text"])
        out = b""
        if b["type"] == "text":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out += self._event(
                "response.output_text.done",
                item_id=b["id"],
                output_index=oi,
                content_index=0,
                text=text,
                logprobs=[],
            )
            out += self._event(
                "response.content_part.done", item_id=b["id"], output_index=oi, content_index=0, part=part
            )
            item = message_item(b["id"], [text])
        elif b["type"] == "tool_call":
            call = ToolCall(id=b["call_id"], name=b["name"], custom=b["custom"])
            if b["custom"]:
                call.arguments = arguments_object(text)
                item = call_item(call, b["id"])
                if item["input"]:
                    out += self._event(
                        "response.custom_tool_call_input.delta",
                        item_id=b["id"],
                        output_index=oi,
                        delta=item["input"],
                    )
                out += self._event(
                    "response.custom_tool_call_input.done",
                    item_id=b["id"],
                    output_index=oi,
                    input=item["input"],
                )
            else:
                call.raw_arguments = text or "{}"
                item = call_item(call, b["id"])
                out += self._event(
                    "response.function_call_arguments.done",
                    item_id=b["id"],
                    output_index=oi,
                    arguments=item["arguments"],
                    name=b["name"],
                )
        elif b["type"] == "thinking":
            if b["part"]:
                part = {"type": "summary_text", "text": text}
                out += self._event(
                    "response.reasoning_summary_text.done",
                    item_id=b["id"],
                    output_index=oi,
                    summary_index=0,
                    text=text,
                )
                out += self._event(
                    "response.reasoning_summary_part.done",
                    item_id=b["id"],
                    output_index=oi,
                    summary_index=0,
                    part=part,
                )
            thinking = Thinking(text=text, signature=b["sig"], redacted=b["redacted"], family=b["family"])
            item = reasoning_item(b["id"], thinking)
        else:
            item = b["item"]
        self.output.append(item)
        return out + self._event("response.output_item.done", output_index=oi, item=item)

    def _terminal(self) -> bytes:
        self.done = True
        status, incomplete = status_for(self.stop_reason)
        response = self._response(status, usage=self.usage, incomplete=incomplete)
        return self._event(f"response.{status}", response=response)

    def _failed(self, kind: str, message: str) -> bytes:
        self.block = None  # a half-built item is not reported
        self.done = True
        error = {"code": error_code(kind, message) or "server_error", "message": message}
        return self._event(
            "response.failed", response=self._response("failed", usage=self.usage, error=error)
        )

    def keepalive(self) -> bytes:
        return b": keepalive\n\n"

    def finish(self) -> bytes:
        """Whatever happened upstream, the client gets a terminal event."""
        if self.done:
            return b""
        out = b"" if self.started else self._start()
        return out + self._failed("api_error", "the upstream stream ended before the response completed")
