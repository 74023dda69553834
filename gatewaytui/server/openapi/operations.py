"""Operation builders for the OpenAPI document: operations, request bodies, parameters, and success and
error responses."""

from __future__ import annotations

from typing import Any

from .components import Security
from .schema import JSON, SSE, SSE_EVENT, STR, Schema, arr, ref


def error_responses(schema: str, codes: dict[str, str]) -> dict[str, Any]:
    return {
        code: {"description": text, "content": {JSON: {"schema": ref(schema)}}}
        for code, text in codes.items()
    }


def ok_response(
    schema: Schema, description: str = "OK", *, stream: bool = False, stream_json: bool = False
) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if stream:
        content[SSE] = {"schema": SSE_EVENT}
    if stream_json:  # Gemini's JSON-array stream shares application/json with the unary answer
        content[JSON] = {"schema": {"anyOf": [schema, arr(schema)]}}
    return {"description": description, "content": content}


def request_body(schema: Schema, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def operation(
    summary: str,
    *,
    tags: list[str],
    security: Security | None,
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
    parameters: list[Any] | None = None,
    op_id: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "operationId": op_id, "tags": tags, "responses": responses}
    out["security"] = security if security is not None else []
    if body is not None:
        out["requestBody"] = body
    if parameters:
        out["parameters"] = parameters
    return out


def path_param(name: str, schema: Schema | None = None, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or STR, "description": description}


def query_param(name: str, schema: Schema, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}
