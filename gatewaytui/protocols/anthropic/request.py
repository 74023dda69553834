"""Messages request bodies both ways: ``decode_request`` (client body -> internal request) and
``encode_request`` (internal request -> body for an Anthropic upstream)."""

from __future__ import annotations

from typing import Any

from ...model import ChatRequest, ResponseFormat, Text, ThinkingConfig
from ..base import expect_type, number, optional, require
from ..reasoning import budget_for, fit_budget
from .blocks import text_block
from .messages import decode_message, encode_messages
from .spec import NAME
from .tools import decode_tool, decode_tool_choice, encode_tool

FORWARD_HEADERS = ("anthropic-beta", "anthropic-version")
DEFAULT_MAX_TOKENS = 4096  # only when nothing set a ceiling (the relay always sets one)
MIN_THINKING_BUDGET = 1024  # Anthropic rejects smaller budgets


def decode_request(
    body: dict[str, Any],
    *,
    model: str | None = None,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
    count_only: bool = False,
) -> ChatRequest:
    named = body.get("model")  # absent or null: the gateway's default model ([routing] default_model)
    model = model or ("" if named is None else expect_type(named, str, "model"))
    require(bool(model) or named is None, "model: must not be empty", "model")
    max_tokens = None
    if not count_only:
        require("max_tokens" in body, "max_tokens: field required", "max_tokens")
        max_tokens = expect_type(body.get("max_tokens"), int, "max_tokens")
        require(max_tokens >= 1, "max_tokens: must be >= 1", "max_tokens")  # as Anthropic requires
    messages_raw = expect_type(body.get("messages"), list, "messages")
    messages = [decode_message(m, f"messages.{i}") for i, m in enumerate(messages_raw)]
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
        tools=[decode_tool(t, f"tools.{i}") for i, t in enumerate(optional(body, "tools", list) or [])],
        tool_choice=decode_tool_choice(optional(body, "tool_choice", dict)),
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
    if system is None or isinstance(system, str):
        return [Text(system)] if system else []
    expect_type(system, list, "system")
    out = []
    for i, block in enumerate(system):
        expect_type(block, dict, f"system.{i}")
        require(block.get("type") == "text", f"system.{i}.type: only text blocks are allowed", f"system.{i}")
        out.append(Text(expect_type(block.get("text"), str, f"system.{i}.text"), block.get("cache_control")))
    return out


def _decode_thinking(
    th: dict[str, Any] | None, output_config: dict[str, Any] | None
) -> ThinkingConfig | None:
    effort = (output_config or {}).get("effort")
    if th is None:
        return ThinkingConfig(enabled=True, effort=effort, adaptive=True) if effort else None
    kind = th.get("type")
    if kind not in ("enabled", "adaptive"):
        return None  # disabled, or a newer type: passed through to Anthropic, no thinking elsewhere
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


def encode_request(req: ChatRequest) -> dict[str, Any]:
    """The internal request as an Anthropic Messages body (used when the upstream speaks Anthropic).

    Mid-conversation system turns join the top-level ``system`` after the leading instructions: every
    Anthropic model accepts that form, while ``role: system`` inside ``messages`` needs a beta that a
    translated request (from an OpenAI or Gemini client) never carries."""
    body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS}
    system = req.folded_system()
    if system:
        body["system"] = [text_block(t) for t in system]
    body["messages"] = encode_messages(req.messages)
    if req.stream:
        body["stream"] = True
    thinking = encode_thinking(req.thinking, body["max_tokens"])
    thinking_on = thinking is not None
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
    if thinking is not None:
        body["thinking"] = thinking
    if req.response_format and req.response_format.type == "json_schema" and req.response_format.schema:
        body["output_config"] = {"format": {"type": "json_schema", "schema": req.response_format.schema}}
    if req.user_id:
        body["metadata"] = {"user_id": req.user_id}
    return body


def encode_thinking(thinking: ThinkingConfig | None, max_tokens: int) -> dict[str, Any] | None:
    """Anthropic's ``thinking`` for the settings, or None. The budget (explicit, or the effort's from
    ``reasoning.EFFORT_BUDGETS``) is cut to fit below ``max_tokens``, which it never raises; when even
    Anthropic's minimum of 1,024 does not fit, thinking stays off."""
    if thinking is None or not thinking.enabled:
        return None
    budget = fit_budget(budget_for(thinking), max_tokens, MIN_THINKING_BUDGET)
    if budget is None:
        return None
    return {"type": "enabled", "budget_tokens": budget}
