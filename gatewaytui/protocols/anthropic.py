"""Anthropic Messages: ``POST /v1/messages`` (also ``?beta=true``)."""

from __future__ import annotations

from typing import Any, cast

from ..codec import dumps, sse
from ..model import (
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
    Document,
    Event,
    GatewayError,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Opaque,
    Part,
    ResponseFormat,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
    Usage,
)
from .base import carry, expect_type, is_web_search, number, optional, require, uncarry

NAME = "anthropic"
STREAM_CONTENT_TYPE = "text/event-stream"

ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "billing": "billing_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "unavailable": "api_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}
KIND_BY_ERROR_TYPE = {v: k for k, v in ERROR_TYPES.items() if k != "unavailable"}

FORWARD_HEADERS = ("anthropic-beta", "anthropic-version")


# ---------------------------------------------------------------- decoding


def decode_request(
    body: dict[str, Any],
    *,
    model: str | None = None,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
    count_only: bool = False,
) -> ChatRequest:
    model = model or expect_type(body.get("model"), str, "model")
    require(bool(model), "model: must not be empty", "model")
    max_tokens = None
    if not count_only:
        require("max_tokens" in body, "max_tokens: field required", "max_tokens")
        max_tokens = expect_type(body.get("max_tokens"), int, "max_tokens")
        require(max_tokens >= 0, "max_tokens: must be >= 0", "max_tokens")
    messages_raw = expect_type(body.get("messages"), list, "messages")
    messages = [_decode_message(m, f"messages.{i}") for i, m in enumerate(messages_raw)]
    req = ChatRequest(
        model=model,
        messages=messages,
        system=_decode_system(body.get("system")),
        max_tokens=max_tokens,
        stream=bool(optional(body, "stream", bool)) if stream is None else stream,
        temperature=number(body, "temperature", 0, 1),
        top_p=number(body, "top_p", 0, 1),
        top_k=optional(body, "top_k", int),
        stop=[expect_type(s, str, "stop_sequences") for s in optional(body, "stop_sequences", list) or []],
        tools=[_decode_tool(t, f"tools.{i}") for i, t in enumerate(optional(body, "tools", list) or [])],
        tool_choice=_decode_tool_choice(optional(body, "tool_choice", dict)),
        thinking=_decode_thinking(optional(body, "thinking", dict), optional(body, "output_config", dict)),
        response_format=_decode_format(optional(body, "output_config", dict)),
        protocol=NAME,
        raw=body,
    )
    metadata = optional(body, "metadata", dict)
    if metadata and isinstance(metadata.get("user_id"), str):
        req.user_id = metadata["user_id"]
    if headers:
        req.headers = {k: headers[k] for k in FORWARD_HEADERS if k in headers}
    return req


def _decode_system(system: Any) -> list[Text]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Text(system)] if system else []
    expect_type(system, list, "system")
    out = []
    for i, block in enumerate(system):
        expect_type(block, dict, f"system.{i}")
        require(block.get("type") == "text", f"system.{i}.type: only text blocks are allowed", f"system.{i}")
        out.append(Text(expect_type(block.get("text"), str, f"system.{i}.text"), block.get("cache_control")))
    return out


def _decode_message(m: Any, path: str) -> Message:
    expect_type(m, dict, path)
    role = m.get("role")
    require(role in ("user", "assistant"), f"{path}.role: must be 'user' or 'assistant'", f"{path}.role")
    content = m.get("content")
    if isinstance(content, str):
        return Message(role, [Text(content)])
    expect_type(content, list, f"{path}.content")
    return Message(role, [_decode_block(b, f"{path}.content.{j}") for j, b in enumerate(content)])


