"""OpenAI Responses: ``POST /v1/responses`` (Codex, openai-python ``client.responses``).

The gateway is stateless: a request must carry the whole conversation in ``input``. Anything that
points at server-side state (``previous_response_id``, ``conversation``, ``item_reference``,
``background``) is refused with a clear 400.

Reasoning round-trips through ``encrypted_content``. OpenAI's own blobs are kept as they are
(family ``"openai"``); a signature from another family (an Anthropic thinking signature, say) is
wrapped in a gateway carrier, ``gwtui1:<family>:<s|r>:<value>``, so it comes back to the provider
that can verify it when the client replays the item.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ..codec import dumps, dumps_str, loads, sse
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
    ToolResult,
    Usage,
)
from .base import data_url, expect_type, number, optional, parse_data_url, require

NAME = "openai_responses"
STREAM_CONTENT_TYPE = "text/event-stream"
FAMILY = "openai"  # who can verify a plain encrypted_content blob
CARRIER = "gwtui1:"

FORWARD_HEADERS = ("openai-beta", "session_id", "originator")
# Request fields with no place in the internal model, kept in ``req.extras`` under the same name.
EXTRA_KEYS = (
    "metadata",
    "store",
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "truncation",
    "max_tool_calls",
    "top_logprobs",
    "prompt",
    "stream_options",
)
# The subset an upstream Responses body may receive from ``extras`` (``store`` is always false).
UPSTREAM_EXTRA_TYPES: dict[str, type | tuple[type, ...]] = {
    "metadata": dict,
    "prompt_cache_key": str,
    "prompt_cache_retention": str,
    "service_tier": str,
    "truncation": str,
    "max_tool_calls": int,
    "top_logprobs": int,
}
STATELESS = "this gateway is stateless: send the full conversation in input"

ERRORS: dict[str, tuple[str, str | None]] = {  # kind -> (error.type, default error.code), as openai_chat
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
_CONTEXT_HINTS = (
    "context length",
    "context window",
    "context_length",
    "prompt is too long",
    "maximum context",
)


# ---------------------------------------------------------------- decoding (client JSON -> model)


def decode_request(
    body: dict[str, Any],
    *,
    model: str | None = None,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
) -> ChatRequest:
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise GatewayError("invalid_request", f"{STATELESS}; {key} is not supported", param=key)
    if body.get("background"):
        raise GatewayError(
            "invalid_request", f"{STATELESS}; background responses are not supported", param="background"
        )
    model = model or expect_type(body.get("model"), str, "model")
    require(bool(model), "model: must not be empty", "model")

    system: list[Text] = []
    instructions = optional(body, "instructions", str)
    if instructions:
        system.append(Text(instructions))
    raw_input = body.get("input")
    if raw_input is None:
        require(body.get("prompt") is not None, "input: field required", "input")
        messages: list[Message] = []
    elif isinstance(raw_input, str):
        messages = [Message("user", [Text(raw_input)])]
    else:
        messages = _decode_input(expect_type(raw_input, list, "input"), system)

    tools = [_decode_tool(t, f"tools.{i}") for i, t in enumerate(optional(body, "tools", list) or [])]
    parallel = optional(body, "parallel_tool_calls", bool)
    tool_choice, allowed = _decode_tool_choice(body.get("tool_choice"), parallel)
    if allowed is not None:  # allowed_tools: only these may be called
        tools = [t for t in tools if t.name in allowed]

    max_tokens = optional(body, "max_output_tokens", int)
    require(max_tokens is None or max_tokens >= 1, "max_output_tokens: must be >= 1", "max_output_tokens")
    text = optional(body, "text", dict) or {}
    req = ChatRequest(
        model=model,
        messages=messages,
        system=system,
        max_tokens=max_tokens,
        stream=bool(optional(body, "stream", bool)) if stream is None else stream,
        temperature=number(body, "temperature", 0, 2),
        top_p=number(body, "top_p", 0, 1),
        tools=tools,
        tool_choice=tool_choice,
        response_format=_decode_format(text.get("format")),
        thinking=_decode_reasoning(optional(body, "reasoning", dict)),
        user_id=optional(body, "safety_identifier", str) or optional(body, "user", str),
        protocol=NAME,
        raw=body,
    )
    for key in EXTRA_KEYS:
        if body.get(key) is not None:
            req.extras[key] = body[key]
    if isinstance(text.get("verbosity"), str):
        req.extras["verbosity"] = text["verbosity"]
    if headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        req.headers = {k: lowered[k] for k in FORWARD_HEADERS if k in lowered}
    return req


class _History:
    """Builds internal messages from Responses items, merging what belongs to one turn."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def _last(self, role: str) -> Message:
        if not self.messages or self.messages[-1].role != role:
            self.messages.append(Message(role, []))  # type: ignore[arg-type]
        return self.messages[-1]

    def assistant(self, part: Part) -> None:
        self._last("assistant").content.append(part)

    def user(self, parts: list[Part]) -> None:
        self._last("user").content.extend(parts)

    def result(self, part: Part) -> None:
        """Tool results go after earlier results and before any other content of the user turn."""
        content = self._last("user").content
        at = 0
        while at < len(content) and isinstance(content[at], ToolResult):
            at += 1
        content.insert(at, part)


