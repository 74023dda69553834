"""Gemini request bodies both ways: ``decode_request`` (client body -> internal request) and
``encode_request`` (internal request -> body for an upstream, thinking settings per model generation)."""

from __future__ import annotations

import re
from typing import Any

from ...model import ChatRequest, ResponseFormat, Text, ThinkingConfig
from ..base import expect_type, require
from ..reasoning import budget_for, effort_for, fit_budget
from .contents import decode_contents, encode_contents
from .fields import bare_model, get_field, int_field, num_field, opt_field
from .schema import schema_for_gemini, schema_from_gemini
from .spec import NAME
from .tools import TOOL_NAMES_KEY, ToolNames, decode_tool_config, decode_tools, native_tool


def decode_request(
    body: dict[str, Any],
    *,
    model: str | None = None,
    stream: bool | None = None,
    headers: dict[str, str] | None = None,
) -> ChatRequest:
    expect_type(body, dict, "body")
    inner = get_field(body, "generateContentRequest")  # countTokens wraps the request
    if isinstance(inner, dict) and get_field(body, "contents") is None:
        body = inner
    model = model or opt_field(body, "model", str, "")
    require(
        bool(model), "model: missing; name it in the URL (/v1beta/models/{model}:generateContent)", "model"
    )
    contents = get_field(body, "contents")
    require(contents is not None, "contents: field required", "contents")
    expect_type(contents, list, "contents")
    req = ChatRequest(
        model=bare_model(model or ""),
        messages=decode_contents(contents),
        system=_decode_system(get_field(body, "systemInstruction")),
        stream=bool(stream),
        tools=decode_tools(get_field(body, "tools")),
        tool_choice=decode_tool_config(get_field(body, "toolConfig")),
        protocol=NAME,
        raw=body,
    )
    gen = get_field(body, "generationConfig")
    if gen is not None:
        _decode_generation_config(req, expect_type(gen, dict, "generationConfig"))
    return req


def _decode_system(system: Any) -> list[Text]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Text(system)] if system else []
    expect_type(system, dict, "systemInstruction")
    out = []
    for i, part in enumerate(expect_type(system.get("parts") or [], list, "systemInstruction.parts")):
        expect_type(part, dict, f"systemInstruction.parts[{i}]")
        text = part.get("text")
        require(
            isinstance(text, str),
            f"systemInstruction.parts[{i}]: only text parts are allowed",
            "systemInstruction",
        )
        if text:
            out.append(Text(text))
    return out


_LEVELS = ("minimal", "low", "medium", "high")


def _decode_generation_config(req: ChatRequest, gen: dict[str, Any]) -> None:
    path = "generationConfig"
    count = int_field(gen, "candidateCount", path)
    require(
        count is None or count <= 1,
        f"{path}.candidateCount: only one candidate per request is supported",
        path,
    )
    req.temperature = num_field(gen, "temperature", 0, 2, path)
    req.top_p = num_field(gen, "topP", 0, 1, path)
    req.top_k = int_field(gen, "topK", path)
    req.max_tokens = int_field(gen, "maxOutputTokens", path, lo=1)
    req.stop = [
        expect_type(s, str, f"{path}.stopSequences")
        for s in opt_field(gen, "stopSequences", list, path) or []
    ]
    for name, key in (
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ):
        value = opt_field(gen, name, (int, float), path)
        if value is not None:
            req.extras[key] = value
    mime = opt_field(gen, "responseMimeType", str, path)
    if mime in (None, "application/json"):  # text/x.enum and others have no internal equivalent
        json_schema = get_field(gen, "responseJsonSchema") or gen.get("_responseJsonSchema")
        schema = json_schema if isinstance(json_schema, dict) else None
        if schema is None and isinstance(get_field(gen, "responseSchema"), dict):
            schema = schema_from_gemini(get_field(gen, "responseSchema"))
        if schema is not None:
            req.response_format = ResponseFormat("json_schema", schema)
        elif mime == "application/json":
            req.response_format = ResponseFormat("json_object")
    th = opt_field(gen, "thinkingConfig", dict, path)
    if th:
        req.thinking = _decode_thinking(th, f"{path}.thinkingConfig")


def _decode_thinking(th: dict[str, Any], path: str) -> ThinkingConfig | None:
    include = bool(get_field(th, "includeThoughts"))
    budget = opt_field(th, "thinkingBudget", int, path)
    level = opt_field(th, "thinkingLevel", str, path)
    effort = None
    if level and level.upper() != "THINKING_LEVEL_UNSPECIFIED":
        effort = level.lower()
        require(effort in _LEVELS, f"{path}.thinkingLevel: must be MINIMAL, LOW, MEDIUM or HIGH", path)
    if budget == 0 and effort is None:
        return ThinkingConfig(enabled=False, budget_tokens=0, include=include)
    require(
        budget is None or budget >= -1,
        f"{path}.thinkingBudget: must be -1, 0 or a positive token count",
        path,
    )
    if budget is None and effort is None and not include:
        return None
    dynamic = budget in (None, -1)
    return ThinkingConfig(
        budget_tokens=None if dynamic else budget,
        effort=effort,
        adaptive=dynamic and not effort,
        include=include,
    )


