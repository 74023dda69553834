"""Google Gemini generateContent: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``.

Requests arrive in camelCase or in proto snake_case (Google's curl samples); both decode alike. The
model and the stream flag come from the URL, not the body. A streamed answer is SSE (``?alt=sse``:
``data: <json>`` frames, nothing else) or a JSON array sent piece by piece; the server tells the
encoder which through ``req.extras["gemini_sse"]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from typing import Any

from ..codec import dumps, dumps_str, loads
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
)
from .base import expect_type, parse_data_url, require

NAME = "gemini"
STREAM_CONTENT_TYPE = "text/event-stream"
ARRAY_CONTENT_TYPE = "application/json"  # :streamGenerateContent without ?alt=sse

SKIP_SIGNATURE = "skip_thought_signature_validator"  # Gemini's sentinel for calls it never signed
MINTED_ID_PREFIX = (
    "call_gem_"  # ids the gateway made up for id-less upstream calls; not shown to Gemini clients
)
TOOL_NAMES_KEY = "gemini_tool_names"  # req.extras: sanitised upstream tool name -> the client's name

STATUS_BY_KIND = {
    "invalid_request": "INVALID_ARGUMENT",
    "authentication": "UNAUTHENTICATED",
    "billing": "FAILED_PRECONDITION",
    "permission": "PERMISSION_DENIED",
    "not_found": "NOT_FOUND",
    "request_too_large": "INVALID_ARGUMENT",
    "rate_limit": "RESOURCE_EXHAUSTED",
    "api_error": "INTERNAL",
    "overloaded": "UNAVAILABLE",
    "unavailable": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED",
}
KIND_BY_STATUS = {
    "INVALID_ARGUMENT": "invalid_request",
    "FAILED_PRECONDITION": "invalid_request",
    "OUT_OF_RANGE": "invalid_request",
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "permission",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "rate_limit",
    "UNAVAILABLE": "overloaded",
    "DEADLINE_EXCEEDED": "timeout",
}

FINISH_BY_STOP = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "pause_turn": "STOP",
    "max_tokens": "MAX_TOKENS",
    "refusal": "SAFETY",
}
REFUSAL_FINISH = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
}


def stop_reason(finish: str | None, saw_tool_call: bool) -> StopReason:
    """Gemini's finishReason as an internal stop reason; tool use is derived from what was emitted."""
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in REFUSAL_FINISH:
        return "refusal"
    return "tool_use" if saw_tool_call else "end_turn"


def get_field(obj: dict[str, Any], name: str) -> Any:
    """A field by its lowerCamelCase wire name or by its snake_case proto name."""
    value = obj.get(name)
    if value is None:
        value = obj.get(re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name))
    return value


def _opt(obj: dict[str, Any], name: str, types: type | tuple[type, ...], path: str) -> Any:
    value = get_field(obj, name)
    return None if value is None else expect_type(value, types, f"{path}.{name}" if path else name)


def _num(obj: dict[str, Any], name: str, lo: float, hi: float, path: str) -> float | None:
    value = _opt(obj, name, (int, float), path)
    require(value is None or lo <= value <= hi, f"{path}.{name}: must be between {lo} and {hi}", name)
    return None if value is None else float(value)


def _int(obj: dict[str, Any], name: str, path: str, lo: int = 0) -> int | None:
    value = _opt(obj, name, (int, float), path)
    if value is None:
        return None
    require(value == int(value) and value >= lo, f"{path}.{name}: must be an integer >= {lo}", name)
    return int(value)


def bare_model(model: str) -> str:
    return model[len("models/") :] if model.startswith("models/") else model


# ---------------------------------------------------------------- thought-signature carrier

_CARRIER = b"gwtui1:"
_CARRIER_B64 = base64.b64encode(_CARRIER)[:8].decode()


def carry_signature(th: Thinking) -> str:
    """Another family's signed thinking, wrapped whole (its text too: the signature covers the text, and
    a stream sends text and signature in separate parts) so a Gemini client can hand it back."""
    payload = dumps({"f": th.family, "s": th.signature, "r": th.redacted, "t": th.text})
    return base64.b64encode(_CARRIER + payload).decode()


def uncarry_signature(sig: str | None) -> dict[str, Any] | None:
    """The wrapped signature, whichever base64 alphabet the client re-encoded it with; None if not ours."""
    if not sig or not sig.replace("-", "+").replace("_", "/").startswith(_CARRIER_B64):
        return None
    try:
        raw = base64.b64decode(sig.replace("-", "+").replace("_", "/") + "=" * (-len(sig) % 4))
        data = loads(raw[len(_CARRIER) :])
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _thinking(text: str, sig: str | None) -> Thinking:
    carried = uncarry_signature(sig)
    if carried is not None:
        text = carried.get("t") or ""
        return Thinking(
            text=text, signature=carried.get("s"), redacted=carried.get("r"), family=carried.get("f")
        )
    return Thinking(text=text, signature=sig, family=NAME)


