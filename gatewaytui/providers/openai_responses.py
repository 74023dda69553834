"""OpenAI Responses upstream (``POST /v1/responses``), for models that need the Responses API."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..codec import dumps_str, loads
from ..model import (
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
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
from ..protocols import openai_responses as wire
from . import openai
from .base import Credentials, UpstreamError, UpstreamRequest, classify_status, join_url
from .ratelimit import parse_duration as parse_duration  # part of this module's surface
from .ratelimit import read_windows
from .sse_parser import SSEStreamParser
from .upstream_request import bearer, json_post

NAME = "openai-responses"
WIRE = "openai_responses"
DEFAULT_BASE_URL = "https://api.openai.com"


def build_request(req: ChatRequest, upstream_model: str, creds: Credentials) -> UpstreamRequest:
    passthrough = req.protocol == WIRE and req.raw is not None
    if passthrough:
        body: dict[str, Any] = dict(req.raw or {})  # unknown fields are kept
        body["model"] = upstream_model
        if req.stream or "stream" in body:
            body["stream"] = req.stream
        _apply_overrides(body, req)
    else:
        body = wire.encode_request(req)
        body["model"] = upstream_model
    return json_post(
        join_url(creds.base_url, "/v1/responses"),
        body,
        req,
        creds,
        auth=bearer(creds.oauth_token or creds.api_key),
        passthrough=passthrough,
        headers=req.headers if passthrough else None,  # openai-beta, session_id, originator
    )


def _apply_overrides(body: dict[str, Any], req: ChatRequest) -> None:
    """Gateway-side changes to a passthrough body (presets prepend instructions, set defaults)."""
    preset = req.extras.get("preset_system")
    if preset:
        instructions = body.get("instructions")
        body["instructions"] = (
            f"{preset}\n\n{instructions}" if isinstance(instructions, str) and instructions else preset
        )
    for key, value in (req.extras.get("preset_defaults") or {}).items():
        body.setdefault(key, value)
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    _stateless(body)


def _stateless(body: dict[str, Any]) -> None:
    """The route keeps nothing upstream: ``store`` is sent false (OpenAI's default is true), and a
    reasoning item without ``encrypted_content`` (only a stored response could resolve it; OpenAI answers
    404 "Item with id 'rs_...' not found" without one) is left out of the input."""
    body["store"] = False
    items = body.get("input")
    if isinstance(items, list):
        body["input"] = [
            item
            for item in items
            if not (
                isinstance(item, dict)
                and item.get("type") == "reasoning"
                and not item.get("encrypted_content")
            )
        ]


def parse_response(body: bytes, req: ChatRequest) -> ChatResponse:
    return wire.decode_response(loads(body))


@dataclass(slots=True)
class _Item:
    """One upstream output item and the internal block it became (if any yet)."""

    kind: str
    output_index: int
    call_id: str | None = None
    name: str | None = None
    block: int | None = None
    emitted: dict[Any, str] = field(default_factory=dict)  # text sent so far, per content/summary part
    args: str = ""  # function arguments sent so far / custom input buffered
    pending: str = ""  # argument fragments that arrived before the call's name
    custom_input: str | None = None  # custom_tool_call input from .done
    sent: bool = False  # a custom call's whole input has been emitted
    finished: bool = False


class StreamParser(SSEStreamParser):
    """Responses SSE -> the internal event grammar.

    Upstreams differ in where they put things: arguments may come only as deltas, only in
    ``function_call_arguments.done``, or only in ``output_item.done`` (or even only in the final
    ``response.completed`` output). Every route is accepted and the complete value is emitted
    exactly once. A terminal event is required; ``[DONE]`` is not.
    """

    def __init__(self, req: ChatRequest | None = None) -> None:
        super().__init__()
        self.started = False
        self.terminal = False
        self.next_block = 0
        self.items: dict[int, _Item] = {}
        self.current: _Item | None = None
        self.saw_tool = False
        self.refused = False

    def _eof(self, out: list[Event]) -> None:
        if not self.terminal:
            self.terminal = True
            out.append(StreamError("api_error", "upstream stream closed before response.completed", 502))

    # -- frames

    def _frame(self, data: bytes, out: list[Event]) -> None:
        if self.terminal or not data or data.strip() == b"[DONE]":
            return
        try:
            obj = loads(data)
        except Exception:
            obj = None
        if not isinstance(obj, dict):
            self.terminal = True
            out.append(StreamError("api_error", "upstream sent malformed stream data", 502))
            return
        kind = obj.get("type")
        if kind == "error":
            self._fail(obj.get("error") if isinstance(obj.get("error"), dict) else obj, out)
            return
        response: dict[str, Any] = obj["response"] if isinstance(obj.get("response"), dict) else {}
        if not self.started:
            self.started = True
            out.append(MessageStart(id=response.get("id") or "", model=response.get("model") or ""))
        if kind in ("response.created", "response.in_progress", "response.queued"):
            return
        if kind == "response.failed":
            self._fail(response.get("error"), out)
        elif kind in ("response.completed", "response.incomplete"):
            self._complete(response, out)
        elif kind == "response.output_item.added":
            self._added(obj.get("output_index"), obj.get("item") or {}, out)
        elif kind == "response.output_item.done":
            self._done(obj.get("output_index"), obj.get("item") or {}, out)
        else:
            self._delta(kind, obj, out)

    def _fail(self, err: Any, out: list[Event]) -> None:
        self.terminal = True
        if not isinstance(err, dict):
            err = {"message": err} if isinstance(err, str) else {}
        kind, status = wire.error_kind(err.get("code"))
        out.append(StreamError(kind, err.get("message") or "upstream response failed", status))

    # -- items and blocks

    def _item(self, output_index: Any, kind: str, out: list[Event]) -> _Item:
        oi = (
            output_index
            if isinstance(output_index, int)
            else (self.current.output_index if self.current else 0)
        )
        item = self.items.get(oi)
        if item is None:
            item = self._added(oi, {"type": kind}, out)
        elif item is not self.current and not item.finished:
            self._close(out)
            self.current = item
        return item

    def _added(self, output_index: Any, data: dict[str, Any], out: list[Event]) -> _Item:
        self._close(out)
        oi = output_index if isinstance(output_index, int) else len(self.items)
        kind = data.get("type") or "message"
        item = _Item(kind=kind, output_index=oi, call_id=data.get("call_id"), name=data.get("name"))
        self.items[oi] = item
        self.current = item
        if kind == "function_call" and item.call_id and item.name:
            self._open(item, out)
        return item

    def _open(self, item: _Item, out: list[Event]) -> None:
        if item.block is not None:
            return
        self._close(out, keep=item)
        self.current = item
        item.block = self.next_block
        self.next_block += 1
        if item.kind in ("function_call", "custom_tool_call"):
            self.saw_tool = True
            out.append(
                BlockStart(
                    item.block,
                    "tool_call",
                    id=item.call_id or f"call_{item.output_index}",
                    name=item.name or "",
                    custom=item.kind == "custom_tool_call",
                )
            )
        elif item.kind == "reasoning":
            out.append(BlockStart(item.block, "thinking", family=wire.FAMILY))
        else:
            out.append(BlockStart(item.block, "text"))

    def _close(self, out: list[Event], keep: _Item | None = None) -> None:
        item = self.current
        if item is None or item is keep:
            return
        if item.kind == "custom_tool_call" and not item.sent:
            self._custom(item, item.custom_input if item.custom_input is not None else item.args, out)
        self._flush_pending(item, out)
        self.current = None
        if item.block is not None and not item.finished:
            out.append(BlockStop(item.block))
        item.finished = True

    def _text(self, item: _Item, key: Any, text: str, out: list[Event], *, whole: bool = False) -> None:
        """Send new text for one part of an item. ``whole`` texts repeat what deltas already sent."""
        if item.finished:
            return
        sent = item.emitted.get(key, "")
        if whole:
            if not text.startswith(sent) or len(text) == len(sent):
                return
            text = text[len(sent) :]
        if not text:
            return
        self._open(item, out)
        if item.kind == "reasoning" and key not in item.emitted and any(item.emitted.values()):
            out.append(ThinkingDelta(item.block or 0, "\n\n"))
        item.emitted[key] = sent + text
        if item.kind == "reasoning":
            out.append(ThinkingDelta(item.block or 0, text))
        else:
            out.append(TextDelta(item.block or 0, text))

    def _args(self, item: _Item, text: str, out: list[Event], *, whole: bool = False) -> None:
        if item.finished:
            return
        if item.block is None and not whole and not item.name:
            item.pending += text  # hold fragments until the call has a name to open with
            return
        self._flush_pending(item, out)
        if whole:
            if not text.startswith(item.args) or len(text) == len(item.args):
                return  # already sent (or a conflicting repeat: the streamed version stands)
            text = text[len(item.args) :]
        if not text:
            return
        self._open(item, out)
        item.args += text
        out.append(ToolArgsDelta(item.block or 0, text))

    def _flush_pending(self, item: _Item, out: list[Event]) -> None:
        if item.pending:
            text, item.pending = item.pending, ""
            self._open(item, out)
            item.args += text
            out.append(ToolArgsDelta(item.block or 0, text))

    def _custom(self, item: _Item, value: str, out: list[Event]) -> None:
        """A custom call's free-form input, sent whole in its internal JSON wrapping."""
        if item.sent or item.finished:
            return
        item.sent = True
        self._open(item, out)
        out.append(ToolArgsDelta(item.block or 0, dumps_str({"input": value})))

    def _delta(self, kind: Any, obj: dict[str, Any], out: list[Event]) -> None:
        oi = obj.get("output_index")
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            self.refused |= kind == "response.refusal.delta"
            self._text(
                self._item(oi, "message", out), obj.get("content_index", 0), obj.get("delta") or "", out
            )
        elif kind == "response.output_text.done":
            item = self._item(oi, "message", out)
            self._text(item, obj.get("content_index", 0), obj.get("text") or "", out, whole=True)
        elif kind == "response.refusal.done":
            self.refused = True
            item = self._item(oi, "message", out)
            self._text(item, obj.get("content_index", 0), obj.get("refusal") or "", out, whole=True)
        elif kind == "response.function_call_arguments.delta":
            self._args(self._item(oi, "function_call", out), obj.get("delta") or "", out)
        elif kind == "response.function_call_arguments.done":
            item = self._item(oi, "function_call", out)
            item.name = item.name or obj.get("name")
            self._args(item, obj.get("arguments") or "", out, whole=True)
        elif kind == "response.custom_tool_call_input.delta":
            self._item(oi, "custom_tool_call", out).args += obj.get("delta") or ""
        elif kind == "response.custom_tool_call_input.done":
            self._item(oi, "custom_tool_call", out).custom_input = obj.get("input")
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            part = "summary" if "summary" in kind else "content"
            index = obj.get("summary_index" if part == "summary" else "content_index", 0)
            self._text(self._item(oi, "reasoning", out), (part, index), obj.get("delta") or "", out)
        elif kind in ("response.reasoning_summary_text.done", "response.reasoning_text.done"):
            part = "summary" if "summary" in kind else "content"
            index = obj.get("summary_index" if part == "summary" else "content_index", 0)
            self._text(
                self._item(oi, "reasoning", out), (part, index), obj.get("text") or "", out, whole=True
            )
        # content_part.*, reasoning_summary_part.*, annotations, hosted-tool progress: nothing to add

    def _done(self, output_index: Any, data: dict[str, Any], out: list[Event]) -> None:
        """Finish an item from its final form, filling in whatever the deltas did not carry."""
        oi = output_index if isinstance(output_index, int) else None
        item = self.items.get(oi) if oi is not None else None
        if item is None:
            item = self._added(oi, data, out)
        elif item.finished:
            return
        elif item is not self.current:
            self._close(out)
            self.current = item
        kind = data.get("type") or item.kind
        if kind != item.kind and item.block is None:
            item.kind = kind
        item.call_id = item.call_id or data.get("call_id")
        item.name = item.name or data.get("name")
        if item.kind == "message":
            for ci, part in enumerate(data.get("content") or []):
                if isinstance(part, dict):
                    self.refused |= part.get("type") == "refusal"
                    self._text(item, ci, part.get("text") or part.get("refusal") or "", out, whole=True)
        elif item.kind == "function_call":
            self._open(item, out)
            self._args(item, data.get("arguments") or "", out, whole=True)
        elif item.kind == "custom_tool_call":
            value = data.get("input")
            if not isinstance(value, str):
                value = item.custom_input if item.custom_input is not None else item.args
            self._custom(item, value, out)
        elif item.kind == "reasoning":
            for si, s in enumerate(data.get("summary") or []):
                if isinstance(s, dict):
                    self._text(item, ("summary", si), s.get("text") or "", out, whole=True)
            encrypted = data.get("encrypted_content")
            if isinstance(encrypted, str) and encrypted:
                self._open(item, out)
                out.append(SignatureDelta(item.block or 0, encrypted))
        else:  # hosted tool calls and other items: whole, for a Responses client only
            self._close(out)
            block = self.next_block
            self.next_block += 1
            out.append(BlockStart(block, "opaque", data={"item": data}, family=wire.NAME))
            out.append(BlockStop(block))
            item.finished = True
            return
        self._close(out)

    def _complete(self, response: dict[str, Any], out: list[Event]) -> None:
        final = [i for i in response.get("output") or [] if isinstance(i, dict)]
        if self.current is not None and self.current.output_index < len(final):
            self._done(self.current.output_index, final[self.current.output_index], out)
        for oi, data in enumerate(final):  # items an upstream only reported in the final object
            if oi not in self.items:
                self._done(oi, data, out)
        self._close(out)
        self.terminal = True
        status = response.get("status")
        if status not in ("incomplete", "completed"):
            status = "completed"
        if status == "incomplete":
            stop = wire.stop_reason_for(status, response.get("incomplete_details"), [])
        elif self.saw_tool:
            stop = "tool_use"
        else:
            stop = "refusal" if self.refused else "end_turn"
        out.append(MessageDelta(stop, wire.decode_usage(response.get("usage"), response.get("output"))))
        out.append(MessageStop())


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    err = classify_status(status, headers, body)
    detail = err.body.get("error") if isinstance(err.body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    code, etype = detail.get("code"), detail.get("type")
    if "insufficient_quota" in (code, etype):
        err.cause = "quota"
    elif code == "model_not_found":
        err.cause = "model_not_found"
    elif status == 401 or code in openai.ACCOUNT_REFUSALS:
        err.cause = "auth"
    if status == 429 and err.retry_after is None:
        err.retry_after = (read_quota(headers) or {}).get("reset_in")
    return err


def read_quota(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` headers."""
    out, waits = read_windows(headers, time.time())
    if waits:
        out["reset_in"] = min(waits.values())  # the soonest window, exhausted or not
    return out or None
