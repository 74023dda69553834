"""OpenAI Chat Completions upstream; also the engine behind OpenRouter and OpenAI-compatible servers.

The modules ``openrouter`` and ``openai_compatible`` reuse everything here and only pass a
different ``Flavor`` (the few knobs in which those servers differ from api.openai.com).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..codec import dumps_str, loads
from ..model import (
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCall,
    Usage,
)
from ..protocols import openai_chat as wire
from ..protocols.arguments import json_object
from ..protocols.reasoning import fit_budget
from .base import Credentials, UpstreamError, UpstreamRequest, classify_status
from .ratelimit import parse_duration as parse_duration  # part of this module's surface
from .ratelimit import read_windows
from .sse_parser import SSEStreamParser
from .upstream_request import bearer, json_post

NAME = "openai"
WIRE = "openai_chat"
DEFAULT_BASE_URL = "https://api.openai.com"

# Models that reason: they reject temperature/top_p other than the default; the others reject
# reasoning_effort. Matched by prefix of the upstream model id ("gpt-5-chat" does not reason).
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "codex")
NON_REASONING_MODELS = ("gpt-5-chat",)


@dataclass(frozen=True, slots=True)
class Flavor:
    """How one OpenAI-style server differs when the gateway translates a request for it."""

    max_tokens_field: str = "max_completion_tokens"
    reasoning_history: str | None = None  # assistant field that carries reasoning back, if any
    reasoning_object: bool = False  # OpenRouter's {"reasoning": {effort|max_tokens, exclude}}
    model_rules: bool = True  # apply the REASONING_MODELS parameter rules
    mid_system: bool = True  # system messages may follow other turns (else folded into the first one)


FLAVOR = Flavor()


def chat_url(base_url: str) -> str:
    """``/chat/completions`` under the base URL, adding ``/v1`` unless the URL names a version."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if re.search(r"/v\d+[a-z0-9]*(/|$)", urlsplit(base).path):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def build_request(
    req: ChatRequest, upstream_model: str, creds: Credentials, flavor: Flavor = FLAVOR
) -> UpstreamRequest:
    if not creds.base_url:
        raise GatewayError("api_error", "this upstream account has no base_url configured")
    passthrough = req.protocol == WIRE and req.raw is not None
    if passthrough:
        body: dict[str, Any] = dict(req.raw or {})
        body["model"] = upstream_model
        _apply_overrides(body, req, flavor.max_tokens_field)
    else:
        body = wire.encode_request(
            req,
            max_tokens_field=flavor.max_tokens_field,
            reasoning_history=flavor.reasoning_history,
            mid_system=flavor.mid_system,
        )
        body["model"] = upstream_model
        if flavor.reasoning_object:
            _reasoning_object(body, req)
        elif flavor.model_rules:
            _model_rules(body, upstream_model)
    if req.stream:
        body["stream"] = True
        # Always ask for the usage chunk so the gateway can meter; whether the *client* sees it
        # is decided by its own include_usage (req.include_usage) in the protocol encoder.
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    auth = bearer(creds.api_key or creds.oauth_token)
    return json_post(chat_url(creds.base_url), body, req, creds, auth=auth, passthrough=passthrough)


def _apply_overrides(body: dict[str, Any], req: ChatRequest, max_tokens_field: str) -> None:
    """Gateway-side changes to a passthrough body (presets prepend a system prompt, set defaults, and the
    output ceiling the credit hold was computed for is always sent, also when the client sent none)."""
    preset = req.extras.get("preset_system")
    if preset and isinstance(body.get("messages"), list):
        body["messages"] = [{"role": "system", "content": preset}, *body["messages"]]
    for key, value in (req.extras.get("preset_defaults") or {}).items():
        body.setdefault(key, value)
    if req.max_tokens is not None:
        present: list[str] = [k for k in ("max_completion_tokens", "max_tokens") if k in body]
        for key in present or [max_tokens_field]:
            body[key] = req.max_tokens


def is_reasoning_model(model: str) -> bool:
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(REASONING_MODELS) and not name.startswith(NON_REASONING_MODELS)


def _model_rules(body: dict[str, Any], model: str) -> None:
    if is_reasoning_model(model):
        body.pop("temperature", None)  # "Only the default (1) value is supported"
        body.pop("top_p", None)
    else:
        body.pop("reasoning_effort", None)  # "Unrecognized request argument" on non-reasoning models


def _reasoning_object(body: dict[str, Any], req: ChatRequest) -> None:
    effort = body.pop("reasoning_effort", None)
    th = req.thinking
    if th is None:
        return
    if not th.enabled:
        body["reasoning"] = {"enabled": False}
        return
    spec: dict[str, Any] = {}
    if th.effort:
        spec["effort"] = effort
    elif th.budget_tokens and th.budget_tokens > 0:
        # inside the output ceiling, room left for the answer (reasoning.fit_budget)
        fitted = fit_budget(th.budget_tokens, req.max_tokens, 1) if req.max_tokens else th.budget_tokens
        if fitted is None:
            body["reasoning"] = {"enabled": False}
            return
        spec["max_tokens"] = fitted
    else:
        spec["enabled"] = True
    if not th.include:
        spec["exclude"] = True
    body["reasoning"] = spec


