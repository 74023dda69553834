"""Tools on the Responses wire: function, custom (free-form) and hosted tools, and tool_choice."""

from __future__ import annotations

from typing import Any

from ...model import ChatRequest, Tool, ToolChoice
from ..base import expect_type, optional, require
from .spec import NAME


def _custom_schema(tool: dict[str, Any]) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "string", "description": "The raw free-form input for this tool."}
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        syntax = fmt.get("syntax") or "lark"
        prop["description"] = (
            f"The raw input for this tool; it must match this {syntax} grammar:\n{fmt['definition']}"
        )
    return {"type": "object", "properties": {"input": prop}, "required": ["input"]}


def decode_tool(t: Any, path: str) -> Tool:
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


def decode_tool_choice(tc: Any, parallel: bool | None) -> tuple[ToolChoice | None, set[str] | None]:
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


def encode_tool_choice(tc: ToolChoice, custom_names: set[str]) -> Any:
    if tc.mode == "tool" and tc.name:
        return {"type": "custom" if tc.name in custom_names else "function", "name": tc.name}
    return {"auto": "auto", "any": "required", "none": "none"}.get(tc.mode, "auto")
