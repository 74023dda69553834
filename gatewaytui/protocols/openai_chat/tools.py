"""Tools on the Chat wire: definitions and tool_choice both ways, and the names and call ids
OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$`` names, ids of at most 40 characters)."""

from __future__ import annotations

import re
from typing import Any

from ...model import ChatRequest, Tool, ToolChoice
from ..arguments import shorten
from ..base import expect_type, optional, require

TOOL_NAMES_KEY = "openai_tool_names"  # req.extras: {upstream (shortened) name: original name}
MAX_TOOL_NAME = 64
MAX_CALL_ID = 40  # OpenAI: "Expected a string with maximum length 40"
_TOOL_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def upstream_tool_name(name: str) -> str:
    """A tool name OpenAI accepts (``^[a-zA-Z0-9_-]{1,64}$``): unchanged when valid, else prefix + hash."""
    if _TOOL_NAME_OK.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "tool"
    return shorten(cleaned, MAX_TOOL_NAME)


def upstream_call_id(call_id: str) -> str:
    """A tool-call id within OpenAI's 40-character limit, the same for the call and its result."""
    return call_id if len(call_id) <= MAX_CALL_ID else shorten(call_id, MAX_CALL_ID)


def original_tool_name(req: ChatRequest | None, name: str) -> str:
    """Undo ``upstream_tool_name`` using the map ``encode_request`` left on the request."""
    names = (req.extras.get(TOOL_NAMES_KEY) if req is not None else None) or {}
    return names.get(name, name)


def decode_tool(t: Any, path: str) -> Tool:
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


def decode_tool_choice(tc: Any, req: ChatRequest) -> ToolChoice | None:
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


def encode_tool(t: Tool, tool_name: Any) -> dict[str, Any] | None:
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


def encode_tool_choice(tc: ToolChoice, tool_name: Any, tools: list[Tool]) -> Any:
    if tc.mode == "tool" and tc.name:
        custom = any(t.custom and t.name == tc.name for t in tools)
        kind = "custom" if custom else "function"
        return {"type": kind, kind: {"name": tool_name(tc.name)}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(tc.mode, "auto")