# ---------------------------------------------------------------- schemas

_GEMINI_SCHEMA_CAMEL = {
    "any_of": "anyOf",
    "max_items": "maxItems",
    "min_items": "minItems",
    "max_length": "maxLength",
    "min_length": "minLength",
    "max_properties": "maxProperties",
    "min_properties": "minProperties",
    "property_ordering": "propertyOrdering",
}


def schema_from_gemini(schema: Any) -> Any:
    """A Gemini (OpenAPI-subset) Schema as JSON Schema: lower-case types, ``nullable`` as a type list."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for raw_key, value in schema.items():
        key = _GEMINI_SCHEMA_CAMEL.get(str(raw_key), str(raw_key))
        if key in ("propertyOrdering", "nullable", "example"):
            continue
        if key == "type" and isinstance(value, str):
            out["type"] = "object" if value.upper() == "TYPE_UNSPECIFIED" else value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: schema_from_gemini(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = schema_from_gemini(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [schema_from_gemini(v) for v in value]
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


_KEEP_KEYS = {"description", "title", "enum", "minItems", "maxItems", "minimum", "maximum", "required"}
_FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"}, "number": {"float", "double"}}
_JSON_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}


def schema_for_gemini(schema: Any) -> dict[str, Any]:
    """JSON Schema as Gemini's ``parameters`` Schema: unsupported keywords removed, ``$ref`` inlined,
    ``const`` as an enum, type lists as ``nullable``/``anyOf``, arrays always given ``items``."""
    if not isinstance(schema, dict):
        return {"type": "OBJECT"}
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    return _sanitise(schema, defs, 0)


def _sanitise(schema: Any, defs: dict[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(schema, dict) or depth > 24:
        return {"type": "STRING"} if depth > 24 else {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref)
        merged = (
            {**target, **{k: v for k, v in schema.items() if k != "$ref"}} if isinstance(target, dict) else {}
        )
        return _sanitise(merged or {"type": "object"}, defs, depth + 1)
    schema = dict(schema)
    subs = schema.pop("allOf", None)
    for sub in subs if isinstance(subs, list) else []:  # merge the parts of an allOf into one schema
        for k, v in _sanitise(sub, defs, depth + 1).items():
            if k == "type":
                schema.setdefault("type", v.lower())
            elif k == "properties":
                schema["properties"] = {**(schema.get("properties") or {}), **v}
            elif k == "required":
                schema["required"] = list(schema.get("required") or []) + list(v)
            else:
                schema.setdefault(k, v)
    out: dict[str, Any] = {}
    nullable = schema.get("nullable") is True
    types = schema.get("type")
    if isinstance(types, list):
        nullable = nullable or "null" in types
        types = [t for t in types if t != "null"]
        if len(types) > 1:
            branches = [_sanitise({**schema, "type": t}, defs, depth + 1) for t in types if t in _JSON_TYPES]
            out = {"anyOf": branches}
            if isinstance(schema.get("description"), str):
                out["description"] = schema["description"]
            if nullable:
                out["nullable"] = True
            return out
        types = types[0] if types else None
    variants = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(variants, list):
        branches = []
        for v in variants:
            if isinstance(v, dict) and v.get("type") == "null":
                nullable = True
            else:
                branches.append(_sanitise(v, defs, depth + 1))
        if len(branches) == 1 and not isinstance(types, str):
            merged = branches[0]
            if isinstance(schema.get("description"), str):
                merged.setdefault("description", schema["description"])
            if nullable:
                merged["nullable"] = True
            return merged
        if branches:
            out["anyOf"] = branches
    if "const" in schema:
        schema.setdefault("enum", [schema["const"]])
    if not isinstance(types, str) and isinstance(schema.get("enum"), list) and schema["enum"]:
        types = _enum_type(schema["enum"])
    if not isinstance(types, str) and ("properties" in schema):
        types = "object"
    if not isinstance(types, str) and "items" in schema:
        types = "array"
    jtype = types.lower() if isinstance(types, str) and types.lower() in _JSON_TYPES else None
    if jtype:
        out["type"] = jtype.upper()
    for key in _KEEP_KEYS:
        if key in schema:
            out[key] = schema[key]
    if not isinstance(out.get("description"), str):
        out.pop("description", None)
    if not isinstance(out.get("title"), str):
        out.pop("title", None)
    enum = out.get("enum")
    if enum is not None:
        if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
            out["type"] = "STRING"
        else:
            del out["enum"]
            if isinstance(enum, list) and enum:
                hint = "Allowed values: " + ", ".join(dumps_str(e) for e in enum)
                out["description"] = f"{out['description']} ({hint})" if "description" in out else hint
    fmt = schema.get("format")
    if jtype and isinstance(fmt, str) and fmt in _FORMATS.get(jtype, ()):
        out["format"] = fmt
    if jtype == "object" or isinstance(schema.get("properties"), dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        clean = {
            name: _sanitise(sub, defs, depth + 1) for name, sub in props.items() if isinstance(sub, dict)
        }
        if clean:
            out["properties"] = clean
        required = [r for r in out.pop("required", None) or [] if isinstance(r, str) and r in clean]
        if required:
            out["required"] = list(dict.fromkeys(required))
    else:
        out.pop("required", None)
    if jtype == "array":
        items = schema.get("items")
        if isinstance(items, list):  # tuple form: describe the first element type
            items = items[0] if items else None
        out["items"] = (
            _sanitise(items, defs, depth + 1) if isinstance(items, dict) and items else {"type": "STRING"}
        )
        if not out["items"]:
            out["items"] = {"type": "STRING"}
    else:
        out.pop("minItems", None)
        out.pop("maxItems", None)
    if jtype not in ("number", "integer"):
        out.pop("minimum", None)
        out.pop("maximum", None)
    if nullable:
        out["nullable"] = True
    return out


def _enum_type(values: list[Any]) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


# ---------------------------------------------------------------- tool names

_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}")


def gemini_tool_name(name: str) -> str:
    """A name Gemini accepts: starts with a letter or ``_``, only ``[A-Za-z0-9_.:-]``, at most 64."""
    if _NAME_OK.fullmatch(name):
        return name
    clean = re.sub(r"[^A-Za-z0-9_.:\-]", "_", name) or "_"
    if not re.match(r"[A-Za-z_]", clean):
        clean = "_" + clean
    if len(clean) > 64:
        clean = clean[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return clean


class _Names:
    """Sanitised names for one request, and the map back to the client's names."""

    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self.reverse: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name in self.forward:
            return self.forward[name]
        out = gemini_tool_name(name)
        if self.reverse.get(out, name) != name or (out != name and out in self.forward):
            out = out[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
        self.forward[name] = out
        self.reverse[out] = name
        return out

    def changed(self) -> dict[str, str]:
        return {new: old for new, old in self.reverse.items() if new != old}


# ---------------------------------------------------------------- decoding (client body -> model)


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
    model = model or _opt(body, "model", str, "")
    require(
        bool(model), "model: missing; name it in the URL (/v1beta/models/{model}:generateContent)", "model"
    )
    contents = get_field(body, "contents")
    require(contents is not None, "contents: field required", "contents")
    expect_type(contents, list, "contents")
    req = ChatRequest(
        model=bare_model(model or ""),
        messages=_decode_contents(contents),
        system=_decode_system(get_field(body, "systemInstruction")),
        stream=bool(stream),
        tools=_decode_tools(get_field(body, "tools")),
        tool_choice=_decode_tool_config(get_field(body, "toolConfig")),
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


def _decode_contents(contents: list[Any]) -> list[Message]:
    messages: list[Message] = []
    calls: list[tuple[str, str]] = []  # every functionCall so far: (id, name)
    last_turn: list[tuple[str, str]] = []  # those of the latest model content
    answered: set[str] = set()
    for ci, content in enumerate(contents):
        path = f"contents[{ci}]"
        expect_type(content, dict, path)
        role = content.get("role") or "user"
        require(
            role in ("user", "model", "function"),
            f"{path}.role: must be 'user' or 'model', got {role!r}",
            path,
        )
        raw_parts = expect_type(content.get("parts") or [], list, f"{path}.parts")
        parts: list[Part] = []
        turn: list[tuple[str, str]] = []
        for pi, raw in enumerate(raw_parts):
            for part in _decode_part(raw, f"{path}.parts[{pi}]", f"call_{ci}_{pi}"):
                if isinstance(part, ToolCall):
                    turn.append((part.id, part.name))
                elif isinstance(part, ToolResult):
                    part.call_id = part.call_id or _match_call(part.name or "", last_turn, calls, answered)
                    part.call_id = part.call_id or f"call_{ci}_{pi}"
                    answered.add(part.call_id)
                parts.append(part)
        if turn:
            calls.extend(turn)
            last_turn = turn
        messages.append(Message("assistant" if role == "model" else "user", parts))
    return messages


def _match_call(
    name: str, last_turn: list[tuple[str, str]], calls: list[tuple[str, str]], answered: set[str]
) -> str:
    """The call an id-less functionResponse answers: by name and position, latest model turn first."""
    for cid, cname in (*last_turn, *calls):
        if cname == name and cid not in answered:
            return cid
    for cid, _ in last_turn:
        if cid not in answered:
            return cid
    return ""


NON_PAYLOAD_KEYS = {
    "thought",
    "thoughtSignature",
    "thought_signature",
    "partMetadata",
    "part_metadata",
    "mediaResolution",
    "media_resolution",
}


def _decode_part(p: Any, path: str, minted_id: str) -> list[Part]:
    expect_type(p, dict, path)
    require(
        bool(p),
        f"{path}: empty part; give text, inlineData, fileData, functionCall or functionResponse",
        path,
    )
    sig = _opt(p, "thoughtSignature", str, path)
    text = p.get("text")
    if text is not None:
        expect_type(text, str, f"{path}.text")
        if p.get("thought"):
            return [_thinking(text, sig)]
        out: list[Part] = [_thinking("", sig)] if sig else []
        return [*out, Text(text)] if text else out
    blob = get_field(p, "inlineData")
    if blob is not None:
        return [_decode_blob(expect_type(blob, dict, f"{path}.inlineData"), p, f"{path}.inlineData")]
    ref = get_field(p, "fileData")
    if ref is not None:
        expect_type(ref, dict, f"{path}.fileData")
        uri = expect_type(get_field(ref, "fileUri"), str, f"{path}.fileData.fileUri")
        mime = _opt(ref, "mimeType", str, f"{path}.fileData") or ""
        if mime.startswith("image/"):
            return [Image(media_type=mime, url=uri)]
        if mime == "application/pdf":
            return [Document(url=uri)]
        return [Opaque(NAME, p)]
    call = get_field(p, "functionCall")
    if call is not None:
        expect_type(call, dict, f"{path}.functionCall")
        args = call.get("args")
        return [
            ToolCall(
                id=_opt(call, "id", str, f"{path}.functionCall") or minted_id,
                name=expect_type(call.get("name"), str, f"{path}.functionCall.name"),
                arguments=expect_type(args, dict, f"{path}.functionCall.args") if args is not None else {},
                signature=sig,
            )
        ]
    resp = get_field(p, "functionResponse")
    if resp is not None:
        return [
            _decode_function_response(
                expect_type(resp, dict, f"{path}.functionResponse"), f"{path}.functionResponse"
            )
        ]
    if sig and not set(p) - NON_PAYLOAD_KEYS:
        return [_thinking("", sig)]  # a signature-only part
    return [Opaque(NAME, p)]  # executableCode, codeExecutionResult, ...


def _decode_blob(blob: dict[str, Any], part: dict[str, Any], path: str) -> Part:
    mime = expect_type(get_field(blob, "mimeType"), str, f"{path}.mimeType")
    data = expect_type(blob.get("data"), str, f"{path}.data")
    if mime.startswith("image/"):
        return Image(media_type=mime, data=data)
    if mime == "application/pdf":
        return Document(data=data)
    if mime.startswith("text/"):
        try:
            text = base64.b64decode(data, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise GatewayError(
                "invalid_request", f"{path}.data: not base64-encoded UTF-8 text", param=path
            ) from None
        return Document(media_type="text/plain", text=text)
    return Opaque(NAME, part)


def _decode_function_response(fr: dict[str, Any], path: str) -> ToolResult:
    name = expect_type(fr.get("name"), str, f"{path}.name")
    response = fr.get("response")
    response = {} if response is None else expect_type(response, dict, f"{path}.response")
    is_error = "error" in response and "output" not in response
    if is_error:
        value = response["error"]
    elif "output" in response:
        value = response["output"]
    else:
        value = response  # any other object is the output, wholesale
    content: list[Text | Image | Document] = []
    if value not in ({}, None, ""):
        content.append(Text(value if isinstance(value, str) else dumps_str(value)))
    for i, raw in enumerate(expect_type(fr.get("parts") or [], list, f"{path}.parts")):
        for part in _decode_part(raw, f"{path}.parts[{i}]", ""):
            if isinstance(part, (Text, Image, Document)):
                content.append(part)
    return ToolResult(call_id=_opt(fr, "id", str, path) or "", content=content, is_error=is_error, name=name)


def _decode_tools(tools: Any) -> list[Tool]:
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
    json_schema = _opt(fd, "parametersJsonSchema", dict, path)
    params = _opt(fd, "parameters", dict, path)
    if json_schema is not None:
        schema = json_schema
    elif params is not None:
        schema = schema_from_gemini(params)
    else:
        schema = {"type": "object", "properties": {}}
    return Tool(name=name, description=_opt(fd, "description", str, path), schema=schema)


def _decode_tool_config(tc: Any) -> ToolChoice | None:
    if tc is None:
        return None
    expect_type(tc, dict, "toolConfig")
    fcc = _opt(tc, "functionCallingConfig", dict, "toolConfig")
    if fcc is None:
        return None
    mode = str(fcc.get("mode") or "AUTO").upper()
    names = _opt(fcc, "allowedFunctionNames", list, "toolConfig.functionCallingConfig") or []
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


_LEVELS = ("minimal", "low", "medium", "high")


def _decode_generation_config(req: ChatRequest, gen: dict[str, Any]) -> None:
    path = "generationConfig"
    count = _int(gen, "candidateCount", path)
    require(
        count is None or count <= 1,
        f"{path}.candidateCount: only one candidate per request is supported",
        path,
    )
    req.temperature = _num(gen, "temperature", 0, 2, path)
    req.top_p = _num(gen, "topP", 0, 1, path)
    req.top_k = _int(gen, "topK", path)
    req.max_tokens = _int(gen, "maxOutputTokens", path, lo=1)
    req.stop = [
        expect_type(s, str, f"{path}.stopSequences") for s in _opt(gen, "stopSequences", list, path) or []
    ]
    for name, key in (
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ):
        value = _opt(gen, name, (int, float), path)
        if value is not None:
            req.extras[key] = value
    mime = _opt(gen, "responseMimeType", str, path)
    if mime in (None, "application/json"):  # text/x.enum and others have no internal equivalent
        json_schema = get_field(gen, "responseJsonSchema") or gen.get("_responseJsonSchema")
        schema = json_schema if isinstance(json_schema, dict) else None
        if schema is None and isinstance(get_field(gen, "responseSchema"), dict):
            schema = schema_from_gemini(get_field(gen, "responseSchema"))
        if schema is not None:
            req.response_format = ResponseFormat("json_schema", schema)
        elif mime == "application/json":
            req.response_format = ResponseFormat("json_object")
    th = _opt(gen, "thinkingConfig", dict, path)
    if th:
        req.thinking = _decode_thinking(th, f"{path}.thinkingConfig")


def _decode_thinking(th: dict[str, Any], path: str) -> ThinkingConfig | None:
    include = bool(get_field(th, "includeThoughts"))
    budget = _opt(th, "thinkingBudget", int, path)
    level = _opt(th, "thinkingLevel", str, path)
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


# ---------------------------------------------------------------- encoding (model -> Gemini body)


def encode_request(req: ChatRequest, *, model: str | None = None) -> dict[str, Any]:
    """The internal request as a Gemini body for an upstream. ``model`` is the upstream model (it picks
    thinkingLevel for Gemini 3 or thinkingBudget before). Leaves the tool-name map in ``req.extras``."""
    names = _Names()
    body: dict[str, Any] = {}
    body["contents"] = _encode_contents(req.messages, names)
    require(
        bool(body["contents"]), "messages: at least one non-empty message is required for Gemini", "messages"
    )
    system = [{"text": t.text} for t in req.system if t.text]
    if system:
        body["systemInstruction"] = {"parts": system}
    decls: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    for t in req.tools:
        native = _native_tool(t)
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


def _native_tool(t: Tool) -> dict[str, Any] | None:
    """A provider-native tool for Gemini: ``{}`` to drop it, None when it is a plain function."""
    raw = t.raw
    if raw is None:
        return None
    kind = raw.get("type")
    if kind is None and "name" not in raw:
        return raw  # already Gemini's ({"googleSearch": {}})
    if kind in ("function", "custom"):
        return None
    if isinstance(kind, str) and kind.startswith("web_search"):
        return {"googleSearch": {}}
    return {}  # another family's server tool (bash, text_editor, ...): no Gemini equivalent


_FETCHABLE = (
    "gs://",
    "https://generativelanguage.googleapis.com/",
    "https://www.youtube.com/",
    "https://youtu.be/",
)
_MAGIC = {
    "iVBOR": "image/png",
    "/9j/": "image/jpeg",
    "R0lGOD": "image/gif",
    "UklGR": "image/webp",
    "JVBER": "application/pdf",
}


def _media(p: Image | Document) -> dict[str, Any]:
    mime = p.media_type
    if p.data is not None:
        mime = mime or next(
            (m for k, m in _MAGIC.items() if p.data.startswith(k)), "application/octet-stream"
        )
        return {"inlineData": {"mimeType": mime, "data": p.data}}
    url = p.url or ""
    parsed = parse_data_url(url)
    if parsed is not None:
        return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
    if url.startswith(_FETCHABLE):
        ref = {"fileUri": url}
        if mime:
            ref = {"mimeType": mime, **ref}
        return {"fileData": ref}
    what = "image" if isinstance(p, Image) else "document"
    raise GatewayError(
        "invalid_request",
        f"Gemini cannot fetch {what} URLs such as {url[:80]!r}; send the {what} inline as base64 "
        "(a data: URL or base64 source) instead",
    )


def _content_part(p: Image | Document) -> dict[str, Any]:
    if isinstance(p, Document) and p.text is not None:
        return {"text": f"{p.title}\n\n{p.text}" if p.title else p.text}
    return _media(p)


def _encode_contents(messages: list[Message], names: _Names) -> list[dict[str, Any]]:
    turns: list[tuple[str, list[Part]]] = []
    for m in messages:
        role = "model" if m.role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(m.content)
        else:
            turns.append((role, list(m.content)))
    results = {
        p.call_id: p for role, parts in turns if role == "user" for p in parts if isinstance(p, ToolResult)
    }
    call_ids = {p.id for role, parts in turns if role == "model" for p in parts if isinstance(p, ToolCall)}
    out: list[dict[str, Any]] = []
    for i, (role, parts) in enumerate(turns):
        if role == "model":
            calls = [p for p in parts if isinstance(p, ToolCall)]
            if calls and i == len(turns) - 1:
                break  # a trailing model turn whose calls were never answered
            gparts = encode_model_parts(parts, names, for_client=False)
            if gparts:
                out.append({"role": "model", "parts": gparts})
            if calls:  # all answers, in call order and equal in number, in one user content
                answers: list[dict[str, Any]] = []
                media: list[dict[str, Any]] = []
                for call in calls:
                    result = results.get(call.id)
                    text = result.text() if result else "No result was provided for this call."
                    key = "error" if result is None or result.is_error else "output"
                    answers.append({"functionResponse": {"name": names(call.name), "response": {key: text}}})
                    media.extend(
                        _content_part(c)
                        for c in (result.content if result else [])
                        if not isinstance(c, Text)
                    )
                out.append({"role": "user", "parts": answers + media})
            continue
        gparts = []
        for p in parts:
            if isinstance(p, ToolResult):
                if p.call_id not in call_ids:  # answers no call we know: keep its words as text
                    gparts.append({"text": f"[result of tool {p.name or p.call_id}]\n{p.text()}"})
            elif isinstance(p, Text):
                if p.text:
                    gparts.append({"text": p.text})
            elif isinstance(p, (Image, Document)):
                gparts.append(_content_part(p))
            elif isinstance(p, Opaque) and p.family == NAME:
                gparts.append(p.data)
        if not gparts:
            continue
        if out and out[-1]["role"] == "user":
            out[-1]["parts"].extend(gparts)
        else:
            out.append({"role": "user", "parts": gparts})
    return out


def encode_model_parts(
    parts: list[Part], names: _Names | None = None, *, for_client: bool, show_thoughts: bool = True
) -> list[dict[str, Any]]:
    """A model turn as Gemini parts. For an upstream: Gemini signatures only, the skip sentinel on an
    unsigned first call. For a client: call ids, other families' signatures in a carrier."""
    out: list[dict[str, Any]] = []
    pending: str | None = None  # a signature-only thinking part: rides on the next part
    first_call = True

    def flush() -> None:
        nonlocal pending
        if pending:
            out.append({"text": "", "thoughtSignature": pending})
        pending = None

    for p in parts:
        if isinstance(p, Thinking):
            foreign = p.family != NAME
            if foreign and not for_client:
                continue
            sig = (carry_signature(p) if p.signature or p.redacted else None) if foreign else p.signature
            if p.text and show_thoughts:
                flush()
                out.append({"text": p.text, "thought": True, **({"thoughtSignature": sig} if sig else {})})
            elif sig:
                flush()
                pending = sig
        elif isinstance(p, Text):
            if p.text or pending:
                out.append({"text": p.text, **({"thoughtSignature": pending} if pending else {})})
                pending = None
        elif isinstance(p, ToolCall):
            call: dict[str, Any] = {"name": names(p.name) if names else p.name, "args": p.arguments}
            if for_client and p.id and not p.id.startswith(MINTED_ID_PREFIX):
                call = {"id": p.id, **call}
            sig = p.signature
            if sig and pending:
                flush()
            sig = sig or pending
            pending = None
            if sig is None and first_call and not for_client:
                sig = SKIP_SIGNATURE
            first_call = False
            out.append({"functionCall": call, **({"thoughtSignature": sig} if sig else {})})
        elif isinstance(p, (Image, Document)):
            flush()
            out.append(_content_part(p))
        elif isinstance(p, Opaque) and p.family == NAME:
            flush()
            out.append(p.data)
    flush()
    return out


_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}


def _encode_thinking(th: ThinkingConfig, model: str) -> dict[str, Any]:
    model = model.lower()
    pro = "pro" in model
    cfg: dict[str, Any] = {}
    if re.search(r"gemini-([3-9]|\d\d)", model):
        effort = th.effort or _effort_for_budget(th.budget_tokens)
        if not th.enabled:
            effort = "minimal"
        if effort:
            level = {"minimal": "minimal", "low": "low", "medium": "medium"}.get(effort, "high")
            if pro:
                level = "low" if level in ("minimal", "low") else "high"
            cfg["thinkingLevel"] = level
    elif not th.enabled:
        cfg["thinkingBudget"] = 128 if pro else 0  # 2.5 Pro cannot switch thinking off
    else:
        budget = th.budget_tokens or (_BUDGETS.get(th.effort, 8192) if th.effort else -1)
        if budget > 0:
            budget = max(512 if "lite" in model else 128, min(budget, 32768 if pro else 24576))
        cfg["thinkingBudget"] = budget
    if th.enabled and th.include:
        cfg["includeThoughts"] = True
    return cfg


def _effort_for_budget(budget: int | None) -> str | None:
    if not budget:
        return None
    return "minimal" if budget <= 512 else "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


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
        cfg = _encode_thinking(req.thinking, model)
        if cfg:
            gen["thinkingConfig"] = cfg
    return gen


# ---------------------------------------------------------------- usage


def decode_usage(u: dict[str, Any] | None) -> Usage:
    """Gemini usageMetadata: the prompt count includes cached tokens; thoughts are outside candidates."""
    if not isinstance(u, dict):
        return Usage()

    def count(key: str) -> int:
        value = u.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    cached = min(count("cachedContentTokenCount"), prompt)
    thoughts = count("thoughtsTokenCount")
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=count("candidatesTokenCount") + thoughts,
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
    )


def encode_usage(u: Usage) -> dict[str, Any]:
    out = {
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
        "totalTokenCount": u.total_tokens,
    }
    if u.cache_read_tokens:
        out["cachedContentTokenCount"] = u.cache_read_tokens
    if u.reasoning_tokens:
        out["thoughtsTokenCount"] = u.reasoning_tokens
    return out


# ---------------------------------------------------------------- responses


def _show_thoughts(req: ChatRequest | None) -> bool:
    return req is None or req.thinking is None or req.thinking.include


def encode_response(resp: ChatResponse, req: ChatRequest | None = None) -> dict[str, Any]:
    parts = encode_model_parts(resp.content, for_client=True, show_thoughts=_show_thoughts(req))
    candidate = {
        "content": {"role": "model", "parts": parts},
        "finishReason": FINISH_BY_STOP.get(resp.stop_reason, "STOP"),
        "index": 0,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": encode_usage(resp.usage),
        "modelVersion": resp.model,
        "responseId": resp.id,
    }


def decode_response(body: Any, *, names: dict[str, str] | None = None) -> ChatResponse:
    """A GenerateContentResponse (or a list of streamed ones, merged) as an internal response."""
    chunks = body if isinstance(body, list) else [body]
    resp = ChatResponse(id="", model="")
    finish: str | None = None
    blocked = False
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), dict):
            err = chunk["error"]
            kind = KIND_BY_STATUS.get(str(err.get("status")), "api_error")
            raise GatewayError(
                kind, str(err.get("message") or "upstream error"), status=502 if kind == "api_error" else None
            )
        resp.id = resp.id or str(chunk.get("responseId") or "")
        resp.model = resp.model or str(chunk.get("modelVersion") or "")
        if isinstance(chunk.get("usageMetadata"), dict):
            resp.usage = decode_usage(chunk["usageMetadata"])
        cand, parts = first_candidate(chunk)
        blocked = blocked or is_blocked(chunk)
        for part in parts:
            _append_response_part(resp.content, part, names or {})
        finish = cand.get("finishReason") or finish
    resp.id = resp.id or mint_response_id()
    saw_tool = any(isinstance(p, ToolCall) for p in resp.content)
    resp.stop_reason = "refusal" if blocked else stop_reason(finish, saw_tool)
    return resp


