"""OpenAI Chat Completions: ``POST /v1/chat/completions``.

Both directions of the wire live here: client bodies in and out (``decode_request``,
``encode_response``, ``StreamEncoder``, ``encode_error``) and upstream bodies out and in
(``encode_request``, ``decode_response``), used by the OpenAI-style providers. Parsing an upstream
chunk stream into internal events is the provider's job (``providers/openai.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from typing import Any

from ..codec import dumps_str, loads, sse
from ..model import (
    BlockStart,
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
    StopReason,
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
    ToolResult,
    Usage,
    kind_for_status,
)
from ..model.errors import STATUS_BY_KIND
from .base import data_url, expect_type, number, optional, parse_data_url, require

NAME = "openai_chat"
STREAM_CONTENT_TYPE = "text/event-stream"
THINKING_FAMILY = "openai"  # who can read reasoning that came over this wire

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

# kind -> (error.type, error.code); err.code overrides the code when set.
ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    "invalid_request": ("invalid_request_error", None),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "billing": ("insufficient_quota", "insufficient_quota"),
    "permission": ("invalid_request_error", "permission_denied"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "unavailable": ("server_error", "service_unavailable"),
    "timeout": ("server_error", "timeout"),
    "overloaded": ("server_error", "server_overloaded"),
}
_KIND_BY_CODE = {
    "invalid_api_key": "authentication",
    "insufficient_quota": "billing",
    "rate_limit_exceeded": "rate_limit",
    "requests": "rate_limit",
    "tokens": "rate_limit",
    "model_not_found": "not_found",
    "permission_denied": "permission",
    "server_error": "api_error",
    "service_unavailable": "unavailable",
    "server_overloaded": "overloaded",
    "invalid_request_error": "invalid_request",
    "context_length_exceeded": "invalid_request",
}

# Request fields kept in ``req.extras`` and forwarded to Chat upstreams as given.
EXTRA_FIELDS = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
    "service_tier",
    "store",
    "metadata",
    "prompt_cache_key",
    "safety_identifier",
    "prompt_cache_retention",
    "verbosity",
    "prediction",
    "modalities",
    "audio",
    "web_search_options",
)

TOOL_NAMES_KEY = "openai_tool_names"  # req.extras: {upstream (shortened) name: original name}
MAX_TOOL_NAME = 64
MAX_CALL_ID = 40  # OpenAI: "Expected a string with maximum length 40"
_TOOL_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# ---------------------------------------------------------------- decoding (client Chat body -> model)


def decode_request(
    body: dict[str, Any],
    *,
    model: str | None = None,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
) -> ChatRequest:
    model = model or expect_type(body.get("model"), str, "model")
    require(bool(model), "model: must not be empty", "model")
    for legacy in ("functions", "function_call"):
        require(legacy not in body, f"{legacy}: the legacy functions API is not supported; use tools", legacy)
    is_stream = bool(optional(body, "stream", bool)) if stream is None else stream
    stream_options = optional(body, "stream_options", dict)
    require(
        stream_options is None or is_stream,
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
    )
    messages_raw = expect_type(body.get("messages"), list, "messages")
    require(bool(messages_raw), "messages: must contain at least one message", "messages")

    req = ChatRequest(model=model, stream=is_stream, protocol=NAME, raw=body)
    _decode_messages(messages_raw, req)
    req.max_tokens = _decode_max_tokens(body)
    req.temperature = number(body, "temperature", 0, 2)
    req.top_p = number(body, "top_p", 0, 1)
    req.stop = _decode_stop(body.get("stop"))
    req.tools = [_decode_tool(t, f"tools.{i}") for i, t in enumerate(optional(body, "tools", list) or [])]
    req.tool_choice = _decode_tool_choice(body.get("tool_choice"), req)
    parallel = optional(body, "parallel_tool_calls", bool)
    if parallel is not None:
        req.tool_choice = req.tool_choice or ToolChoice(mode="auto")
        req.tool_choice.parallel = parallel
    req.response_format = _decode_response_format(optional(body, "response_format", dict))
    req.thinking = _decode_reasoning(body)
    req.include_usage = bool(stream_options and stream_options.get("include_usage") is True)
    user = optional(body, "user", str) or optional(body, "safety_identifier", str)
    req.user_id = user or None
    req.extras = _decode_extras(body)
    return req


def _decode_max_tokens(body: dict[str, Any]) -> int | None:
    # max_completion_tokens is the current name; when both are sent it wins.
    for key in ("max_completion_tokens", "max_tokens"):
        value = optional(body, key, int)
        if value is not None:
            require(value >= 1, f"{key}: must be >= 1", key)
            return value
    return None


def _decode_stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    expect_type(stop, list, "stop")
    return [expect_type(s, str, f"stop.{i}") for i, s in enumerate(stop) if s != ""]


def _decode_extras(body: dict[str, Any]) -> dict[str, Any]:
    extras = {k: body[k] for k in EXTRA_FIELDS if body.get(k) is not None}
    n = extras.get("n")
    if n is not None:
        expect_type(n, int, "n")
        require(n == 1, "n: only n=1 is supported; the gateway returns a single choice", "n")
    if "seed" in extras:
        expect_type(extras["seed"], int, "seed")
    for key in ("presence_penalty", "frequency_penalty"):
        number(body, key, -2, 2)
    if "logprobs" in extras:
        expect_type(extras["logprobs"], bool, "logprobs")
    if "top_logprobs" in extras:
        number(body, "top_logprobs", 0, 20)
    if "metadata" in extras:
        expect_type(extras["metadata"], dict, "metadata")
    return extras


def _text_of(content: Any, path: str) -> tuple[str, dict[str, Any] | None]:
    """A system/developer/tool content (string or array of text parts) as one string."""
    if isinstance(content, str):
        return content, None
    expect_type(content, list, path)
    texts, cache = [], None
    for j, part in enumerate(content):
        expect_type(part, dict, f"{path}.{j}")
        require(
            part.get("type") == "text", f"{path}.{j}.type: only text parts are allowed here", f"{path}.{j}"
        )
        texts.append(expect_type(part.get("text"), str, f"{path}.{j}.text"))
        cache = part.get("cache_control") or cache
    return "\n".join(texts), cache


def _decode_messages(messages_raw: list[Any], req: ChatRequest) -> None:
    names_by_id: dict[str, str] = {}
    for i, m in enumerate(messages_raw):
        path = f"messages.{i}"
        expect_type(m, dict, path)
        role = m.get("role")
        if role in ("system", "developer"):
            text, cache = _text_of(m.get("content"), f"{path}.content")
            if text:
                req.system.append(Text(text, cache))
        elif role == "user":
            parts = _decode_user_content(m.get("content"), f"{path}.content")
            last = req.messages[-1] if req.messages else None
            if last is not None and _is_tool_results(last):
                last.content.extend(parts)  # a user turn right after tool results joins them
            elif parts:
                req.messages.append(Message("user", parts))
        elif role == "assistant":
            msg = _decode_assistant(m, path)
            for p in msg.content:
                if isinstance(p, ToolCall):
                    names_by_id[p.id] = p.name
            if msg.content:
                req.messages.append(msg)
        elif role == "tool":
            call_id = expect_type(m.get("tool_call_id"), str, f"{path}.tool_call_id")
            result = ToolResult(
                call_id=call_id,
                content=_decode_tool_content(m.get("content"), f"{path}.content"),
                name=names_by_id.get(call_id),
            )
            last = req.messages[-1] if req.messages else None
            if last is not None and _is_tool_results(last):
                at = sum(1 for p in last.content if isinstance(p, ToolResult))
                last.content.insert(at, result)  # results stay ahead of any text
            else:
                req.messages.append(Message("user", [result]))
        elif role == "function":
            raise GatewayError(
                "invalid_request",
                f"{path}.role: legacy 'function' messages are not supported; use tool",
                param=f"{path}.role",
            )
        else:
            raise GatewayError(
                "invalid_request",
                f"{path}.role: must be one of system, developer, user, assistant, tool",
                param=f"{path}.role",
            )


def _is_tool_results(m: Message) -> bool:
    return m.role == "user" and bool(m.content) and isinstance(m.content[0], ToolResult)


def _decode_user_content(content: Any, path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    expect_type(content, list, path)
    parts = [_decode_part(p, f"{path}.{j}") for j, p in enumerate(content)]
    return [p for p in parts if not (isinstance(p, Text) and not p.text)]


def _decode_tool_content(content: Any, path: str) -> list[Text | Image | Document]:
    if content is None or isinstance(content, str):
        return [Text(content)] if content else []
    expect_type(content, list, path)
    out: list[Text | Image | Document] = []
    for j, p in enumerate(content):
        part = _decode_part(p, f"{path}.{j}")
        require(isinstance(part, (Text, Image, Document)), f"{path}.{j}: unsupported part in a tool message")
        out.append(part)  # type: ignore[arg-type]
    return out


def _decode_part(p: Any, path: str) -> Part:
    expect_type(p, dict, path)
    kind = p.get("type")
    cc = p.get("cache_control")
    if kind == "text":
        return Text(expect_type(p.get("text"), str, f"{path}.text"), cc)
    if kind == "image_url":
        spec = p.get("image_url")
        if isinstance(spec, str):
            spec = {"url": spec}
        expect_type(spec, dict, f"{path}.image_url")
        url = expect_type(spec.get("url"), str, f"{path}.image_url.url")
        detail = optional(spec, "detail", str, f"{path}.image_url.detail")
        parsed = parse_data_url(url)
        if parsed is not None:
            return Image(media_type=parsed[0], data=parsed[1], detail=detail, cache_control=cc)
        require(
            url.startswith(("http://", "https://")), f"{path}.image_url.url: expected an http(s) or data URL"
        )
        return Image(url=url, detail=detail, cache_control=cc)
    if kind == "file":
        spec = expect_type(p.get("file"), dict, f"{path}.file")
        filename = optional(spec, "filename", str, f"{path}.file.filename")
        file_data = optional(spec, "file_data", str, f"{path}.file.file_data")
        if file_data is None:
            require(
                isinstance(spec.get("file_id"), str),
                f"{path}.file: needs file_data or file_id",
                f"{path}.file",
            )
            return Opaque(NAME, p)  # an OpenAI Files id: only an OpenAI upstream can resolve it
        parsed = parse_data_url(file_data)
        media_type, data = parsed if parsed else (_guess_media_type(filename), file_data)
        if media_type.startswith("text/"):
            text = _b64_text(data)
            if text is not None:
                return Document(
                    media_type="text/plain", text=text, filename=filename, title=filename, cache_control=cc
                )
        return Document(media_type=media_type, data=data, filename=filename, cache_control=cc)
    if kind in ("input_audio", "refusal"):
        if kind == "refusal":
            return Text(expect_type(p.get("refusal"), str, f"{path}.refusal"))
        return Opaque(NAME, p)
    raise GatewayError(
        "invalid_request", f"{path}.type: unsupported content part type {kind!r}", param=f"{path}.type"
    )


def _guess_media_type(filename: str | None) -> str:
    ext = (filename or "").rsplit(".", 1)[-1].lower()
    return {"txt": "text/plain", "md": "text/markdown", "csv": "text/csv"}.get(ext, "application/pdf")


def _b64_text(data: str) -> str | None:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _decode_assistant(m: dict[str, Any], path: str) -> Message:
    parts: list[Part] = []
    reasoning = m.get("reasoning_content") or m.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Thinking(text=reasoning, family=THINKING_FAMILY))
    content = m.get("content")
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif content is not None:
        expect_type(content, list, f"{path}.content")
        for j, p in enumerate(content):
            part = _decode_part(p, f"{path}.content.{j}")
            require(
                isinstance(part, Text), f"{path}.content.{j}: assistant content takes text or refusal parts"
            )
            if part.text:  # type: ignore[union-attr]
                parts.append(part)
    refusal = m.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Text(refusal))
    for k, tc in enumerate(optional(m, "tool_calls", list, f"{path}.tool_calls") or []):
        parts.append(_decode_tool_call(tc, f"{path}.tool_calls.{k}"))
    return Message("assistant", parts)


def _decode_tool_call(tc: Any, path: str) -> ToolCall:
    expect_type(tc, dict, path)
    call_id = expect_type(tc.get("id"), str, f"{path}.id")
    if tc.get("type") == "custom":
        spec = expect_type(tc.get("custom"), dict, f"{path}.custom")
        text = optional(spec, "input", str, f"{path}.custom.input") or ""
        name = expect_type(spec.get("name"), str, f"{path}.custom.name")
        return ToolCall(id=call_id, name=name, arguments={"input": text}, raw_arguments=text, custom=True)
    fn = expect_type(tc.get("function"), dict, f"{path}.function")
    name = expect_type(fn.get("name"), str, f"{path}.function.name")
    args = fn.get("arguments")
    if isinstance(args, dict):  # lenient: some clients send the object itself
        return ToolCall(id=call_id, name=name, arguments=args, raw_arguments=dumps_str(args))
    raw = optional(fn, "arguments", str, f"{path}.function.arguments")
    return ToolCall(id=call_id, name=name, arguments=parse_arguments(raw), raw_arguments=raw)


def _decode_tool(t: Any, path: str) -> Tool:
    expect_type(t, dict, path)
    kind = t.get("type", "function")
    if kind == "custom":
        spec = expect_type(t.get("custom"), dict, f"{path}.custom")
        return Tool(
            name=expect_type(spec.get("name"), str, f"{path}.custom.name"),
            description=optional(spec, "description", str, f"{path}.custom.description"),
            schema={"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
            custom=True,
            raw=t,
        )
    require(kind == "function", f"{path}.type: must be 'function' or 'custom'", f"{path}.type")
    fn = expect_type(t.get("function"), dict, f"{path}.function")
    schema = optional(fn, "parameters", dict, f"{path}.function.parameters")
    return Tool(
        name=expect_type(fn.get("name"), str, f"{path}.function.name"),
        description=optional(fn, "description", str, f"{path}.function.description"),
        schema=schema if schema is not None else {"type": "object", "properties": {}},
        strict=optional(fn, "strict", bool, f"{path}.function.strict"),
        cache_control=t.get("cache_control"),
    )


def _decode_tool_choice(tc: Any, req: ChatRequest) -> ToolChoice | None:
    if tc is None:
        return None
    if isinstance(tc, str):
        modes = {"auto": "auto", "required": "any", "none": "none"}
        require(tc in modes, "tool_choice: must be none, auto, required or an object", "tool_choice")
        return ToolChoice(mode=modes[tc])  # type: ignore[arg-type]
    expect_type(tc, dict, "tool_choice")
    kind = tc.get("type")
    if kind in ("function", "custom"):
        spec = expect_type(tc.get(kind), dict, f"tool_choice.{kind}")
        return ToolChoice(mode="tool", name=expect_type(spec.get("name"), str, f"tool_choice.{kind}.name"))
    require(
        kind == "allowed_tools",
        "tool_choice.type: must be function, custom or allowed_tools",
        "tool_choice.type",
    )
    spec = expect_type(tc.get("allowed_tools"), dict, "tool_choice.allowed_tools")
    mode = spec.get("mode", "auto")
    require(mode in ("auto", "required"), "tool_choice.allowed_tools.mode: must be auto or required")
    names = []
    for i, entry in enumerate(expect_type(spec.get("tools"), list, "tool_choice.allowed_tools.tools")):
        expect_type(entry, dict, f"tool_choice.allowed_tools.tools.{i}")
        inner = entry.get(entry.get("type", "function"))
        name = inner.get("name") if isinstance(inner, dict) else entry.get("name")
        names.append(expect_type(name, str, f"tool_choice.allowed_tools.tools.{i}.name"))
    # The internal model has no allow-list: narrow the tool list instead (same effect upstream).
    req.tools = [t for t in req.tools if t.name in names]
    if mode == "required" and len(req.tools) == 1:
        return ToolChoice(mode="tool", name=req.tools[0].name)
    return ToolChoice(mode="any" if mode == "required" else "auto")


def _decode_response_format(rf: dict[str, Any] | None) -> ResponseFormat | None:
    if rf is None:
        return None
    kind = rf.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(type="json_object")
    require(
        kind == "json_schema",
        "response_format.type: must be text, json_object or json_schema",
        "response_format.type",
    )
    spec = expect_type(rf.get("json_schema"), dict, "response_format.json_schema")
    return ResponseFormat(
        type="json_schema",
        schema=optional(spec, "schema", dict, "response_format.json_schema.schema") or {},
        name=optional(spec, "name", str, "response_format.json_schema.name"),
        strict=optional(spec, "strict", bool, "response_format.json_schema.strict"),
    )


def _decode_reasoning(body: dict[str, Any]) -> ThinkingConfig | None:
    effort = optional(body, "reasoning_effort", str)
    if effort is not None:
        require(
            effort in REASONING_EFFORTS,
            f"reasoning_effort: must be one of {', '.join(REASONING_EFFORTS)}",
            "reasoning_effort",
        )
        return ThinkingConfig(enabled=effort != "none", effort=effort)
    spec = optional(body, "reasoning", dict)  # OpenRouter's unified reasoning object, accepted as a courtesy
    if spec is None:
        return None
    if spec.get("enabled") is False or spec.get("effort") == "none":
        return ThinkingConfig(enabled=False, effort="none")
    effort = optional(spec, "effort", str, "reasoning.effort")
    budget = optional(spec, "max_tokens", int, "reasoning.max_tokens")
    return ThinkingConfig(
        enabled=True, effort=effort, budget_tokens=budget, include=spec.get("exclude") is not True
    )


# ---------------------------------------------------------------- tool arguments, names and ids


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """A function-call ``arguments`` string as an object: parsed, repaired, or wrapped as {"raw": ...}."""
    if raw is None or not raw.strip():
        return {}
    value = _try_json(raw)
    if value is _INVALID:
        value = _try_json(repair_json(raw))
    if isinstance(value, str):  # double-encoded: "{\"a\":1}"
        inner = _try_json(value)
        if isinstance(inner, dict):
            return inner
    return value if isinstance(value, dict) else {"raw": raw}


_INVALID = object()


def _try_json(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return _INVALID


def repair_json(text: str) -> str:
    """Best-effort fix of truncated JSON: close strings and brackets, drop trailing commas."""
    out: list[str] = []
    closers: list[str] = []
    in_string = escaped = False
    for ch in text.strip():
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            _drop_trailing_comma(out)
            if closers:
                closers.pop()
        out.append(ch)
    if in_string:
        if escaped:
            out.pop()
        out.append('"')
    _drop_trailing_comma(out)
    if out and out[-1] == ":":
        out.append("null")
    out.extend(reversed(closers))
    return "".join(out)


def _drop_trailing_comma(out: list[str]) -> None:
    i = len(out) - 1
    while i >= 0 and out[i].isspace():
        i -= 1
    if i >= 0 and out[i] == ",":
        del out[i:]


def arguments_text(call: ToolCall) -> str:
    """The ``arguments`` string for a call: the original text when it is valid JSON (or could not
    be repaired), else the repaired object."""
    raw = call.raw_arguments
    if raw and (_try_json(raw) is not _INVALID or call.arguments == {"raw": raw}):
        return raw
    return dumps_str(call.arguments)


def _shorten(value: str, limit: int) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: limit - 9]}_{digest}"


def upstream_tool_name(name: str) -> str:
    """A tool name OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$``): unchanged when valid, else prefix + hash."""
    if _TOOL_NAME_OK.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "tool"
    return _shorten(cleaned, MAX_TOOL_NAME)


def upstream_call_id(call_id: str) -> str:
    """A tool-call id within OpenAI's 40-character limit, the same for the call and its result."""
    return call_id if len(call_id) <= MAX_CALL_ID else _shorten(call_id, MAX_CALL_ID)


