"""Tools on the Gemini wire: function declarations, Gemini's own tools, toolConfig, and tool names."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ...model import Tool, ToolChoice
from ..arguments import shorten
from ..base import expect_type, is_web_search, require
from .fields import opt_field
from .schema import schema_from_gemini

MAX_TOOL_NAME = 64
TOOL_NAMES_KEY = "gemini_tool_names"  # req.extras: sanitised upstream tool name -> the client's name
_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}")


def gemini_tool_name(name: str) -> str:
    """A name Gemini accepts: starts with a letter or ``_``, only ``[A-Za-z0-9_.:-]``, at most 64."""
    if _NAME_OK.fullmatch(name):
        return name
    clean = re.sub(r"[^A-Za-z0-9_.:\-]", "_", name) or "_"
    if not re.match(r"[A-Za-z_]", clean):
        clean = "_" + clean
    if len(clean) > MAX_TOOL_NAME:
        clean = shorten(clean, MAX_TOOL_NAME, key=name, digest=hashlib.sha1)
    return clean


class ToolNames:
    """Sanitised names for one request, and the map back to the client's names."""

    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self.reverse: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name in self.forward:
            return self.forward[name]
        out = gemini_tool_name(name)
        if self.reverse.get(out, name) != name or (out != name and out in self.forward):
            out = shorten(out, MAX_TOOL_NAME, key=name, digest=hashlib.sha1)
        self.forward[name] = out
        self.reverse[out] = name
        return out

    def changed(self) -> dict[str, str]:
        return {new: old for new, old in self.reverse.items() if new != old}


def decode_tools(tools: Any) -> list[Tool]:
    if tools is None:
        return []
    out: list[Tool] = []
    for i, tool in enumerate(expect_type(tools, list, "tools")):
        expect_type(tool, dict, f"tools[{i}]")
        for key, value in tool.items():
            if key in ("functionDeclarations", "function_declarations"):
                for j, fd in enumerate(expect_type(value, list, f"tools[{i}].functionDeclarations")):
                    out.append(_decode_function(fd, f"tools[{i}].functionDeclarations[{j}]"))
            else:  # googleSearch, codeExecution, urlContext ...: Gemini's own tools, kept whole
                out.append(
                    Tool(name=re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key), raw={key: value})
                )
    return out


def _decode_function(fd: Any, path: str) -> Tool:
    expect_type(fd, dict, path)
    name = expect_type(fd.get("name"), str, f"{path}.name")
    require(bool(name), f"{path}.name: must not be empty", path)
    json_schema = opt_field(fd, "parametersJsonSchema", dict, path)
    params = opt_field(fd, "parameters", dict, path)
    if json_schema is not None:
        schema = json_schema
    elif params is not None:
        schema = schema_from_gemini(params)
    else:
        schema = {"type": "object", "properties": {}}
    return Tool(name=name, description=opt_field(fd, "description", str, path), schema=schema)


def decode_tool_config(tc: Any) -> ToolChoice | None:
    if tc is None:
        return None
    expect_type(tc, dict, "toolConfig")
    fcc = opt_field(tc, "functionCallingConfig", dict, "toolConfig")
    if fcc is None:
        return None
    mode = str(fcc.get("mode") or "AUTO").upper()
    names = opt_field(fcc, "allowedFunctionNames", list, "toolConfig.functionCallingConfig") or []
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED"):
        return ToolChoice("auto")
    if mode == "NONE":
        return ToolChoice("none")
    require(
        mode == "ANY",
        "toolConfig.functionCallingConfig.mode: must be AUTO, ANY, NONE or VALIDATED",
        "toolConfig",
    )
    if len(names) == 1 and isinstance(names[0], str):
        return ToolChoice("tool", names[0])
    return ToolChoice("any")


def native_tool(t: Tool) -> dict[str, Any] | None:
    """A provider-native tool for Gemini: ``{}`` to drop it, None when it is a plain function."""
    raw = t.raw
    if raw is None:
        return None
    kind = raw.get("type")
    if kind is None and "name" not in raw:
        return raw  # already Gemini's ({"googleSearch": {}})
    if kind in ("function", "custom"):
        return None
    if is_web_search(raw):
        return {"googleSearch": {}}
    return {}  # another family's server tool (bash, text_editor, ...): no Gemini equivalent