def _decode_input(items: list[Any], system: list[Text]) -> list[Message]:
    history = _History()
    for i, item in enumerate(items):
        path = f"input.{i}"
        expect_type(item, dict, path)
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                system.extend(_system_texts(item.get("content"), path))
            elif role == "user":
                history.user(_decode_content(item.get("content"), path, assistant=False))
            elif role == "assistant":
                for part in _decode_content(item.get("content"), path, assistant=True):
                    history.assistant(part)
            else:
                raise GatewayError(
                    "invalid_request",
                    f"{path}.role: must be user, assistant, system or developer",
                    param=f"{path}.role",
                )
        elif kind == "function_call":
            history.assistant(_decode_call(item, path))
        elif kind == "custom_tool_call":
            call_input = item.get("input")
            history.assistant(
                ToolCall(
                    id=expect_type(item.get("call_id"), str, f"{path}.call_id"),
                    name=expect_type(item.get("name"), str, f"{path}.name"),
                    arguments={"input": expect_type(call_input, str, f"{path}.input")},
                    custom=True,
                )
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            history.result(_decode_output(item, path))
        elif kind == "reasoning":
            history.assistant(_decode_reasoning_item(item, path))
        elif kind == "item_reference":
            raise GatewayError(
                "invalid_request",
                f"{STATELESS}; {path}: item_reference is not supported, send the item itself",
                param=path,
            )
        else:
            require(isinstance(kind, str), f"{path}.type: expected string", f"{path}.type")
            # local_shell_call, web_search_call, compaction, ...: only a Responses upstream understands them
            opaque = Opaque(NAME, {"item": item})
            if kind.endswith("_output"):
                history.user([opaque])
            else:
                history.assistant(opaque)
    return history.messages


def _system_texts(content: Any, path: str) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    expect_type(content, list, f"{path}.content")
    out = []
    for j, part in enumerate(content):
        expect_type(part, dict, f"{path}.content.{j}")
        require(
            part.get("type") in ("input_text", "text", "output_text"),
            f"{path}.content.{j}.type: system and developer messages take text only",
            f"{path}.content.{j}.type",
        )
        out.append(Text(expect_type(part.get("text"), str, f"{path}.content.{j}.text")))
    return out


def _decode_content(content: Any, path: str, *, assistant: bool) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    expect_type(content, list, f"{path}.content")
    return [_decode_part(p, f"{path}.content.{j}", assistant=assistant) for j, p in enumerate(content)]


def _decode_part(part: Any, path: str, *, assistant: bool = False) -> Part:
    expect_type(part, dict, path)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return Text(expect_type(part.get("text"), str, f"{path}.text"))
    if kind == "refusal" and assistant:
        return Text(expect_type(part.get("refusal"), str, f"{path}.refusal"))
    if kind == "input_image":
        url = part.get("image_url")
        if url is None:
            require(part.get("file_id") is not None, f"{path}: input_image needs image_url or file_id", path)
            return Opaque(NAME, {"part": part})  # an OpenAI Files reference
        expect_type(url, str, f"{path}.image_url")
        detail = optional(part, "detail", str, f"{path}.detail")
        parsed = parse_data_url(url)
        if parsed:
            return Image(media_type=parsed[0], data=parsed[1], detail=detail)
        return Image(url=url, detail=detail)
    if kind == "input_file":
        filename = optional(part, "filename", str, f"{path}.filename")
        file_data = optional(part, "file_data", str, f"{path}.file_data")
        if file_data is not None:
            parsed = parse_data_url(file_data)
            media_type, data = parsed if parsed else (_media_type_for(filename), file_data)
            return Document(media_type=media_type, data=data, filename=filename, title=filename)
        file_url = optional(part, "file_url", str, f"{path}.file_url")
        if file_url is not None:
            return Document(
                media_type=_media_type_for(filename), url=file_url, filename=filename, title=filename
            )
        require(
            part.get("file_id") is not None, f"{path}: input_file needs file_data, file_url or file_id", path
        )
        return Opaque(NAME, {"part": part})
    require(isinstance(kind, str), f"{path}.type: expected string", f"{path}.type")
    return Opaque(NAME, {"part": part})  # input_audio and newer part types: passthrough only


def _media_type_for(filename: str | None) -> str:
    name = (filename or "").lower()
    if name.endswith((".txt", ".md")):
        return "text/plain"
    return "application/pdf"


def _parse_arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = loads(text)
    except Exception:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": text}


def _decode_call(item: dict[str, Any], path: str) -> ToolCall:
    arguments = item.get("arguments")
    if arguments is None:
        arguments = ""
    expect_type(arguments, str, f"{path}.arguments")
    return ToolCall(
        id=expect_type(item.get("call_id"), str, f"{path}.call_id"),
        name=expect_type(item.get("name"), str, f"{path}.name"),
        arguments=_parse_arguments(arguments),
        raw_arguments=arguments,
    )


def _decode_output(item: dict[str, Any], path: str) -> ToolResult:
    call_id = expect_type(item.get("call_id"), str, f"{path}.call_id")
    output = item.get("output")
    is_error = False
    parts: list[Text | Image | Document] = []
    if isinstance(output, dict) and isinstance(output.get("content"), str):  # {content, success} form
        output, is_error = output["content"], output.get("success") is False
    if isinstance(output, str):
        parts = [Text(output)] if output else []
    elif isinstance(output, list):
        for j, p in enumerate(output):
            part = _decode_part(p, f"{path}.output.{j}")
            if not isinstance(part, (Text, Image, Document)):
                raise GatewayError(
                    "invalid_request",
                    f"{path}.output.{j}: tool output parts must be input_text, input_image or input_file",
                    param=f"{path}.output.{j}",
                )
            parts.append(part)
    elif output is not None:
        raise GatewayError(
            "invalid_request", f"{path}.output: expected string or array", param=f"{path}.output"
        )
    return ToolResult(call_id=call_id, content=parts, is_error=is_error)


def _decode_reasoning_item(item: dict[str, Any], path: str) -> Thinking:
    texts = []
    for j, s in enumerate(optional(item, "summary", list, f"{path}.summary") or []):
        expect_type(s, dict, f"{path}.summary.{j}")
        texts.append(expect_type(s.get("text", ""), str, f"{path}.summary.{j}.text"))
    encrypted = optional(item, "encrypted_content", str, f"{path}.encrypted_content")
    return uncarry("\n\n".join(texts), encrypted)


def carry(t: Thinking) -> str | None:
    """The ``encrypted_content`` that brings this reasoning back to whoever can verify it."""
    if t.family == FAMILY or t.family is None:
        return t.signature or None
    if t.redacted is not None:
        return f"{CARRIER}{t.family}:r:{t.redacted}"
    if t.signature:
        return f"{CARRIER}{t.family}:s:{t.signature}"
    return None


def uncarry(text: str, encrypted: str | None) -> Thinking:
    """Inverse of ``carry``: a replayed reasoning item as internal thinking."""
    if encrypted and encrypted.startswith(CARRIER):
        family, _, rest = encrypted[len(CARRIER) :].partition(":")
        mark, _, value = rest.partition(":")
        if family and mark in ("r", "s"):
            if mark == "r":
                return Thinking(redacted=value, family=family)
            return Thinking(text=text, signature=value, family=family)
    return Thinking(text=text, signature=encrypted or None, family=FAMILY)


def _custom_schema(tool: dict[str, Any]) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "string", "description": "The raw free-form input for this tool."}
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        syntax = fmt.get("syntax") or "lark"
        prop["description"] = (
            f"The raw input for this tool; it must match this {syntax} grammar:\n{fmt['definition']}"
        )
    return {"type": "object", "properties": {"input": prop}, "required": ["input"]}