def original_tool_name(req: ChatRequest | None, name: str) -> str:
    """Undo ``upstream_tool_name`` using the map ``encode_request`` left on the request."""
    names = (req.extras.get(TOOL_NAMES_KEY) if req is not None else None) or {}
    return names.get(name, name)


# ---------------------------------------------------------------- encoding (model -> upstream Chat body)


def encode_request(
    req: ChatRequest,
    *,
    max_tokens_field: str = "max_completion_tokens",
    reasoning_history: str | None = None,
) -> dict[str, Any]:
    """The internal request as a Chat Completions body for an OpenAI-style upstream.

    ``max_tokens_field`` is ``max_completion_tokens`` for OpenAI, ``max_tokens`` for older
    compatible servers. ``reasoning_history`` names the assistant-message field that carries
    OpenAI-family reasoning back (``reasoning_content``/``reasoning``); None drops it. Tool
    names are made OpenAI-safe; the map back is left in ``req.extras[TOOL_NAMES_KEY]``.
    """
    names: dict[str, str] = {}

    def tool_name(name: str) -> str:
        short = upstream_tool_name(name)
        if short != name:
            names[short] = name
        return short

    messages: list[dict[str, Any]] = []
    system = req.system_text()
    if system:
        messages.append({"role": "system", "content": system})
    for m in req.messages:
        if m.role == "assistant":
            msg = _encode_assistant(m, tool_name, reasoning_history)
            if msg is not None:
                messages.append(msg)
        else:
            messages.extend(_encode_user(m))
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # the gateway meters every stream
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop"] = req.stop[:4]
    tools = [t for t in (_encode_tool(t, tool_name) for t in req.tools) if t is not None]
    if tools:
        body["tools"] = tools
        tc = req.tool_choice
        if tc is not None:
            body["tool_choice"] = _encode_tool_choice(tc, tool_name, req.tools)
            if tc.parallel is not None:
                body["parallel_tool_calls"] = tc.parallel
    rf = req.response_format
    if rf is not None and rf.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif rf is not None and rf.type == "json_schema":
        spec: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
        if rf.strict is not None:
            spec["strict"] = rf.strict
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    effort = reasoning_effort(req.thinking)
    if effort is not None:
        body["reasoning_effort"] = effort
    for key in EXTRA_FIELDS:
        if key in req.extras:
            body[key] = req.extras[key]
    if req.user_id and req.user_id != req.extras.get("safety_identifier"):
        body["user"] = req.user_id
    if names:
        req.extras[TOOL_NAMES_KEY] = names
    else:
        req.extras.pop(TOOL_NAMES_KEY, None)
    return body