def encode_request(req: ChatRequest, *, model: str | None = None) -> dict[str, Any]:
    """The internal request as a Gemini body for an upstream. ``model`` is the upstream model (it picks
    thinkingLevel for Gemini 3 or thinkingBudget before). Leaves the tool-name map in ``req.extras``."""
    names = ToolNames()
    body: dict[str, Any] = {}
    body["contents"] = encode_contents(req.turns(), names)
    require(
        bool(body["contents"]), "messages: at least one non-empty message is required for Gemini", "messages"
    )
    # mid-conversation system turns join systemInstruction (Gemini has no system role in contents)
    system = [{"text": t.text} for t in req.folded_system() if t.text]
    if system:
        body["systemInstruction"] = {"parts": system}
    decls: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    for t in req.tools:
        native = native_tool(t)
        if native is not None:
            if native:
                tools.append(native)
            continue
        decl: dict[str, Any] = {"name": names(t.name)}
        if t.description:
            decl["description"] = t.description
        schema = (
            {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
            if t.custom
            else t.schema
        )
        params = schema_for_gemini(schema)
        if params.get("properties"):
            decl["parameters"] = params
        decls.append(decl)
    if decls:
        tools.insert(0, {"functionDeclarations": decls})
    if tools:
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and decls:
        cfg: dict[str, Any] = {"mode": {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}[tc.mode]}
        if tc.mode == "tool" and tc.name:
            cfg["allowedFunctionNames"] = [names(tc.name)]
        body["toolConfig"] = {"functionCallingConfig": cfg}
    gen = _encode_generation_config(req, model or req.model)
    if gen:
        body["generationConfig"] = gen
    changed = names.changed()
    if changed:
        req.extras[TOOL_NAMES_KEY] = changed
    else:
        req.extras.pop(TOOL_NAMES_KEY, None)
    return body


def _encode_thinking(th: ThinkingConfig, model: str, max_tokens: int | None) -> dict[str, Any]:
    """thinkingLevel for Gemini 3, thinkingBudget before: the effort's budget from
    ``reasoning.EFFORT_BUDGETS`` (or the explicit one), within the model's range and below
    ``maxOutputTokens`` (thinking counts against it), which it never raises."""
    model = model.lower()
    pro = "pro" in model
    cfg: dict[str, Any] = {}
    if re.search(r"gemini-([3-9]|\d\d)", model):
        effort = th.effort or (effort_for(th.budget_tokens) if th.budget_tokens else None)
        if not th.enabled:
            effort = "minimal"
        if effort:
            level = {"minimal": "minimal", "low": "low", "medium": "medium"}.get(effort, "high")
            if pro:
                level = "low" if level in ("minimal", "low") else "high"
            cfg["thinkingLevel"] = level
    elif not th.enabled:
        cfg["thinkingBudget"] = 128 if pro else 0  # 2.5 Pro cannot switch thinking off
    elif th.effort or (th.budget_tokens and th.budget_tokens > 0):
        floor = 512 if "lite" in model else 128
        budget = min(budget_for(th), 32768 if pro else 24576)
        fitted = fit_budget(budget, max_tokens, floor) if max_tokens else max(floor, budget)
        cfg["thinkingBudget"] = fitted if fitted is not None else (floor if pro else 0)
    else:
        cfg["thinkingBudget"] = -1  # dynamic: the model decides
    if th.enabled and th.include and cfg.get("thinkingBudget") != 0:
        cfg["includeThoughts"] = True
    return cfg


def _encode_generation_config(req: ChatRequest, model: str) -> dict[str, Any]:
    gen: dict[str, Any] = {}
    if req.temperature is not None:
        gen["temperature"] = req.temperature
    if req.top_p is not None:
        gen["topP"] = req.top_p
    if req.top_k is not None:
        gen["topK"] = req.top_k
    if req.max_tokens is not None:
        gen["maxOutputTokens"] = req.max_tokens
    if req.stop:
        gen["stopSequences"] = req.stop[:5]
    for key, name in (
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if isinstance(req.extras.get(key), (int, float)):
            gen[name] = req.extras[key]
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        gen["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema:
            gen["responseSchema"] = schema_for_gemini(fmt.schema)
    if req.thinking is not None:
        cfg = _encode_thinking(req.thinking, model, req.max_tokens)
        if cfg:
            gen["thinkingConfig"] = cfg
    return gen
