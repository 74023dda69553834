"""JSON Schema and Gemini's OpenAPI-subset Schema, each into the other."""

from __future__ import annotations

from typing import Any

from ...codec import dumps_str

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