def reasoning_effort(thinking: ThinkingConfig | None) -> str | None:
    """A ``reasoning_effort`` level for the thinking settings (budgets map to levels)."""
    if thinking is None:
        return None
    if not thinking.enabled:
        return "none"
    if thinking.effort:
        return thinking.effort
    budget = thinking.budget_tokens
    if budget is None:
        return None  # adaptive / model default
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def _encode_tool(t: Tool, tool_name: Any) -> dict[str, Any] | None:
    if t.raw is not None and t.raw.get("type") not in (None, "function", "custom"):
        return None  # another family's server tool has no Chat form
    if t.custom:
        raw = t.raw or {}
        spec: dict[str, Any] = {"name": tool_name(t.name)}
        if t.description:
            spec["description"] = t.description
        fmt = raw.get("format") or (raw.get("custom") or {}).get("format")
        if fmt:
            spec["format"] = fmt
        return {"type": "custom", "custom": spec}
    fn: dict[str, Any] = {"name": tool_name(t.name)}
    if t.description:
        fn["description"] = t.description
    fn["parameters"] = t.schema or {"type": "object", "properties": {}}
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}


def _encode_tool_choice(tc: ToolChoice, tool_name: Any, tools: list[Tool]) -> Any:
    if tc.mode == "tool" and tc.name:
        custom = any(t.custom and t.name == tc.name for t in tools)
        kind = "custom" if custom else "function"
        return {"type": kind, kind: {"name": tool_name(tc.name)}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(tc.mode, "auto")


def _encode_assistant(m: Message, tool_name: Any, reasoning_history: str | None) -> dict[str, Any] | None:
    text = "".join(p.text for p in m.content if isinstance(p, Text))
    reasoning = "".join(p.text for p in m.content if isinstance(p, Thinking) and p.family == THINKING_FAMILY)
    calls = []
    for p in m.content:
        if not isinstance(p, ToolCall):
            continue
        if p.custom:
            value = p.arguments.get("input")
            call = {
                "type": "custom",
                "custom": {"name": tool_name(p.name), "input": value if isinstance(value, str) else ""},
            }
        else:
            call = {
                "type": "function",
                "function": {"name": tool_name(p.name), "arguments": arguments_text(p)},
            }
        calls.append({"id": upstream_call_id(p.id), **call})
    if not text.strip() and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text if text.strip() else None}
    if reasoning and reasoning_history:
        msg[reasoning_history] = reasoning
    if calls:
        msg["tool_calls"] = calls
    return msg


