"""Anthropic Messages upstream (API keys and OAuth accounts)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from ..codec import SSEDecoder, dumps, loads
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
    Usage,
)
from ..protocols import anthropic as wire
from ..protocols.base import CARRIER
from .base import Credentials, UpstreamError, UpstreamRequest, classify_status, join_url

NAME = "anthropic"
WIRE = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
OAUTH_BETA = "oauth-2025-04-20"


def build_request(req: ChatRequest, upstream_model: str, creds: Credentials) -> UpstreamRequest:
    passthrough = req.protocol == WIRE and req.raw is not None
    if passthrough:
        body: dict[str, Any] = dict(req.raw or {})
        body["model"] = upstream_model
        if req.stream:
            body["stream"] = True
        _apply_overrides(body, req)
    else:
        body = wire.encode_request(req)
        body["model"] = upstream_model
    headers = {
        "content-type": "application/json",
        "anthropic-version": req.headers.get("anthropic-version", API_VERSION),
    }
    betas = [b.strip() for b in req.headers.get("anthropic-beta", "").split(",") if b.strip()]
    if creds.oauth_token:
        headers["authorization"] = f"Bearer {creds.oauth_token}"
        if OAUTH_BETA not in betas:
            betas.append(OAUTH_BETA)
    elif creds.api_key:
        headers["x-api-key"] = creds.api_key
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    headers.update(creds.headers)
    if req.stream:
        headers["accept"] = "text/event-stream"
    return UpstreamRequest(
        url=join_url(creds.base_url, "/v1/messages"),
        headers=headers,
        body=dumps(body),
        stream=req.stream,
        passthrough=passthrough,
    )


def _drop_carried_thinking(body: dict[str, Any]) -> None:
    """Thinking another provider produced (a gateway-carried signature) must never reach Anthropic."""
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content[:] = [
                b
                for b in content
                if not (
                    isinstance(b, dict)
                    and b.get("type") == "thinking"
                    and str(b.get("signature") or "").startswith(CARRIER)
                )
            ]


def _apply_overrides(body: dict[str, Any], req: ChatRequest) -> None:
    """Gateway-side changes to a passthrough body (presets prepend a system prompt, set defaults)."""
    _drop_carried_thinking(body)
    preset = req.extras.get("preset_system")
    if preset:
        system = body.get("system")
        blocks = [{"type": "text", "text": preset}]
        if isinstance(system, str) and system:
            blocks.append({"type": "text", "text": system})
        elif isinstance(system, list):
            blocks.extend(system)
        body["system"] = blocks
    for key, value in (req.extras.get("preset_defaults") or {}).items():
        body.setdefault(key, value)
    if req.max_tokens is not None and "max_tokens" in body:
        body["max_tokens"] = req.max_tokens


def parse_response(body: bytes, req: ChatRequest) -> ChatResponse:
    return wire.decode_response(loads(body))


class StreamParser:
    """Anthropic SSE -> internal events (the grammars match; this validates and normalises)."""

    def __init__(self, req: ChatRequest | None = None) -> None:
        self.decoder = SSEDecoder()
        self.started = False
        self.stopped = False
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        for event, data in self.decoder.feed(chunk):
            self._frame(event, data, out)
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        for event, data in self.decoder.flush():
            self._frame(event, data, out)
        return out

    def _frame(self, event: str | None, data: bytes, out: list[Event]) -> None:
        if not data or event == "ping":
            return
        try:
            obj = loads(data)
        except Exception:
            out.append(StreamError("api_error", "upstream sent malformed stream data", 502))
            return
        kind = obj.get("type") or event
        if kind == "message_start":
            msg = obj.get("message") or {}
            self.started = True
            self.usage = wire.decode_usage(msg.get("usage"))
            out.append(MessageStart(id=msg.get("id") or "", model=msg.get("model") or "", usage=self.usage))
        elif kind == "content_block_start":
            out.append(_block_start(obj.get("index", 0), obj.get("content_block") or {}))
        elif kind == "content_block_delta":
            idx = obj.get("index", 0)
            delta = obj.get("delta") or {}
            dt = delta.get("type")
            if dt == "text_delta":
                out.append(TextDelta(idx, delta.get("text") or ""))
            elif dt == "input_json_delta":
                out.append(ToolArgsDelta(idx, delta.get("partial_json") or ""))
            elif dt == "thinking_delta":
                out.append(ThinkingDelta(idx, delta.get("thinking") or ""))
            elif dt == "signature_delta":
                out.append(SignatureDelta(idx, delta.get("signature") or ""))
        elif kind == "content_block_stop":
            out.append(BlockStop(obj.get("index", 0)))
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            out.append(
                MessageDelta(
                    delta.get("stop_reason"),
                    wire.decode_usage(obj.get("usage"), self.usage),
                    delta.get("stop_sequence"),
                )
            )
        elif kind == "message_stop":
            self.stopped = True
            out.append(MessageStop())
        elif kind == "error":
            err = obj.get("error") or {}
            err_kind = wire.KIND_BY_ERROR_TYPE.get(err.get("type") or "", "api_error")
            out.append(
                StreamError(
                    err_kind,
                    err.get("message") or "upstream stream error",
                    529 if err_kind == "overloaded" else 500,
                )
            )


def _block_start(index: int, block: dict[str, Any]) -> BlockStart:
    kind = block.get("type")
    if kind == "text":
        return BlockStart(index, "text")
    if kind == "tool_use":
        return BlockStart(index, "tool_call", id=block.get("id"), name=block.get("name"))
    if kind == "thinking":
        return BlockStart(index, "thinking", family=NAME)
    if kind == "redacted_thinking":
        return BlockStart(index, "thinking", redacted=block.get("data"), family=NAME)
    return BlockStart(index, "opaque", data=block, family=NAME)


# permission_error messages that are about the key or organization, not about what the request names
ACCOUNT_REFUSALS = ("organization has been disabled", "token has been revoked", "api key has been disabled")


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    err = classify_status(status, headers, body)
    etype = ((err.body or {}).get("error") or {}).get("type") if isinstance(err.body, dict) else None
    if etype == "overloaded_error":
        err.cause = "overloaded"
    elif etype == "authentication_error" or (
        etype == "permission_error" and any(p in err.message.lower() for p in ACCOUNT_REFUSALS)
    ):
        err.cause = "auth"  # the key or token itself (a 403 about a resource stays the request's)
    elif status == 400 and "credit balance" in err.message.lower():
        err.cause = "quota"  # the organization's prepaid credit is spent
    if status == 429:
        quota = read_quota(headers) or {}
        if (
            quota.get("unified_status") == "rejected"
            or quota.get("tokens_remaining") == 0
            and err.retry_after is None
        ):
            err.cause = "quota"
        if err.retry_after is None:
            err.retry_after = quota.get("reset_in")
    return err


_LIMIT_KEYS = ("requests", "tokens", "input-tokens", "output-tokens")
# (header, key in the quota dict, how to read it): built once, not per response
_QUOTA_HEADERS = tuple(
    (
        f"anthropic-ratelimit-{key}-{part}",
        f"{key.replace('-', '_')}_{part}",
        "iso" if part == "reset" else "int",
    )
    for key in _LIMIT_KEYS
    for part in ("limit", "remaining", "reset")
) + tuple(
    (f"anthropic-ratelimit-unified-{window}-{part}", f"unified_{window}_{part}", kind)
    for window in ("5h", "7d")
    for part, kind in (("utilization", "float"), ("reset", "int"))
)


def read_quota(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """Anthropic's ``anthropic-ratelimit-*`` headers, including the unified 5h/7d utilisation."""
    out: dict[str, Any] = {}
    soonest: float | None = None
    for header, name, kind in _QUOTA_HEADERS:
        value = headers.get(header)
        if not value:
            continue
        if kind == "int":
            if value.isdigit():
                out[name] = int(value)
        elif kind == "iso":
            try:
                at = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            out[name] = at
            soonest = at if soonest is None else min(soonest, at)
        else:
            try:
                out[name] = float(value)
            except ValueError:
                pass
    status = headers.get("anthropic-ratelimit-unified-status")
    if status:
        out["unified_status"] = status
    if soonest is not None:
        out["reset_in"] = max(0.0, soonest - time.time())
    return out or None