def parse_response(body: bytes, req: ChatRequest) -> ChatResponse:
    obj = loads(body)
    if not isinstance(obj, dict):
        raise UpstreamError(502, "server", "upstream returned a non-object body")
    if "choices" not in obj and obj.get("error"):  # some servers report errors with HTTP 200
        code = (obj["error"] or {}).get("code") if isinstance(obj["error"], dict) else None
        status = code if isinstance(code, int) and code >= 400 else 502
        raise classify_error(status, {}, body)
    resp = wire.decode_response(obj)
    for part in resp.content:
        if isinstance(part, ToolCall):
            part.name = wire.original_tool_name(req, part.name)
    return resp


# ---------------------------------------------------------------- streaming


class _Call:
    """One streamed tool call, accumulated per (choice, OpenAI index)."""

    __slots__ = ("id", "name", "frags", "sent", "block", "done", "_checked")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.frags: list[str] = []  # every argument fragment seen
        self.sent = 0  # how many of frags were emitted
        self.block: int | None = None  # internal block index once started
        self.done = False
        self._checked: tuple[int, bool] = (-1, False)

    def complete(self) -> bool:
        """Do the arguments so far form a whole JSON object (so no fragment can follow)?"""
        if self._checked[0] != len(self.frags):
            self._checked = (len(self.frags), json_object("".join(self.frags)) is not None)
        return self._checked[1]