def _encode_user(m: Message) -> list[dict[str, Any]]:
    """One internal user turn: a ``tool`` message per result first, then one user message."""
    out: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []
    for p in m.content:
        if not isinstance(p, ToolResult):
            continue
        texts = []
        moved = []
        for c in p.content:
            if isinstance(c, Text):
                texts.append(c.text)
            elif isinstance(c, Document) and c.text is not None:
                texts.append(c.text)
            elif (block := _encode_part(c)) is not None:
                moved.append(block)
        content = "\n".join(texts)
        if p.is_error:
            content = f"Error: {content}" if content else "Error"
        out.append({"role": "tool", "tool_call_id": upstream_call_id(p.call_id), "content": content})
        if moved:  # Chat tool messages take text only: attachments follow as user content
            attachments.append(
                {"type": "text", "text": f"[attachments from tool result {upstream_call_id(p.call_id)}]"}
            )
            attachments.extend(moved)
    rest = [b for b in (_encode_part(p) for p in m.content if not isinstance(p, ToolResult)) if b is not None]
    parts = attachments + rest
    if not parts:
        return out
    if all(b["type"] == "text" for b in parts) and len(parts) == 1:
        out.append({"role": "user", "content": parts[0]["text"]})
    else:
        out.append({"role": "user", "content": parts})
    return out