def _decode_source(block: dict[str, Any], path: str) -> dict[str, Any]:
    source = expect_type(block.get("source"), dict, f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        expect_type(source.get("data"), str, f"{path}.source.data")
    elif kind == "url":
        expect_type(source.get("url"), str, f"{path}.source.url")
    elif kind not in ("text", "content"):
        raise GatewayError("invalid_request", f"{path}.source.type: unsupported source type {kind!r}")
    return source


def _decode_block(b: Any, path: str) -> Part:
    expect_type(b, dict, path)
    kind = b.get("type")
    cc = b.get("cache_control")
    if kind == "text":
        return Text(expect_type(b.get("text"), str, f"{path}.text"), cc)
    if kind == "image":
        src = _decode_source(b, path)
        return Image(
            media_type=src.get("media_type"), data=src.get("data"), url=src.get("url"), cache_control=cc
        )
    if kind == "document":
        src = _decode_source(b, path)
        if src.get("type") == "text":
            return Document(
                media_type="text/plain", text=src.get("data"), title=b.get("title"), cache_control=cc
            )
        if src.get("type") == "content":
            texts = [c.get("text", "") for c in src.get("content") or [] if isinstance(c, dict)]
            return Document(
                media_type="text/plain", text="\n".join(texts), title=b.get("title"), cache_control=cc
            )
        return Document(
            media_type=src.get("media_type") or "application/pdf",
            data=src.get("data"),
            url=src.get("url"),
            title=b.get("title"),
            cache_control=cc,
        )
    if kind == "tool_use":
        args = b.get("input")
        return ToolCall(
            id=expect_type(b.get("id"), str, f"{path}.id"),
            name=expect_type(b.get("name"), str, f"{path}.name"),
            arguments=args if isinstance(args, dict) else {},
            cache_control=cc,
        )
    if kind == "tool_result":
        content = b.get("content")
        parts: list[Text | Image | Document] = []
        if isinstance(content, str):
            parts = [Text(content)]
        elif isinstance(content, list):
            for j, c in enumerate(content):
                part = _decode_block(c, f"{path}.content.{j}")
                if isinstance(part, (Text, Image, Document)):
                    parts.append(part)
        elif content is not None:
            raise GatewayError("invalid_request", f"{path}.content: expected string or array")
        return ToolResult(
            call_id=expect_type(b.get("tool_use_id"), str, f"{path}.tool_use_id"),
            content=parts,
            is_error=bool(b.get("is_error")),
            cache_control=cc,
        )
    if kind == "thinking":
        carried = uncarry(b.get("signature"))
        if carried is not None:  # reasoning another provider produced, handed back by the client
            family, mark, value = carried
            if mark == "r":
                return Thinking(redacted=value, family=family)
            return Thinking(text=b.get("thinking") or "", signature=value, family=family)
        return Thinking(text=b.get("thinking") or "", signature=b.get("signature"), family=NAME)
    if kind == "redacted_thinking":
        return Thinking(redacted=b.get("data"), family=NAME)
    require(isinstance(kind, str), f"{path}.type: field required", f"{path}.type")
    return Opaque(NAME, b)


def _decode_tool(t: Any, path: str) -> Tool:
    expect_type(t, dict, path)
    kind = t.get("type")
    if kind not in (None, "custom"):
        return Tool(name=str(t.get("name") or kind), raw=t)  # server tool, e.g. web_search_20250305
    schema = t.get("input_schema")
    return Tool(
        name=expect_type(t.get("name"), str, f"{path}.name"),
        description=optional(t, "description", str, f"{path}.description"),
        schema=expect_type(schema, dict, f"{path}.input_schema"),
        strict=t.get("strict"),
        cache_control=t.get("cache_control"),
    )


def _decode_tool_choice(tc: dict[str, Any] | None) -> ToolChoice | None:
    if tc is None:
        return None
    mode = tc.get("type")
    require(mode in ("auto", "any", "tool", "none"), "tool_choice.type: must be auto, any, tool or none")
    if mode == "tool":
        expect_type(tc.get("name"), str, "tool_choice.name")
    parallel = None if "disable_parallel_tool_use" not in tc else not tc["disable_parallel_tool_use"]
    # the require above admits only ToolChoiceMode's values
    return ToolChoice(mode=cast(ToolChoiceMode, mode), name=tc.get("name"), parallel=parallel)


def _decode_thinking(
    th: dict[str, Any] | None, output_config: dict[str, Any] | None
) -> ThinkingConfig | None:
    effort = (output_config or {}).get("effort")
    if th is None:
        return ThinkingConfig(enabled=True, effort=effort, adaptive=True) if effort else None
    kind = th.get("type")
    if kind == "disabled":
        return None
    require(kind in ("enabled", "adaptive"), "thinking.type: must be enabled, adaptive or disabled")
    budget = th.get("budget_tokens")
    if kind == "enabled":
        expect_type(budget, int, "thinking.budget_tokens")
    return ThinkingConfig(
        enabled=True,
        budget_tokens=budget,
        effort=effort,
        adaptive=kind == "adaptive",
        include=th.get("display") != "omitted",
    )


def _decode_format(output_config: dict[str, Any] | None) -> ResponseFormat | None:
    fmt = (output_config or {}).get("format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    return ResponseFormat(type="json_schema", schema=fmt.get("schema"), name=fmt.get("name"))


# ---------------------------------------------------------------- encoding (model -> Anthropic JSON)


def encode_request(req: ChatRequest) -> dict[str, Any]:
    """The internal request as an Anthropic Messages body (used when the upstream speaks Anthropic)."""
    body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or 4096}
    if req.system:
        body["system"] = [_text_block(t) for t in req.system]
    body["messages"] = _encode_messages(req.messages)
    if req.stream:
        body["stream"] = True
    thinking_on = req.thinking is not None and req.thinking.enabled
    if req.temperature is not None and not thinking_on:
        body["temperature"] = min(req.temperature, 1.0)
    elif req.top_p is not None and not thinking_on:
        body["top_p"] = req.top_p
    if req.top_k is not None and not thinking_on:
        body["top_k"] = req.top_k
    if req.stop:
        body["stop_sequences"] = req.stop
    tools = [spec for spec in (encode_tool(t) for t in req.tools) if spec is not None]
    if tools:
        body["tools"] = tools
    if req.tool_choice and (tools or req.tool_choice.mode == "none"):
        tc: dict[str, Any] = {"type": req.tool_choice.mode}
        if req.tool_choice.mode == "tool":
            tc["name"] = req.tool_choice.name
        if thinking_on and tc["type"] in ("any", "tool"):
            tc = {"type": "auto"}  # Anthropic rejects forced tool use with thinking
        if req.tool_choice.parallel is False and tc["type"] != "none":
            tc["disable_parallel_tool_use"] = True
        body["tool_choice"] = tc
    if thinking_on and req.thinking is not None:
        budget = req.thinking.budget_tokens or effort_budget(req.thinking.effort)
        budget = max(1024, budget)
        if budget >= body["max_tokens"]:
            body["max_tokens"] = budget + 1024
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if req.response_format and req.response_format.type == "json_schema" and req.response_format.schema:
        body["output_config"] = {"format": {"type": "json_schema", "schema": req.response_format.schema}}
    if req.user_id:
        body["metadata"] = {"user_id": req.user_id}
    return body


def effort_budget(effort: str | None) -> int:
    return {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 64000}.get(
        effort or "medium", 8192
    )


WEB_SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search"}


def encode_tool(t: Tool) -> dict[str, Any] | None:
    """A tool in Anthropic's form; None for another family's hosted tool that Anthropic has no form of."""
    raw = t.raw
    if raw is not None and raw.get("type") not in ("custom", "function"):
        if isinstance(raw.get("type"), str) and "name" in raw:
            return raw  # Anthropic's own server tool (web_search_20250305, code_execution, ...)
        if is_web_search(raw):  # OpenAI's {"type": "web_search"}, Gemini's {"googleSearch": {}}
            return dict(WEB_SEARCH_TOOL)
        return None  # dropped, as every encoder drops a foreign hosted tool it cannot express
    out: dict[str, Any] = {"name": t.name, "input_schema": t.schema or {"type": "object", "properties": {}}}
    if t.description:
        out["description"] = t.description
    if t.cache_control:
        out["cache_control"] = t.cache_control
    return out


def _text_block(t: Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": t.text}
    if t.cache_control:
        block["cache_control"] = t.cache_control
    return block


def _source(media_type: str | None, data: str | None, url: str | None) -> dict[str, Any]:
    if data is not None:
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def encode_part(p: Part, *, for_history: bool = True) -> dict[str, Any] | None:
    """One internal part as an Anthropic content block (None when Anthropic has no home for it)."""
    block: dict[str, Any] | None
    if isinstance(p, Text):
        if not p.text.strip():
            return None  # Anthropic rejects empty text blocks
        return _text_block(p)
    if isinstance(p, Image):
        block = {"type": "image", "source": _source(p.media_type, p.data, p.url)}
    elif isinstance(p, Document):
        if p.text is not None:
            block = {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": p.text},
            }
        else:
            block = {"type": "document", "source": _source(p.media_type, p.data, p.url)}
        if p.title:
            block["title"] = p.title
    elif isinstance(p, ToolCall):
        block = {"type": "tool_use", "id": p.id, "name": p.name, "input": p.arguments}
    elif isinstance(p, ToolResult):
        content = [b for b in (encode_part(c) for c in p.content) if b is not None]
        block = {"type": "tool_result", "tool_use_id": p.call_id, "content": content or ""}
        if p.is_error:
            block["is_error"] = True
    elif isinstance(p, Thinking):
        if p.family != NAME:
            return None  # signatures from other providers cannot be verified by Anthropic
        if p.redacted is not None:
            return {"type": "redacted_thinking", "data": p.redacted}
        if not p.signature:
            return None
        return {"type": "thinking", "thinking": p.text, "signature": p.signature}
    else:
        return p.data if p.family == NAME else None
    cc = getattr(p, "cache_control", None)
    if cc:
        block["cache_control"] = cc
    return block


def _encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks = [b for b in (encode_part(p) for p in m.content) if b is not None]
        if m.role == "user":  # tool results must come first in their user turn
            blocks.sort(key=lambda b: b.get("type") != "tool_result")
        if not blocks:
            continue
        if out and out[-1]["role"] == m.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": m.role, "content": blocks})
    return out


def encode_usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
    }


def decode_usage(u: dict[str, Any] | None, prev: Usage | None = None) -> Usage:
    """Anthropic usage JSON -> Usage. ``prev`` (an earlier report in the same stream) resolves a later
    report that gives the cache-write total without its 5m/1h split."""
    if not u:
        return Usage()
    cc = u.get("cache_creation") or {}
    write_total = u.get("cache_creation_input_tokens") or 0
    w5 = cc.get("ephemeral_5m_input_tokens") or 0
    w1 = cc.get("ephemeral_1h_input_tokens") or 0
    if w5 + w1 != write_total:  # unsplit report: keep an earlier 1h share, the rest is 5-minute writes
        w1 = min(write_total, prev.cache_write_1h_tokens) if prev is not None and not cc else w1
        w5 = max(0, write_total - w1)
    details = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=u.get("input_tokens") or 0,
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=u.get("cache_read_input_tokens") or 0,
        cache_write_5m_tokens=w5,
        cache_write_1h_tokens=w1,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )


def encode_response(resp: ChatResponse, req: ChatRequest | None = None) -> dict[str, Any]:
    content = []
    for p in resp.content:
        if isinstance(p, Thinking):
            if p.family not in (None, NAME):  # foreign reasoning: a carried signature Anthropic never sees
                content.append(
                    {
                        "type": "thinking",
                        "thinking": p.text,
                        "signature": carry(p.family, p.signature, p.redacted) or "",
                    }
                )
            elif p.redacted is not None:
                content.append({"type": "redacted_thinking", "data": p.redacted})
            else:
                content.append({"type": "thinking", "thinking": p.text, "signature": p.signature or ""})
            continue
        block = encode_part(p)
        if block is None and isinstance(p, Text):
            block = {"type": "text", "text": p.text}
        if block is not None:
            content.append(block)
    return {
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": resp.stop_reason,
        "stop_sequence": resp.stop_sequence,
        "usage": encode_usage(resp.usage),
    }


def decode_response(body: dict[str, Any]) -> ChatResponse:
    """An Anthropic message JSON as an internal response (the Anthropic provider uses this)."""
    content: list[Part] = []
    for b in body.get("content") or []:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            content.append(Text(b.get("text") or ""))
        elif kind == "tool_use":
            args = b.get("input")
            content.append(ToolCall(id=b.get("id") or "", name=b.get("name") or "", arguments=args or {}))
        elif kind == "thinking":
            content.append(Thinking(text=b.get("thinking") or "", signature=b.get("signature"), family=NAME))
        elif kind == "redacted_thinking":
            content.append(Thinking(redacted=b.get("data"), family=NAME))
        else:
            content.append(Opaque(NAME, b))
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=content,
        stop_reason=body.get("stop_reason") or "end_turn",
        stop_sequence=body.get("stop_sequence"),
        usage=decode_usage(body.get("usage")),
    )


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


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(err.kind, "api_error"), "message": err.message},
        "request_id": request_id,
    }


def error_bytes(err: GatewayError, request_id: str) -> bytes:
    return dumps(encode_error(err, request_id))