class StreamParser(SSEStreamParser):
    """Chat chunks -> internal events, in the grammar of ``model.events``.

    Tool calls are keyed by OpenAI index; a call's block starts only once its id and name are
    known, and one block is open at a time: fragments of a later call are buffered until the open
    call is complete (its arguments parse) or the message ends, then flushed in order.
    """

    def __init__(self, req: ChatRequest | None = None) -> None:
        super().__init__()
        self.req = req
        self.started = False
        self.ended = False
        self.next_block = 0
        self.open_kind: str | None = None  # "text" | "thinking" | "tool_call"
        self.open_call: _Call | None = None
        self.calls: dict[tuple[int, Any], _Call] = {}
        self.order: list[_Call] = []
        self.deferred: list[tuple[str, str]] = []  # text that arrived while a call was mid-arguments
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.usage_after_finish = False
        self.saw_tool = False
        self.refusal = False

    def _eof(self, out: list[Event]) -> None:
        if self.ended:
            return
        if self.finish_reason is not None:
            self._end(out)
        else:
            self.ended = True
            out.append(StreamError("api_error", "upstream stream ended before the answer was complete", 502))

    # -- frames

    def _frame(self, data: bytes, out: list[Event]) -> None:
        if self.ended or not data:
            return
        if data.strip() == b"[DONE]":
            self._end(out)
            return
        try:
            obj = loads(data)
        except ValueError:
            self.ended = True
            out.append(StreamError("api_error", "upstream sent malformed stream data", 502))
            return
        if not isinstance(obj, dict):
            return
        if obj.get("error"):
            self.ended = True
            out.append(wire.decode_error(obj["error"]))
            return
        if not self.started:
            self._start(obj.get("id"), obj.get("model"), out)
        for choice in obj.get("choices") or []:
            if isinstance(choice, dict):
                self._choice(choice, out)
        if isinstance(obj.get("usage"), dict):
            self.usage = wire.decode_usage(obj["usage"])
            self.usage_after_finish = self.finish_reason is not None
        if self.finish_reason is not None and self.usage_after_finish:
            self._end(out)

    def _start(self, ident: Any, model: Any, out: list[Event]) -> None:
        self.started = True
        fallback = self.req.model if self.req is not None else ""
        out.append(
            MessageStart(
                id=ident if isinstance(ident, str) else "",
                model=model if isinstance(model, str) and model else fallback,
            )
        )

    def _choice(self, choice: dict[str, Any], out: list[Event]) -> None:
        delta = choice.get("delta") or {}
        if isinstance(delta, dict):
            reasoning = wire.reasoning_text(delta)
            if reasoning:
                self._text("thinking", reasoning, out)
            if isinstance(delta.get("content"), str) and delta["content"]:
                self._text("text", delta["content"], out)
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                self.refusal = True
                self._text("text", delta["refusal"], out)
            for tc in delta.get("tool_calls") or []:
                if isinstance(tc, dict):
                    self._tool_fragment(choice.get("index", 0), tc, out)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason and self.finish_reason != "tool_calls":
            self.finish_reason = reason

    # -- blocks

    def _open(self, kind: str, out: list[Event], call: _Call | None = None) -> None:
        self._close(out)
        index = self.next_block
        self.next_block += 1
        self.open_kind = kind
        if call is None:
            out.append(BlockStart(index, kind, family=wire.THINKING_FAMILY if kind == "thinking" else None))  # type: ignore[arg-type]
            return
        call.block = index
        self.open_call = call
        self.saw_tool = True
        name = wire.original_tool_name(self.req, call.name)
        out.append(BlockStart(index, "tool_call", id=call.id, name=name))
        self._flush_args(call, out)

    def _close(self, out: list[Event]) -> None:
        if self.open_kind is None:
            return
        out.append(BlockStop(self.next_block - 1))
        if self.open_call is not None:
            self.open_call.done = True
        self.open_kind = None
        self.open_call = None

    def _flush_args(self, call: _Call, out: list[Event]) -> None:
        pending = "".join(call.frags[call.sent :])
        call.sent = len(call.frags)
        if pending and call.block is not None:
            out.append(ToolArgsDelta(call.block, pending))

    def _text(self, kind: str, text: str, out: list[Event]) -> None:
        if self.open_call is not None:
            if not self.open_call.complete():
                self.deferred.append((kind, text))  # do not cut a call's arguments in two
                return
            self._close(out)
        self._flush_deferred(out)
        self._emit_text(kind, text, out)

    def _emit_text(self, kind: str, text: str, out: list[Event]) -> None:
        if self.open_kind != kind:
            self._open(kind, out)
        index = self.next_block - 1
        out.append(ThinkingDelta(index, text) if kind == "thinking" else TextDelta(index, text))

    def _flush_deferred(self, out: list[Event]) -> None:
        deferred, self.deferred = self.deferred, []
        for kind, text in deferred:
            self._emit_text(kind, text, out)

    def _tool_fragment(self, choice_index: Any, tc: dict[str, Any], out: list[Event]) -> None:
        index = tc.get("index")
        if not isinstance(index, int):  # some servers omit index: a new id means a new call
            last = self.order[-1] if self.order else None
            same = last is not None and (not tc.get("id") or tc.get("id") == last.id)
            index = ("auto", len(self.order) - (1 if same else 0))
        key = (choice_index, index)
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = _Call()
            self.order.append(call)
        if isinstance(tc.get("id"), str) and tc["id"] and not call.id:
            call.id = tc["id"]
        fn = tc.get("function") or {}
        if isinstance(fn.get("name"), str) and fn["name"] and not call.name:
            call.name = fn["name"]  # later repeats (or empty names) are not concatenated
        args = fn.get("arguments")
        if isinstance(args, dict):
            args = dumps_str(args)
        if isinstance(args, str) and args and not call.done:
            call.frags.append(args)
            if call is self.open_call:
                self._flush_args(call, out)
        self._advance(out)

    def _advance(self, out: list[Event]) -> None:
        """Start buffered calls in order while the open one is known to be finished."""
        while True:
            waiting = [c for c in self.order if c.block is None]
            if not waiting:
                return
            if self.open_call is not None:
                if not self.open_call.complete():
                    return
                self._close(out)
                self._flush_deferred(out)
            nxt = waiting[0]
            if not (nxt.id and nxt.name):
                return
            self._open("tool_call", out, nxt)

    def _end(self, out: list[Event]) -> None:
        if self.ended:
            return
        if not self.started:
            self._start(None, None, out)
        self._close(out)
        self._flush_deferred(out)
        for call in self.order:
            if call.block is None and call.name:  # a call without a name cannot be run: dropped
                if not call.id:
                    call.id = (
                        "call_" + hashlib.sha256(f"{call.name}:{len(self.order)}".encode()).hexdigest()[:24]
                    )
                self._open("tool_call", out, call)
        self._close(out)
        stop = wire.stop_reason(self.finish_reason, self.saw_tool, self.refusal)
        out.append(MessageDelta(stop, self.usage or Usage()))
        out.append(MessageStop())
        self.ended = True


# ---------------------------------------------------------------- errors and quota


# error codes about the key, organization or project rather than the request (any status)
ACCOUNT_REFUSALS = (
    "invalid_api_key",
    "account_deactivated",
    "invalid_organization",
    "unsupported_country_region_territory",
)


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    err = classify_status(status, headers, body)
    detail = err.body.get("error") if isinstance(err.body, dict) else None
    code = detail.get("code") if isinstance(detail, dict) else None
    etype = detail.get("type") if isinstance(detail, dict) else None
    if status == 402 or (status == 429 and "insufficient_quota" in (code, etype)):
        err.cause = "quota"
    elif code == "model_not_found":
        err.cause = "model_not_found"
    elif status == 401 or code in ACCOUNT_REFUSALS:
        err.cause = "auth"  # OpenAI-style APIs answer 401 only about the key (invalid_api_key, ...)
    if status == 429 and err.retry_after is None:
        quota = read_quota(headers) or {}
        err.retry_after = quota.get("reset_in")
    return err


def read_quota(headers: Mapping[str, str], now: float | None = None) -> dict[str, Any] | None:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``: counts, reset times (epoch
    seconds) and ``reset_in``, the wait until the exhausted (or else the soonest) window resets."""
    out, waits = read_windows(headers, time.time() if now is None else now)
    exhausted = [waits[k] for k in waits if out.get(f"{k}_remaining") == 0]
    if exhausted or waits:
        out["reset_in"] = max(exhausted) if exhausted else min(waits.values())
    return out or None
