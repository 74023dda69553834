"""Schema shorthands for the OpenAPI document: media types, primitive schemas, and the builders for
references, objects, arrays and nullable values."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
SSE = "text/event-stream"
Schema = dict[str, Any]

STR: Schema = {"type": "string"}
SSE_EVENT: Schema = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "description": "one server-sent event; data is the protocol's JSON (or [DONE])",
}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def arr(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}
