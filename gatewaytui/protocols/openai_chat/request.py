"""Chat request bodies both ways: ``decode_request`` (client body -> internal request) and
``encode_request`` (internal request -> body for an OpenAI-style upstream)."""

from __future__ import annotations

from typing import Any

from ...model import ChatRequest, ResponseFormat, ThinkingConfig, ToolChoice
from ..base import expect_type, number, optional, require
from ..reasoning import openai_effort
from .messages import decode_messages, encode_assistant, encode_system, encode_user
from .spec import NAME
from .tools import (
    TOOL_NAMES_KEY,
    decode_tool,
    decode_tool_choice,
    encode_tool,
    encode_tool_choice,
    upstream_tool_name,
)

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

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


def decode_request(
    body: dict[str, Any],
    *,
    model: str | None = None,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
) -> ChatRequest:
    named = body.get("model")  # absent or null: the gateway's default model ([routing] default_model)
    model = model or ("" if named is None else expect_type(named, str, "model"))
    require(bool(model) or named is None, "model: must not be empty", "model")
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
    decode_messages(messages_raw, req)
    req.max_tokens = _decode_max_tokens(body)
    req.temperature = number(body, "temperature", 0, 2)
    req.top_p = number(body, "top_p", 0, 1)
    req.stop = _decode_stop(body.get("stop"))
    req.tools = [decode_tool(t, f"tools.{i}") for i, t in enumerate(optional(body, "tools", list) or [])]
    req.tool_choice = decode_tool_choice(body.get("tool_choice"), req)
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


def encode_request(
    req: ChatRequest,
    *,
    max_tokens_field: str = "max_completion_tokens",
    reasoning_history: str | None = None,
    mid_system: bool = True,
) -> dict[str, Any]:
    """The internal request as a Chat Completions body for an OpenAI-style upstream.

    ``max_tokens_field`` is ``max_completion_tokens`` for OpenAI, ``max_tokens`` for older
    compatible servers. ``reasoning_history`` names the assistant-message field that carries
    OpenAI-family reasoning back (``reasoning_content``/``reasoning``); None drops it. ``mid_system``
    False folds mid-conversation system turns into the leading system message. Tool
    names are made OpenAI-safe; the map back is left in ``req.extras[TOOL_NAMES_KEY]``.
    """
    names: dict[str, str] = {}

    def tool_name(name: str) -> str:
        short = upstream_tool_name(name)
        if short != name:
            names[short] = name
        return short

    messages: list[dict[str, Any]] = []
    system = "\n\n".join(t.text for t in (req.system if mid_system else req.folded_system()) if t.text)
    if system:
        messages.append({"role": "system", "content": system})
    for m in req.messages if mid_system else req.turns():
        if m.role in ("assistant", "system"):
            msg = (
                encode_assistant(m, tool_name, reasoning_history)
                if m.role == "assistant"
                else encode_system(m)
            )
            if msg is not None:
                messages.append(msg)
        else:
            messages.extend(encode_user(m))
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
    tools = [t for t in (encode_tool(t, tool_name) for t in req.tools) if t is not None]
    if tools:
        body["tools"] = tools
        tc = req.tool_choice
        if tc is not None:
            body["tool_choice"] = encode_tool_choice(tc, tool_name, req.tools)
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
    effort = openai_effort(req.thinking)
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
