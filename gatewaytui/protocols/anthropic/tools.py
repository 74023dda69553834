"""Tools on the Messages wire: custom and server tools, and tool_choice."""

from __future__ import annotations

from typing import Any, cast

from ...model import Tool, ToolChoice, ToolChoiceMode
from ..base import expect_type, is_web_search, optional, require


def decode_tool(t: Any, path: str) -> Tool:
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


def decode_tool_choice(tc: dict[str, Any] | None) -> ToolChoice | None:
    if tc is None:
        return None
    mode = tc.get("type")
    require(isinstance(mode, str), "tool_choice.type: field required", "tool_choice.type")
    if mode not in ("auto", "any", "tool", "none"):
        return None  # a newer choice: passed through to Anthropic, the upstream's default elsewhere
    if mode == "tool":
        expect_type(tc.get("name"), str, "tool_choice.name")
    parallel = None if "disable_parallel_tool_use" not in tc else not tc["disable_parallel_tool_use"]
    # only ToolChoiceMode's values get here
    return ToolChoice(mode=cast(ToolChoiceMode, mode), name=tc.get("name"), parallel=parallel)


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