def _encode_part(p: Part) -> dict[str, Any] | None:
    if isinstance(p, Text):
        return {"type": "text", "text": p.text} if p.text else None
    if isinstance(p, Image):
        url = data_url(p.media_type or "image/png", p.data) if p.data is not None else p.url
        spec: dict[str, Any] = {"url": url}
        if p.detail:
            spec["detail"] = p.detail
        return {"type": "image_url", "image_url": spec}
    if isinstance(p, Document):
        if p.text is not None:
            head = f"{p.title}\n\n" if p.title else ""
            return {"type": "text", "text": head + p.text}
        if p.data is None:
            raise GatewayError(
                "invalid_request",
                "documents by URL cannot be sent to a Chat Completions upstream; inline them as base64",
            )
        filename = p.filename or p.title or "document.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": data_url(p.media_type, p.data)}}
    if isinstance(p, Opaque) and p.family == NAME:
        return p.data
    return None  # thinking, tool calls and other families' blocks have no place in a user message


# ---------------------------------------------------------------- usage


def encode_usage(u: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        prompt_details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def decode_usage(u: dict[str, Any] | None) -> Usage:
    """Chat usage -> internal: ``prompt_tokens`` includes cached and cache-written tokens."""
    if not isinstance(u, dict):
        return Usage()
    prompt = _int(u.get("prompt_tokens"))
    details = u.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    if not cached:
        cached = _int(u.get("prompt_cache_hit_tokens"))  # DeepSeek
    written = _int(details.get("cache_write_tokens")) if isinstance(details, dict) else 0
    completion = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=max(0, prompt - cached - written),
        output_tokens=_int(u.get("completion_tokens")),
        cache_read_tokens=cached,
        cache_write_5m_tokens=written,
        reasoning_tokens=_int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# ---------------------------------------------------------------- responses


def chat_id(ident: str | None, fallback: str = "") -> str:
    ident = ident or fallback
    return ident if ident.startswith("chatcmpl-") else f"chatcmpl-{ident}"


def finish_reason(stop: StopReason | None, saw_tool_call: bool) -> str:
    reason = FINISH_REASONS.get(stop or "end_turn", "stop")
    if reason == "tool_calls" and not saw_tool_call:
        return "stop"  # never announce tool calls that were not sent
    return reason


def stop_reason(finish: str | None, saw_tool_call: bool, refusal: bool = False) -> StopReason:
    """An upstream ``finish_reason`` as a stop reason, checked against what actually arrived."""
    if finish == "length":
        return "max_tokens"
    if finish == "content_filter" or refusal:
        return "refusal"
    return "tool_use" if saw_tool_call else "end_turn"


def _encode_tool_call(p: ToolCall) -> dict[str, Any]:
    if p.custom:
        value = p.arguments.get("input")
        return {
            "id": p.id,
            "type": "custom",
            "custom": {"name": p.name, "input": value if isinstance(value, str) else ""},
        }
    return {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": arguments_text(p)}}


def _wants_reasoning(req: ChatRequest | None) -> bool:
    return req is None or req.thinking is None or req.thinking.include


def encode_response(resp: ChatResponse, req: ChatRequest | None = None) -> dict[str, Any]:
    text = "".join(p.text for p in resp.content if isinstance(p, Text))
    calls = [_encode_tool_call(p) for p in resp.content if isinstance(p, ToolCall)]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    reasoning = "".join(p.text for p in resp.content if isinstance(p, Thinking))
    if reasoning and _wants_reasoning(req):
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return {
        "id": chat_id(resp.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.model or (req.model if req else ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.stop_reason, bool(calls)),
            }
        ],
        "usage": encode_usage(resp.usage),
    }


def decode_response(body: dict[str, Any]) -> ChatResponse:
    """A ``chat.completion`` body as an internal response. All choices are merged into one."""
    thinking: list[Part] = []
    content: list[Part] = []
    calls: list[Part] = []
    finish = None
    refusal = False
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        msg = choice.get("message") or {}
        reasoning = reasoning_text(msg)
        if reasoning:
            thinking.append(Thinking(text=reasoning, family=THINKING_FAMILY))
        if isinstance(msg.get("content"), str) and msg["content"]:
            content.append(Text(msg["content"]))
        if isinstance(msg.get("refusal"), str) and msg["refusal"]:
            content.append(Text(msg["refusal"]))
            refusal = True
        for tc in msg.get("tool_calls") or []:
            if isinstance(tc, dict):
                calls.append(_response_tool_call(tc))
        finish = finish if finish == "tool_calls" else choice.get("finish_reason") or finish
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=thinking + content + calls,
        stop_reason=stop_reason(finish, bool(calls), refusal),
        usage=decode_usage(body.get("usage")),
    )