def _decode_tool(t: Any, path: str) -> Tool:
    expect_type(t, dict, path)
    kind = t.get("type")
    if kind == "function":
        params = t.get("parameters")
        schema = expect_type(params, dict, f"{path}.parameters") if params is not None else None
        return Tool(
            name=expect_type(t.get("name"), str, f"{path}.name"),
            description=optional(t, "description", str, f"{path}.description"),
            schema=schema or {"type": "object", "properties": {}},
            strict=optional(t, "strict", bool, f"{path}.strict"),
        )
    if kind == "custom":
        return Tool(
            name=expect_type(t.get("name"), str, f"{path}.name"),
            description=optional(t, "description", str, f"{path}.description"),
            schema=_custom_schema(t),
            custom=True,
            raw=t,
        )
    require(isinstance(kind, str), f"{path}.type: expected string", f"{path}.type")
    return Tool(name=str(t.get("name") or kind), raw=t)  # hosted tool: web_search, file_search, mcp, ...


def _decode_tool_choice(tc: Any, parallel: bool | None) -> tuple[ToolChoice | None, set[str] | None]:
    allowed: set[str] | None = None
    if tc is None:
        choice = None if parallel is None else ToolChoice("auto")
    elif isinstance(tc, str):
        modes = {"auto": "auto", "required": "any", "none": "none"}
        require(tc in modes, "tool_choice: must be auto, required, none or an object", "tool_choice")
        choice = ToolChoice(modes[tc])  # type: ignore[arg-type]
    else:
        expect_type(tc, dict, "tool_choice")
        kind = tc.get("type")
        if kind in ("function", "custom"):
            choice = ToolChoice("tool", name=expect_type(tc.get("name"), str, "tool_choice.name"))
        elif kind == "allowed_tools":
            mode = tc.get("mode", "auto")
            require(
                mode in ("auto", "required"), "tool_choice.mode: must be auto or required", "tool_choice.mode"
            )
            listed = expect_type(tc.get("tools"), list, "tool_choice.tools")
            allowed = set()
            for j, entry in enumerate(listed):
                expect_type(entry, dict, f"tool_choice.tools.{j}")
                allowed.add(str(entry.get("name") or entry.get("type")))
            choice = ToolChoice("any" if mode == "required" else "auto")
        else:
            require(isinstance(kind, str), "tool_choice.type: expected string", "tool_choice.type")
            choice = ToolChoice("auto")  # forcing a hosted tool has no meaning elsewhere
    if choice is not None and parallel is not None:
        choice.parallel = parallel
    return choice, allowed


