"""Google Gemini (Generative Language API) upstream: API keys (``x-goog-api-key``) or OAuth bearer tokens."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..codec import dumps, loads
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
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Usage,
)
from ..model.events import BlockKind
from ..protocols import gemini as wire
from .base import Credentials, UpstreamError, UpstreamRequest, classify_status
from .sse_parser import SSEStreamParser
from .upstream_request import bearer, json_post

NAME = "gemini"
WIRE = "gemini"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


def build_request(req: ChatRequest, upstream_model: str, creds: Credentials) -> UpstreamRequest:
    passthrough = req.protocol == WIRE and req.raw is not None
    sse = True
    if passthrough:
        body = dict(req.raw or {})
        _apply_overrides(body, req)
        sse = bool(req.extras.get("gemini_sse", True))  # raw bytes may be relayed: keep the client's framing
    else:
        body = wire.encode_request(req, model=wire.bare_model(upstream_model))
    if req.stream:
        verb = "streamGenerateContent?alt=sse" if sse else "streamGenerateContent"
    else:
        verb = "generateContent"
    auth = bearer(creds.oauth_token) or ({"x-goog-api-key": creds.api_key} if creds.api_key else {})
    url = model_url(creds.base_url, upstream_model, verb)
    return json_post(url, body, req, creds, auth=auth, passthrough=passthrough, sse=sse)


def model_url(base_url: str, model: str, verb: str) -> str:
    """``{base}/v1beta/models/{model}:{verb}``; a version already in the base URL is kept."""
    base = base_url.rstrip("/")
    if not re.search(r"/v\d+(alpha|beta)?\d*$", base):
        base += "/v1beta"
    resource = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return f"{base}/{resource}:{verb}"


_DEFAULT_KEYS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
}


def _apply_overrides(body: dict[str, Any], req: ChatRequest) -> None:
    """Gateway-side changes to a passthrough body: a preset system prompt, defaults, a max-tokens clamp."""
    preset = req.extras.get("preset_system")
    if preset:
        key = "system_instruction" if "system_instruction" in body else "systemInstruction"
        system = body.get(key)
        parts: list[Any] = [{"text": preset}]
        if isinstance(system, dict):
            parts.extend(system.get("parts") or [])
        elif isinstance(system, str) and system:
            parts.append({"text": system})
        body[key] = {"parts": parts}
    defaults = req.extras.get("preset_defaults") or {}
    if defaults or req.max_tokens is not None:
        key = "generation_config" if "generation_config" in body else "generationConfig"
        gen = dict(body.get(key) or {})
        for name, value in defaults.items():
            camel = _DEFAULT_KEYS.get(name, name)
            if wire.get_field(gen, camel) is None:
                gen[camel] = value
        if req.max_tokens is not None:
            gen.pop("max_output_tokens", None)
            gen["maxOutputTokens"] = req.max_tokens
        body[key] = gen


def parse_response(body: bytes, req: ChatRequest) -> ChatResponse:
    try:
        obj = loads(body)
    except ValueError:
        raise GatewayError("api_error", "upstream sent a body that is not JSON", status=502) from None
    return wire.decode_response(obj, names=req.extras.get(wire.TOOL_NAMES_KEY))


class JsonArraySplitter:
    """Incremental splitter for a JSON array sent piece by piece (``[{..},{..}]``): yields each element's
    bytes as soon as its closing brace arrives. A bare top-level object counts as one element."""

    _SCAN = re.compile(rb'[\[\]{}"]')
    _IN_STRING = re.compile(rb'["\\]')

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.depth = 0
        self.start = -1
        self.in_string = False
        self.escape = False
        self.outer = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        buf = self.buf + data
        i, n = self.pos, len(buf)
        while i < n:
            if self.escape:
                self.escape = False
                i += 1
                continue
            if self.in_string:
                m = self._IN_STRING.search(buf, i)
                if m is None:
                    i = n
                    break
                i = m.start()
                if buf[i] == 0x5C:  # backslash
                    self.escape = True
                else:
                    self.in_string = False
                i += 1
                continue
            m = self._SCAN.search(buf, i)
            if m is None:
                i = n
                break
            i = m.start()
            c = buf[i]
            if c == 0x22:  # quote
                self.in_string = True
            elif c in (0x5B, 0x7B):  # [ {
                if c == 0x5B and self.depth == 0 and not self.outer:
                    self.outer = True
                else:
                    self.depth += 1
                    if self.depth == 1:
                        self.start = i
            elif self.depth > 0:  # ] }
                self.depth -= 1
                if self.depth == 0:
                    yield buf[self.start : i + 1]
                    self.start = -1
            i += 1
        keep = self.start if self.start >= 0 else i
        self.buf, self.pos = buf[keep:], i - keep
        if self.start >= 0:
            self.start = 0

    @property
    def incomplete(self) -> bool:
        return self.depth > 0


class StreamParser(SSEStreamParser):
    """Gemini stream chunks (SSE frames or JSON-array elements, told apart by the first byte) -> internal
    events. Each chunk is a whole GenerateContentResponse whose text parts are deltas."""

    def __init__(self, req: ChatRequest | None = None) -> None:
        super().__init__()
        self.req = req
        self.names: dict[str, str] = (req.extras.get(wire.TOOL_NAMES_KEY) if req else None) or {}
        self.mode: str | None = None  # "sse" or "array"
        self.array = JsonArraySplitter()
        self.index = -1
        self.block: BlockKind | None = None
        self.signed = False  # the open thinking block already has its signature
        self.usage = Usage()
        self.saw_tool = False
        self.started = False
        self.finish_reason: str | None = None
        self.stopped = False
        self.failed = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self.mode is None:
            head = chunk.lstrip()
            if not head:
                return []
            self.mode = "array" if head[:1] in (b"[", b"{") else "sse"
        if self.mode == "sse":
            return super().feed(chunk)
        out: list[Event] = []
        for element in self.array.feed(chunk):
            self._frame(element, out)
        return out

    def _eof(self, out: list[Event]) -> None:
        if self.failed or self.stopped:
            return
        if self.finish_reason is not None:
            self._stop(out)
            return
        self._close(out)
        out.append(
            StreamError("api_error", "the upstream stream ended before Gemini sent a finishReason", 502)
        )
        self.failed = True

    def _frame(self, data: bytes, out: list[Event]) -> None:
        if self.failed or self.stopped or not data.strip():
            return
        try:
            obj = loads(data)
        except ValueError:
            obj = None
        for item in obj if isinstance(obj, list) else [obj]:
            if not isinstance(item, dict):
                out.append(StreamError("api_error", "upstream sent malformed stream data", 502))
                self.failed = True
                return
            self._chunk(item, out)

    def _chunk(self, obj: dict[str, Any], out: list[Event]) -> None:
        if self.failed or self.stopped:
            return
        err = obj.get("error")
        if err is not None:
            out.append(_stream_error(err))
            self.failed = True
            return
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            self.usage = wire.decode_usage(usage)
        if not self.started:
            self.started = True
            model = obj.get("modelVersion") or (self.req.model if self.req else "")
            start_id = str(obj.get("responseId") or wire.mint_response_id())
            out.append(MessageStart(id=start_id, model=str(model), usage=dataclasses.replace(self.usage)))
        cand, parts = wire.first_candidate(obj)
        for part in parts:
            self._part(part, out)
        finish = cand.get("finishReason")
        if wire.is_blocked(obj):
            finish = "SAFETY"
        if finish:
            self._close(out)
            self.finish_reason = str(finish)
        if self.finish_reason is not None and isinstance(usage, dict):
            self._stop(out)  # otherwise wait: the usage may follow in a chunk of its own

    def _part(self, part: dict[str, Any], out: list[Event]) -> None:
        sig = part.get("thoughtSignature")
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought"):
                if self.block != "thinking" or self.signed:
                    self._open(out, "thinking", family=wire.NAME)
                if text:
                    out.append(ThinkingDelta(self.index, text))
                if sig:
                    out.append(SignatureDelta(self.index, sig))
                    self.signed = True
                return
            if sig:
                self._signature_only(sig, out)
            if text:
                if self.block != "text":
                    self._open(out, "text")
                out.append(TextDelta(self.index, text))
            return
        call = part.get("functionCall")
        if isinstance(call, dict):
            tc = wire.function_call(call, self.names, sig)
            self._open(out, "tool_call", id=tc.id, name=tc.name, signature=tc.signature)
            out.append(ToolArgsDelta(self.index, dumps(tc.arguments).decode()))
            self._close(out)
            self.saw_tool = True
        elif sig and not set(part) - wire.NON_PAYLOAD_KEYS:
            self._signature_only(sig, out)
        else:
            self._open(out, "opaque", data=part, family=wire.NAME)
            self._close(out)

    def _signature_only(self, sig: str, out: list[Event]) -> None:
        """A thought signature on a non-thought part: its own empty thinking block, closed at once."""
        self._open(out, "thinking", family=wire.NAME)
        out.append(SignatureDelta(self.index, sig))
        self._close(out)

    def _open(self, out: list[Event], kind: BlockKind, **fields: Any) -> None:
        self._close(out)
        self.index += 1
        self.block, self.signed = kind, False
        out.append(BlockStart(self.index, kind, **fields))

    def _close(self, out: list[Event]) -> None:
        if self.block is not None:
            out.append(BlockStop(self.index))
            self.block = None

    def _stop(self, out: list[Event]) -> None:
        self.stopped = True
        out.append(MessageDelta(wire.stop_reason(self.finish_reason, self.saw_tool), self.usage))
        out.append(MessageStop())


def _stream_error(err: Any) -> StreamError:
    if not isinstance(err, dict):
        return StreamError("api_error", str(err) or "upstream stream error", 502)
    kind = wire.KIND_BY_STATUS.get(str(err.get("status")), "api_error")
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    return StreamError(kind, str(err.get("message") or "upstream stream error"), status)


# ---------------------------------------------------------------- errors and quota

_TYPE = "type.googleapis.com/google.rpc."


# ErrorInfo reasons about the key or its project, not about what the request names
ACCOUNT_REFUSALS = frozenset(
    (
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "CONSUMER_SUSPENDED",
        "CONSUMER_INVALID",
        "SERVICE_DISABLED",
        "BILLING_DISABLED",
        "ACCESS_TOKEN_EXPIRED",
    )
)


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    err = classify_status(status, headers, body)
    parsed = err.body[0] if isinstance(err.body, list) and err.body else err.body
    error = parsed.get("error") if isinstance(parsed, dict) else None
    error = error if isinstance(error, dict) else {}
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    reasons = {d.get("reason") for d in details if d.get("@type") == _TYPE + "ErrorInfo"}
    if err.retry_after is None:
        err.retry_after = next(
            (parse_duration(d.get("retryDelay")) for d in details if d.get("@type") == _TYPE + "RetryInfo"),
            None,
        )
    if reasons & ACCOUNT_REFUSALS or status == 401 or (status == 400 and "API key not valid" in err.message):
        err.cause = "auth"  # a 403 without one of these reasons (a file the key cannot read) is not
    elif status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
        err.cause = _exhaustion_cause(details)
    return err


def _exhaustion_cause(details: list[dict[str, Any]]) -> str:
    """429s are per-minute rate limits or spent (daily / zero) quotas; QuotaFailure says which."""
    violations = [
        v
        for d in details
        if d.get("@type") == _TYPE + "QuotaFailure"
        for v in d.get("violations") or []
        if isinstance(v, dict)
    ]
    for v in violations:
        quota_id = str(v.get("quotaId") or "")
        if "PerDay" in quota_id or str(v.get("quotaValue")) == "0":
            return "quota"
    return "rate_limit"


def parse_duration(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON ("37s", "1.5s") as seconds."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        return max(0.0, float(value[:-1]))
    except ValueError:
        return None


def read_quota(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The Gemini API sends no rate-limit headers; quota facts come in 429 bodies (see classify_error)."""
    return None