def first_candidate(chunk: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first candidate of a response and its parts, tolerating missing or malformed pieces."""
    candidates = chunk.get("candidates")
    cand = (
        candidates[0]
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict)
        else {}
    )
    content = cand.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return cand, [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def is_blocked(chunk: dict[str, Any]) -> bool:
    """The prompt was blocked: no candidates, a promptFeedback.blockReason."""
    feedback = chunk.get("promptFeedback")
    return not chunk.get("candidates") and isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def mint_response_id() -> str:
    return "resp_" + uuid.uuid4().hex[:24]


def mint_call_id() -> str:
    return MINTED_ID_PREFIX + uuid.uuid4().hex[:20]


def _append_response_part(content: list[Part], part: dict[str, Any], names: dict[str, str]) -> None:
    """Add one upstream part, merging text deltas into the part before (as a stream would)."""
    sig = part.get("thoughtSignature")
    last = content[-1] if content else None
    text = part.get("text")
    if isinstance(text, str):
        if part.get("thought"):
            if isinstance(last, Thinking) and last.family == NAME and not last.signature and last.text:
                last.text += text
                last.signature = sig
            else:
                content.append(Thinking(text=text, signature=sig, family=NAME))
            return
        if sig:
            content.append(Thinking(signature=sig, family=NAME))
        elif isinstance(last, Text) and text:
            last.text += text
            return
        if text:
            content.append(Text(text))
        return
    call = part.get("functionCall")
    if isinstance(call, dict):
        name = str(call.get("name") or "")
        args = call.get("args")
        content.append(
            ToolCall(
                id=str(call.get("id") or mint_call_id()),
                name=names.get(name, name),
                arguments=args if isinstance(args, dict) else {},
                signature=sig,
            )
        )
    elif sig and not set(part) - NON_PAYLOAD_KEYS:
        content.append(Thinking(signature=sig, family=NAME))
    else:
        content.append(Opaque(NAME, part))


# ---------------------------------------------------------------- streaming (model events -> Gemini chunks)


class StreamEncoder:
    """Internal events -> Gemini chunks: SSE ``data:`` frames, or elements of one streamed JSON array."""

    def __init__(self, req: ChatRequest, request_id: str) -> None:
        self.req = req
        self.request_id = request_id
        self.sse = bool(req.extras.get("gemini_sse", True))
        self.show_thoughts = _show_thoughts(req)
        self.model = req.model
        self.response_id = request_id
        self.usage = Usage()
        self.stop: StopReason | None = None
        self.opened = False  # the JSON array's "[" was sent
        self.done = False
        self.block: BlockStart | None = None
        self.buffer: list[str] = []  # tool-call arguments, or whether a thinking block had text
        self.signature: str | None = None

    def encode(self, ev: Event) -> bytes:
        if self.done:
            return b""
        if isinstance(ev, TextDelta):
            return self._chunk([{"text": ev.text}]) if ev.text else b""
        if isinstance(ev, ThinkingDelta):
            if not ev.text:
                return b""
            self.buffer.append(ev.text)
            return self._chunk([{"text": ev.text, "thought": True}]) if self.show_thoughts else b""
        if isinstance(ev, ToolArgsDelta):
            self.buffer.append(ev.partial_json)
            return b""
        if isinstance(ev, SignatureDelta):
            self.signature = (self.signature or "") + ev.signature
            return b""
        if isinstance(ev, BlockStart):
            self.block, self.buffer, self.signature = ev, [], ev.signature
            if ev.type == "opaque" and ev.family == NAME and ev.data:
                return self._chunk([ev.data])
            return b""
        if isinstance(ev, BlockStop):
            return self._block_stop()
        if isinstance(ev, MessageStart):
            self.model = ev.model or self.model
            self.response_id = ev.id or self.response_id
            self.usage.merge(ev.usage)
            return b""
        if isinstance(ev, MessageDelta):
            self.stop = ev.stop_reason
            self.usage.merge(ev.usage)
            return b""
        if isinstance(ev, MessageStop):
            self.done = True
            finish = FINISH_BY_STOP.get(self.stop or "end_turn", "STOP")
            return self._chunk([{"text": ""}], finish=finish, usage=encode_usage(self.usage))
        if isinstance(ev, StreamError):
            self.done = True
            return self._frame(
                encode_error(GatewayError(ev.kind, ev.message, status=ev.status), self.request_id)
            )
        return b""

    def _block_stop(self) -> bytes:
        block, self.block = self.block, None
        if block is None:
            return b""
        if block.type == "tool_call":
            raw = "".join(self.buffer)
            try:
                args = loads(raw) if raw.strip() else {}
            except ValueError:
                args = None
            if not isinstance(args, dict):
                args = {"input": raw} if block.custom else {"raw": raw}
            call: dict[str, Any] = {"name": block.name or "", "args": args}
            if block.id and not block.id.startswith(MINTED_ID_PREFIX):
                call = {"id": block.id, **call}
            sig = self.signature if block.family in (None, NAME) else None
            return self._chunk([{"functionCall": call, **({"thoughtSignature": sig} if sig else {})}])
        if block.type == "thinking" and (self.signature or block.redacted):
            th = Thinking(
                "".join(self.buffer), signature=self.signature, redacted=block.redacted, family=block.family
            )
            sig = self.signature if block.family == NAME and self.signature else carry_signature(th)
            part: dict[str, Any] = {"text": "", "thoughtSignature": sig}
            if self.buffer and self.show_thoughts:
                part = {"text": "", "thought": True, "thoughtSignature": sig}
            return self._chunk([part])
        return b""

    def _chunk(
        self, parts: list[dict[str, Any]], *, finish: str | None = None, usage: dict[str, Any] | None = None
    ) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if usage:
            chunk["usageMetadata"] = usage
        chunk["modelVersion"] = self.model
        chunk["responseId"] = self.response_id
        return self._frame(chunk)

    def _frame(self, obj: dict[str, Any]) -> bytes:
        payload = dumps(obj)
        if self.sse:
            return b"data: " + payload + b"\r\n\r\n"
        head = b",\r\n" if self.opened else b"["
        self.opened = True
        return head + payload

    def keepalive(self) -> bytes:
        return b""  # google-genai cannot parse anything but data frames

    def finish(self) -> bytes:
        if self.sse:
            return b""
        tail = b"]" if self.opened else b"[]"
        self.opened = True
        return tail


# ---------------------------------------------------------------- errors


def encode_error(err: GatewayError, request_id: str) -> dict[str, Any]:
    status = STATUS_BY_KIND.get(err.kind, "INTERNAL")
    error: dict[str, Any] = {
        "code": 503 if err.status == 529 else err.status,
        "message": err.message,
        "status": status,
    }
    details: list[dict[str, Any]] = []
    if err.retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{max(1, round(err.retry_after))}s",
            }
        )
    if request_id:
        details.append({"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id})
    if details:
        error["details"] = details
    return {"error": error}