def _decode_format(fmt: Any) -> ResponseFormat | None:
    if fmt is None:
        return None
    expect_type(fmt, dict, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    require(
        kind == "json_schema",
        "text.format.type: must be text, json_object or json_schema",
        "text.format.type",
    )
    return ResponseFormat(
        "json_schema",
        schema=expect_type(fmt.get("schema"), dict, "text.format.schema"),
        name=optional(fmt, "name", str, "text.format.name"),
        strict=optional(fmt, "strict", bool, "text.format.strict"),
    )


def _decode_reasoning(reasoning: dict[str, Any] | None) -> ThinkingConfig | None:
    if reasoning is None:
        return None
    effort = optional(reasoning, "effort", str, "reasoning.effort")
    summary = optional(reasoning, "summary", str, "reasoning.summary") or optional(
        reasoning, "generate_summary", str, "reasoning.generate_summary"
    )
    if effort == "none" or (effort is None and summary is None):
        return None
    return ThinkingConfig(enabled=True, effort=effort, include=bool(summary))


# ---------------------------------------------------------------- encoding (model -> upstream Responses body)


def encode_request(req: ChatRequest) -> dict[str, Any]:
    """The internal request as a Responses body for an upstream (stateless: ``store`` is false)."""
    custom_names = {t.name for t in req.tools if t.custom}
    body: dict[str, Any] = {"model": req.model}
    if req.system:
        body["instructions"] = req.system_text()
    body["input"] = _encode_input(req, custom_names)
    tools = [t for t in (encode_tool(t, req) for t in req.tools) if t is not None]
    if tools:
        body["tools"] = tools
    if req.tool_choice and tools:
        body["tool_choice"] = _encode_tool_choice(req.tool_choice, custom_names)
        if req.tool_choice.parallel is not None:
            body["parallel_tool_calls"] = req.tool_choice.parallel
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    include: list[str] = [i for i in req.extras.get("include") or [] if isinstance(i, str)]
    if req.thinking is not None and req.thinking.enabled:
        reasoning: dict[str, Any] = {"effort": req.thinking.effort or _effort_for(req.thinking.budget_tokens)}
        if req.thinking.include:
            reasoning["summary"] = "auto"
        body["reasoning"] = reasoning
        if "reasoning.encrypted_content" not in include:
            include.append("reasoning.encrypted_content")
    if include:
        body["include"] = include
    text = _encode_text(req.response_format, req.extras.get("verbosity"))
    if text:
        body["text"] = text
    if req.user_id:
        uid = req.user_id
        body["safety_identifier"] = uid if len(uid) <= 64 else hashlib.sha256(uid.encode()).hexdigest()
    for key, types in UPSTREAM_EXTRA_TYPES.items():
        value = req.extras.get(key)
        if value is not None and isinstance(value, types) and not isinstance(value, bool):
            body[key] = value
    body["store"] = False
    body["stream"] = req.stream
    return body


def _effort_for(budget: int | None) -> str:
    if budget is None:
        return "medium"
    if budget <= 1024:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def encode_tool(t: Tool, req: ChatRequest | None = None) -> dict[str, Any] | None:
    """A tool as a Responses tool; None for another family's hosted tool."""
    if t.custom:
        if t.raw is not None and t.raw.get("type") == "custom":
            return t.raw
        out: dict[str, Any] = {"type": "custom", "name": t.name}
        if t.description:
            out["description"] = t.description
        return out
    if t.raw is not None and t.raw.get("type") not in (None, "function"):
        return t.raw if req is not None and req.protocol == NAME else None
    out = {"type": "function", "name": t.name}
    if t.description:
        out["description"] = t.description
    out["parameters"] = t.schema or {"type": "object", "properties": {}}
    out["strict"] = bool(t.strict)  # omitted strict means strict on the Responses API
    return out


def _encode_tool_choice(tc: ToolChoice, custom_names: set[str]) -> Any:
    if tc.mode == "tool" and tc.name:
        return {"type": "custom" if tc.name in custom_names else "function", "name": tc.name}
    return {"auto": "auto", "any": "required", "none": "none"}.get(tc.mode, "auto")


def _encode_text(fmt: ResponseFormat | None, verbosity: Any) -> dict[str, Any]:
    text: dict[str, Any] = {}
    if fmt is not None and fmt.type == "json_object":
        text["format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
        text["format"] = {
            "type": "json_schema",
            "name": fmt.name or "response",
            "schema": fmt.schema,
            "strict": bool(fmt.strict),
        }
    if isinstance(verbosity, str):
        text["verbosity"] = verbosity
    return text


def encode_content_part(p: Part) -> dict[str, Any] | None:
    """A user-side part as a Responses input content part (None when it has no home here)."""
    if isinstance(p, Text):
        return {"type": "input_text", "text": p.text}
    if isinstance(p, Image):
        url = data_url(p.media_type or "image/png", p.data) if p.data is not None else p.url
        return {"type": "input_image", "image_url": url, "detail": p.detail or "auto"}
    if isinstance(p, Document):
        if p.text is not None:
            return {"type": "input_text", "text": f"{p.title}\n\n{p.text}" if p.title else p.text}
        if p.data is not None:
            name = (
                p.filename or p.title or ("document.pdf" if p.media_type == "application/pdf" else "document")
            )
            return {"type": "input_file", "filename": name, "file_data": data_url(p.media_type, p.data)}
        return {"type": "input_file", "file_url": p.url}
    if isinstance(p, Opaque) and p.family == NAME and "part" in p.data:
        return p.data["part"]
    return None


def _encode_output(r: ToolResult, custom_calls: set[str]) -> dict[str, Any]:
    kind = "custom_tool_call_output" if r.call_id in custom_calls else "function_call_output"
    output: Any
    if all(isinstance(c, Text) for c in r.content):
        output = r.text()
        if r.is_error:
            output = f"Error: {output}" if output else "Error"
    else:
        output = [b for b in (encode_content_part(c) for c in r.content) if b is not None]
        if r.is_error:
            output.insert(0, {"type": "input_text", "text": "Error:"})
    return {"type": kind, "call_id": r.call_id, "output": output}


def _encode_input(req: ChatRequest, custom_tools: set[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    custom_calls: set[str] = set()  # call ids whose results go back as custom_tool_call_output
    for m in req.messages:
        pending: list[dict[str, Any]] = []  # content parts of the message item being built
        for p in m.content:
            if isinstance(p, (Text, Image, Document)) or (isinstance(p, Opaque) and "part" in p.data):
                part = encode_content_part(p)
                if m.role == "assistant" and isinstance(p, Text):
                    part = {"type": "output_text", "text": p.text} if p.text else None
                if part is not None:
                    pending.append(part)
                continue
            _flush(items, m.role, pending)
            if isinstance(p, ToolResult):
                items.append(_encode_output(p, custom_calls))
            elif isinstance(p, ToolCall):
                if p.custom or p.name in custom_tools:
                    custom_calls.add(p.id)
                    value = p.arguments.get("input")
                    call_input = value if isinstance(value, str) else dumps_str(p.arguments)
                    items.append(
                        {"type": "custom_tool_call", "call_id": p.id, "name": p.name, "input": call_input}
                    )
                else:
                    arguments = p.raw_arguments if p.raw_arguments else dumps_str(p.arguments)
                    items.append(
                        {"type": "function_call", "call_id": p.id, "name": p.name, "arguments": arguments}
                    )
            elif isinstance(p, Thinking):
                if p.family == FAMILY and p.signature:  # other families cannot be verified by OpenAI
                    summary = [{"type": "summary_text", "text": p.text}] if p.text else []
                    items.append({"type": "reasoning", "summary": summary, "encrypted_content": p.signature})
            elif isinstance(p, Opaque) and p.family == NAME and "item" in p.data:
                items.append(p.data["item"])
        _flush(items, m.role, pending)
    return items


def _flush(items: list[dict[str, Any]], role: str, pending: list[dict[str, Any]]) -> None:
    if pending:
        items.append({"type": "message", "role": role, "content": list(pending)})
        pending.clear()


# ---------------------------------------------------------------- usage


def encode_usage(u: Usage) -> dict[str, Any]:
    """Responses usage: ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes reasoning."""
    return {
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def decode_usage(u: dict[str, Any] | None) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    details = u.get("input_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    return Usage(
        input_tokens=max(0, (u.get("input_tokens") or 0) - cached - written),
        output_tokens=u.get("output_tokens") or 0,
        cache_read_tokens=cached,
        cache_write_5m_tokens=written,
        reasoning_tokens=(u.get("output_tokens_details") or {}).get("reasoning_tokens") or 0,
    )


# ---------------------------------------------------------------- responses (model -> client JSON)


def response_id(internal_id: str) -> str:
    if internal_id.startswith("resp_"):
        return internal_id
    for prefix in ("msg_", "chatcmpl-", "req_"):
        if internal_id.startswith(prefix):
            internal_id = internal_id[len(prefix) :]
            break
    return "resp_" + (internal_id or "gateway")


def _item_id(prefix: str, resp_id: str, index: int) -> str:
    return f"{prefix}_{resp_id[len('resp_') :]}_{index}"


def _status(stop_reason: str | None) -> tuple[str, dict[str, Any] | None]:
    if stop_reason == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    if stop_reason == "refusal":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _echo(req: ChatRequest) -> dict[str, Any]:
    """Request settings a Response object repeats back."""
    raw = req.raw if req.protocol == NAME and req.raw is not None else None
    custom_names = {t.name for t in req.tools if t.custom}
    if raw is not None:
        tools = raw.get("tools") or []
        tool_choice = raw.get("tool_choice") or "auto"
        instructions = raw.get("instructions")
        text_format = (raw.get("text") or {}).get("format") or {"type": "text"}
        reasoning = raw.get("reasoning") or {}
        summary = reasoning.get("summary")
    else:
        tools = [t for t in (encode_tool(t, req) for t in req.tools) if t is not None]
        tool_choice = _encode_tool_choice(req.tool_choice, custom_names) if req.tool_choice else "auto"
        instructions = req.system_text() or None
        text_format = _encode_text(req.response_format, None).get("format") or {"type": "text"}
        summary = "auto" if req.thinking and req.thinking.include else None
    metadata = req.extras.get("metadata")
    return {
        "instructions": instructions,
        "max_output_tokens": req.max_tokens,
        "parallel_tool_calls": not (req.tool_choice is not None and req.tool_choice.parallel is False),
        "previous_response_id": None,
        "reasoning": {"effort": req.thinking.effort if req.thinking else None, "summary": summary},
        "store": False,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": {"format": text_format, "verbosity": req.extras.get("verbosity") or "medium"},
        "tool_choice": tool_choice,
        "tools": tools,
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "truncation": req.extras.get("truncation") or "disabled",
        "user": None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


def response_object(
    req: ChatRequest,
    *,
    resp_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    error: dict[str, Any] | None = None,
    incomplete: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete Response object: every field typed clients (openai-python, Codex serde) expect."""
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        **_echo(req),
        "usage": encode_usage(usage) if usage is not None else None,
    }


def _message_item(item_id: str, texts: list[str], status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": t, "annotations": [], "logprobs": []} for t in texts]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call: ToolCall) -> dict[str, Any]:
    if call.custom:
        value = call.arguments.get("input")
        call_input = value if isinstance(value, str) else dumps_str(call.arguments)
        return {
            "type": "custom_tool_call",
            "id": item_id,
            "call_id": call.id,
            "name": call.name,
            "input": call_input,
        }
    arguments = call.raw_arguments if call.raw_arguments else dumps_str(call.arguments)
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
        "status": "completed",
    }


def _reasoning_item(item_id: str, t: Thinking) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": t.text}] if t.text else []
    return {"type": "reasoning", "id": item_id, "summary": summary, "encrypted_content": carry(t)}


def encode_response(resp: ChatResponse, req: ChatRequest) -> dict[str, Any]:
    resp_id = response_id(resp.id)
    output: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            output.append(_message_item(_item_id("msg", resp_id, len(output)), list(texts)))
            texts.clear()

    for p in resp.content:
        if isinstance(p, Text):
            texts.append(p.text)
            continue
        flush()
        if isinstance(p, ToolCall):
            output.append(_call_item(_item_id("ctc" if p.custom else "fc", resp_id, len(output)), p))
        elif isinstance(p, Thinking):
            output.append(_reasoning_item(_item_id("rs", resp_id, len(output)), p))
        elif isinstance(p, Opaque) and p.family == NAME and "item" in p.data:
            output.append(p.data["item"])
    flush()
    status, incomplete = _status(resp.stop_reason)
    return response_object(
        req,
        resp_id=resp_id,
        model=resp.model or req.model,
        created_at=int(time.time()),
        status=status,
        output=output,
        usage=resp.usage,
        incomplete=incomplete,
    )


def decode_response(body: dict[str, Any]) -> ChatResponse:
    """An upstream Response object as an internal response."""
    status = body.get("status")
    if status == "failed":
        err: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        err_kind, status_code = error_kind(err.get("code"))
        raise GatewayError(err_kind, err.get("message") or "upstream response failed", status=status_code)
    content: list[Part] = []
    refused = False
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or []:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    content.append(Text(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refused = True
                    content.append(Text(part.get("refusal") or ""))
        elif kind == "function_call":
            arguments = item.get("arguments") or ""
            content.append(
                ToolCall(
                    id=item.get("call_id") or item.get("id") or "",
                    name=item.get("name") or "",
                    arguments=_parse_arguments(arguments),
                    raw_arguments=arguments or None,
                )
            )
        elif kind == "custom_tool_call":
            content.append(
                ToolCall(
                    id=item.get("call_id") or item.get("id") or "",
                    name=item.get("name") or "",
                    arguments={"input": item.get("input") or ""},
                    custom=True,
                )
            )
        elif kind == "reasoning":
            text = "\n\n".join(s.get("text") or "" for s in item.get("summary") or [] if isinstance(s, dict))
            thinking = uncarry(text, item.get("encrypted_content"))
            if thinking.text or thinking.signature or thinking.redacted is not None:
                content.append(thinking)
        else:
            content.append(Opaque(NAME, {"item": item}))
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=content,
        stop_reason=stop_reason_for(status, body.get("incomplete_details"), content, refused),
        usage=decode_usage(body.get("usage")),
    )


def stop_reason_for(status: Any, incomplete: Any, content: list[Part], refused: bool = False) -> Any:
    if status == "incomplete":
        reason = (incomplete or {}).get("reason") if isinstance(incomplete, dict) else None
        return "refusal" if reason == "content_filter" else "max_tokens"
    if any(isinstance(p, ToolCall) for p in content):
        return "tool_use"
    return "refusal" if refused else "end_turn"


def error_kind(code: Any) -> tuple[str, int]:
    """An upstream Responses error code as a gateway error kind and status."""
    if code == "rate_limit_exceeded":
        return "rate_limit", 429
    if code == "insufficient_quota":
        return "billing", 402
    if code in ("context_length_exceeded", "invalid_prompt") or (
        isinstance(code, str) and code.startswith("invalid_")
    ):
        return "invalid_request", 400
    if code in ("server_is_overloaded", "server_overloaded", "service_unavailable", "slow_down"):
        return "unavailable", 503
    return "api_error", 500


def _error_code(kind: str, message: str, code: str | None = None) -> str | None:
    if code:
        return code
    if kind in ("invalid_request", "request_too_large") and any(h in message.lower() for h in _CONTEXT_HINTS):
        return "context_length_exceeded"
    return ERRORS.get(kind, ("server_error", None))[1]


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    etype = ERRORS.get(err.kind, ("server_error", None))[0]
    return {
        "error": {
            "message": err.message,
            "type": etype,
            "param": err.param,
            "code": _error_code(err.kind, err.message, err.code),
        }
    }


# ---------------------------------------------------------------- streaming (model events -> Responses SSE)


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
            b["id"] = _item_id("msg", self.resp_id, oi)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            return self._event(
                "response.output_item.added", output_index=oi, item=_message_item(b["id"], [], "in_progress")
            ) + self._event(
                "response.content_part.added", item_id=b["id"], output_index=oi, content_index=0, part=part
            )
        if ev.type == "tool_call":
            b.update(call_id=ev.id or "", name=ev.name or "", custom=ev.custom)
            if ev.custom:
                b["id"] = _item_id("ctc", self.resp_id, oi)
                item = {
                    "type": "custom_tool_call",
                    "id": b["id"],
                    "call_id": ev.id,
                    "name": ev.name,
                    "input": "",
                }
            else:
                b["id"] = _item_id("fc", self.resp_id, oi)
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
            b.update(id=_item_id("rs", self.resp_id, oi), family=ev.family, redacted=ev.redacted, part=False)
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
            item = _message_item(b["id"], [text])
        elif b["type"] == "tool_call":
            call = ToolCall(id=b["call_id"], name=b["name"], custom=b["custom"])
            if b["custom"]:
                call.arguments = _parse_arguments(text)
                item = _call_item(b["id"], call)
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
                item = _call_item(b["id"], call)
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
            item = _reasoning_item(b["id"], thinking)
        else:
            item = b["item"]
        self.output.append(item)
        return out + self._event("response.output_item.done", output_index=oi, item=item)

    def _terminal(self) -> bytes:
        self.done = True
        status, incomplete = _status(self.stop_reason)
        response = self._response(status, usage=self.usage, incomplete=incomplete)
        return self._event(f"response.{status}", response=response)

    def _failed(self, kind: str, message: str) -> bytes:
        self.block = None  # a half-built item is not reported
        self.done = True
        error = {"code": _error_code(kind, message) or "server_error", "message": message}
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


def error_bytes(err: GatewayError, request_id: str) -> bytes:
    return dumps(encode_error(err, request_id))