def _response_tool_call(tc: dict[str, Any]) -> ToolCall:
    if tc.get("type") == "custom":
        spec = tc.get("custom") or {}
        text = spec.get("input") if isinstance(spec.get("input"), str) else ""
        return ToolCall(
            id=tc.get("id") or "",
            name=spec.get("name") or "",
            arguments={"input": text},
            raw_arguments=text,
            custom=True,
        )
    fn = tc.get("function") or {}
    raw = fn.get("arguments")
    if isinstance(raw, dict):
        raw = dumps_str(raw)
    raw = raw if isinstance(raw, str) else None
    return ToolCall(
        id=tc.get("id") or "", name=fn.get("name") or "", arguments=parse_arguments(raw), raw_arguments=raw
    )


def reasoning_text(obj: dict[str, Any]) -> str:
    """Reasoning text of a message or delta: ``reasoning_content`` (DeepSeek, vLLM), ``reasoning``
    (OpenRouter), or the text/summary items of OpenRouter's ``reasoning_details``."""
    for key in ("reasoning_content", "reasoning"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    texts = []
    for item in obj.get("reasoning_details") or []:
        if isinstance(item, dict):
            value = item.get("text") if item.get("type") == "reasoning.text" else item.get("summary")
            if isinstance(value, str):
                texts.append(value)
    return "".join(texts)


# ---------------------------------------------------------------- streaming (internal events -> client chunks)


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
        self.reasoning = _wants_reasoning(req)

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


# ---------------------------------------------------------------- errors


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    etype, code = ERROR_TYPES.get(err.kind, ("server_error", None))
    return {"error": {"message": err.message, "type": etype, "param": err.param, "code": err.code or code}}


def decode_error(obj: Any) -> StreamError:
    """An in-band ``{"error": {...}}`` (OpenAI, OpenRouter, vLLM shapes) as a stream error."""
    if not isinstance(obj, dict):
        return StreamError("api_error", str(obj) if obj else "upstream stream error", 502)
    message = obj.get("message")
    if not isinstance(message, str) or not message:
        message = "upstream stream error"
    code, etype = obj.get("code"), obj.get("type")
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        kind = kind_for_status(code)
    else:
        kind = _KIND_BY_CODE.get(str(code), _KIND_BY_CODE.get(str(etype), "api_error"))
    return StreamError(kind, message, STATUS_BY_KIND.get(kind, 500))
