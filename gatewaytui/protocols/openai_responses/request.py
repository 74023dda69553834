"""Responses request bodies both ways: ``decode_request`` (client body -> internal request, refusing
server-side state) and ``encode_request`` (internal request -> stateless upstream body)."""

from __future__ import annotations

import hashlib
from typing import Any

from ...model import ChatRequest, GatewayError, Message, ResponseFormat, Text, ThinkingConfig
from ..base import expect_type, number, optional, require
from ..reasoning import openai_effort
from .items import decode_input, encode_input
from .spec import NAME, STATELESS
from .tools import decode_tool, decode_tool_choice, encode_tool, encode_tool_choice

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
    named = body.get("model")  # absent or null: the gateway's default model ([routing] default_model)
    model = model or ("" if named is None else expect_type(named, str, "model"))
    require(bool(model) or named is None, "model: must not be empty", "model")

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
        messages = decode_input(expect_type(raw_input, list, "input"), system)

    tools = [decode_tool(t, f"tools.{i}") for i, t in enumerate(optional(body, "tools", list) or [])]
    parallel = optional(body, "parallel_tool_calls", bool)
    tool_choice, allowed = decode_tool_choice(body.get("tool_choice"), parallel)
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
    if effort is None or effort == "none":
        return None  # a summary alone asks for nothing more than the model's default: thinking stays off
    return ThinkingConfig(enabled=True, effort=effort, include=bool(summary))


def encode_request(req: ChatRequest) -> dict[str, Any]:
    """The internal request as a Responses body for an upstream (stateless: ``store`` is false)."""
    custom_names = {t.name for t in req.tools if t.custom}
    body: dict[str, Any] = {"model": req.model}
    if req.system:
        body["instructions"] = req.system_text()
    body["input"] = encode_input(req, custom_names)
    tools = [t for t in (encode_tool(t, req) for t in req.tools) if t is not None]
    if tools:
        body["tools"] = tools
    if req.tool_choice and tools:
        body["tool_choice"] = encode_tool_choice(req.tool_choice, custom_names)
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
        reasoning: dict[str, Any] = {"effort": openai_effort(req.thinking) or "medium"}
        if req.thinking.include:
            reasoning["summary"] = "auto"
        body["reasoning"] = reasoning
        if "reasoning.encrypted_content" not in include:
            include.append("reasoning.encrypted_content")
    if include:
        body["include"] = include
    text = encode_text(req.response_format, req.extras.get("verbosity"))
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


def encode_text(fmt: ResponseFormat | None, verbosity: Any) -> dict[str, Any]:
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
