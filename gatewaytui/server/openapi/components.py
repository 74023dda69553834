"""The document's components: the security schemes (and the requirements that name them) and the shared
request, response and error schemas.

Model names come from the running catalog, so the request schemas list the values that succeed."""

from __future__ import annotations

from typing import Any

from ...ops.keys import TENANT_KEY
from .schema import ANY_OBJECT, BOOL, INT, NUM, STR, arr, nullable, obj

SECURITY_SCHEMES: dict[str, Any] = {
    "tenantBearer": {"type": "http", "scheme": "bearer", "description": "a tenant key (gw-...)"},
    "tenantApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "tenantGoogKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
    "tenantQueryKey": {"type": "apiKey", "in": "query", "name": "key"},
    "adminBearer": {"type": "http", "scheme": "bearer", "description": "the admin token (admin_token_env)"},
}

# OpenAPI security requirements: any one of the listed schemes (scheme name -> scopes) admits the caller
Security = list[dict[str, list[str]]]
TENANT: Security = [{"tenantBearer": []}, {"tenantApiKey": []}, {"tenantGoogKey": []}]
GEMINI_TENANT: Security = [*TENANT, {"tenantQueryKey": []}]
ADMIN: Security = [{"adminBearer": []}]


def component_schemas(models: list[str]) -> dict[str, Any]:
    model = {"type": "string", "enum": models}
    text_block = obj({"type": {"type": "string", "enum": ["text"]}, "text": STR}, ("type", "text"))
    anthropic_message = obj(
        {
            "role": {"type": "string", "enum": ["user", "assistant", "system"]},
            "content": {"anyOf": [STR, arr(text_block, minItems=1)]},
        },
        ("role", "content"),
    )
    anthropic_tool = obj(
        {
            "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
            "description": STR,
            "input_schema": obj({"type": {"type": "string", "enum": ["object"]}}, ("type",)),
        },
        ("name", "input_schema"),
    )
    anthropic_fields = {
        "model": model,
        "messages": arr(anthropic_message, minItems=1),
        "system": {"anyOf": [STR, arr(text_block)]},
        "tools": arr(anthropic_tool),
        "tool_choice": obj({"type": {"type": "string", "enum": ["auto", "any", "none"]}}, ("type",)),
        "metadata": obj({"user_id": STR}),
        "stop_sequences": arr(STR),
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 0},
    }
    chat_message = obj(
        {
            "role": {"type": "string", "enum": ["system", "user", "assistant", "developer"]},
            "content": {"anyOf": [STR, arr(text_block, minItems=1)]},
            "name": STR,
        },
        ("role", "content"),
    )
    function_tool = obj(
        {
            "type": {"type": "string", "enum": ["function"]},
            "function": obj(
                {
                    "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                    "description": STR,
                    "parameters": obj({"type": {"type": "string", "enum": ["object"]}}, ("type",)),
                },
                ("name",),
            ),
        },
        ("type", "function"),
    )
    input_text = obj({"type": {"type": "string", "enum": ["input_text"]}, "text": STR}, ("type", "text"))
    responses_item = obj(
        {
            "role": {"type": "string", "enum": ["user", "assistant", "system", "developer"]},
            "content": {"anyOf": [STR, arr(input_text, minItems=1)]},
        },
        ("role", "content"),
    )
    gemini_content = obj(
        {
            "role": {"type": "string", "enum": ["user", "model"]},
            "parts": arr(obj({"text": STR}, ("text",)), minItems=1),
        },
        ("parts",),
    )
    gemini_fields = {
        "contents": arr(gemini_content, minItems=1),
        "systemInstruction": obj({"parts": arr(obj({"text": STR}, ("text",)))}, ("parts",)),
        "generationConfig": obj(
            {
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "maxOutputTokens": {"type": "integer", "minimum": 1},
                "topP": NUM,
                "topK": {"type": "integer", "minimum": 1},
                "stopSequences": arr(STR),
            }
        ),
    }
    openai_error_body = obj(
        {"message": STR, "type": STR, "param": nullable(STR), "code": nullable(STR)}, ("message", "type")
    )
    return {
        "AnthropicRequest": obj(
            {**anthropic_fields, "max_tokens": {"type": "integer", "minimum": 1}, "stream": BOOL},
            ("model", "max_tokens", "messages"),
        ),
        "AnthropicCountRequest": obj(anthropic_fields, ("model", "messages")),
        "AnthropicMessage": obj(
            {
                "id": STR,
                "type": {"type": "string", "enum": ["message"]},
                "role": {"type": "string", "enum": ["assistant"]},
                "content": arr(ANY_OBJECT),
                "model": STR,
                "stop_reason": nullable(STR),
                "usage": ANY_OBJECT,
            },
            ("id", "type", "role", "content", "model", "usage"),
        ),
        "AnthropicError": obj(
            {
                "type": {"type": "string", "enum": ["error"]},
                "error": obj({"type": STR, "message": STR}, ("type", "message")),
                "request_id": STR,
            },
            ("type", "error"),
        ),
        "ChatRequest": obj(
            {
                "model": model,
                "messages": arr(chat_message, minItems=1),
                "stream": BOOL,
                "max_tokens": {"type": "integer", "minimum": 1},
                "max_completion_tokens": {"type": "integer", "minimum": 1},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "stop": {"anyOf": [STR, arr(STR, maxItems=4)]},
                "tools": arr(function_tool),
                "stream_options": obj({"include_usage": BOOL}),
                "user": STR,
            },
            ("model", "messages"),
        ),
        "ChatCompletion": obj(
            {
                "id": STR,
                "object": {"type": "string", "enum": ["chat.completion"]},
                "created": INT,
                "model": STR,
                "choices": arr(ANY_OBJECT),
                "usage": ANY_OBJECT,
            },
            ("id", "object", "model", "choices"),
        ),
        "OpenAIError": obj({"error": openai_error_body}, ("error",)),
        "ResponsesRequest": obj(
            {
                "model": model,
                "input": {"anyOf": [STR, arr(responses_item, minItems=1)]},
                "instructions": STR,
                "stream": BOOL,
                "max_output_tokens": {"type": "integer", "minimum": 16},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "store": BOOL,
                "metadata": {"type": "object", "additionalProperties": STR},
            },
            ("model", "input"),
        ),
        "ResponsesObject": obj(
            {
                "id": STR,
                "object": {"type": "string", "enum": ["response"]},
                "status": STR,
                "model": STR,
                "output": arr(ANY_OBJECT),
            },
            ("id", "object", "status", "output"),
        ),
        "GeminiRequest": obj(gemini_fields, ("contents",)),
        "GeminiCountRequest": obj({**gemini_fields, "generateContentRequest": ANY_OBJECT}),
        "GeminiResponse": obj(
            {"candidates": arr(ANY_OBJECT), "usageMetadata": ANY_OBJECT, "modelVersion": STR}
        ),
        "GeminiError": obj(
            {
                "error": obj(
                    {"code": INT, "message": STR, "status": STR, "details": arr(ANY_OBJECT)},
                    ("code", "message", "status"),
                )
            },
            ("error",),
        ),
        "AdminError": obj(
            {"error": obj({"type": STR, "message": STR, "param": STR}, ("type", "message"))}, ("error",)
        ),
        "TenantKey": obj(
            {
                "id": STR,
                "kind": {"type": "string", "enum": ["payg", "subscription"]},
                "label": nullable(STR),
                "state": STR,
            },
            ("id", "kind"),
        ),
        # generated from the spec that checks it; expires_at (a moment in the future) is left to the prose,
        # and the model names are the running catalog's, so generated examples can succeed
        "KeyRequest": TENANT_KEY.schema(
            omit=("expires_at",),
            models=arr(model, maxItems=100),
            expires_in_days={"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 3650},
        ),
        "Account": obj(
            {"id": STR, "label": STR, "provider": STR, "enabled": BOOL, "health": STR},
            ("id", "label", "provider"),
        ),
    }
