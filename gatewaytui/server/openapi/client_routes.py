"""The client-facing paths: the four client protocols (Anthropic Messages, OpenAI Chat Completions and
Responses, Gemini generateContent) with their error envelopes, and discovery and health."""

from __future__ import annotations

from typing import Any

from ...config import ROUTES
from .components import GEMINI_TENANT, TENANT
from .operations import error_responses, ok_response, operation, path_param, query_param, request_body
from .schema import ANY_OBJECT, INT, JSON, NUM, SSE, SSE_EVENT, STR, arr, obj, ref

# ---------------------------------------------------------------------- client protocols

# Statuses every protocol route may answer with; upstream 4xx errors that cannot fail over pass through.
PROTOCOL_ERRORS = {
    "400": "invalid request (malformed JSON, wrong types, unsupported field values)",
    "401": "missing or unknown tenant key",
    "402": "not enough credit for the request's worst case",
    "403": "the key may not use this route or model",
    "404": "unknown model or route",
    "413": "request body too large",
    "429": "rate limited (the key's RPM, or every upstream account)",
    "431": "request headers too large",
    "500": "internal gateway error (never billed)",
    "502": "the upstream failed or answered with something unusable",
    "503": "no healthy upstream account",
    "504": "the upstream timed out",
    "529": "every upstream account is overloaded",
    "4XX": "an upstream client error passed through",
}


def protocol_paths(models: list[str]) -> dict[str, Any]:
    anthropic_errors = error_responses("AnthropicError", PROTOCOL_ERRORS)
    openai_errors = error_responses("OpenAIError", PROTOCOL_ERRORS)
    gemini_errors = error_responses("GeminiError", PROTOCOL_ERRORS)
    route = path_param(
        "route", {"type": "string", "enum": list(ROUTES)}, "a tool-tuned route with its preset"
    )
    paths: dict[str, Any] = {}

    def messages(op_id: str, params: list[Any] | None = None) -> dict[str, Any]:
        return {
            "post": operation(
                "Anthropic Messages (streamed with stream: true)",
                tags=["anthropic"],
                security=TENANT,
                op_id=op_id,
                body=request_body(ref("AnthropicRequest")),
                parameters=params,
                responses={"200": ok_response(ref("AnthropicMessage"), stream=True), **anthropic_errors},
            )
        }

    def count(op_id: str, params: list[Any] | None = None) -> dict[str, Any]:
        return {
            "post": operation(
                "Count the input tokens of an Anthropic request",
                tags=["anthropic"],
                security=TENANT,
                op_id=op_id,
                body=request_body(ref("AnthropicCountRequest")),
                parameters=params,
                responses={
                    "200": ok_response(obj({"input_tokens": INT}, ("input_tokens",))),
                    **anthropic_errors,
                },
            )
        }

    for prefix, suffix in (("/v1", ""), ("", "_no_v1")):  # SDKs given a base URL without /v1 drop it
        paths[f"{prefix}/messages"] = messages(f"messages{suffix}")
        paths[f"/{{route}}{prefix}/messages"] = messages(f"tool_messages{suffix}", [route])
        paths[f"{prefix}/messages/count_tokens"] = count(f"count_tokens{suffix}")
        paths[f"/{{route}}{prefix}/messages/count_tokens"] = count(f"tool_count_tokens{suffix}", [route])
    for prefix, suffix in (("", ""), ("/v1", "_v1")):
        paths[f"{prefix}/chat/completions"] = {
            "post": operation(
                "OpenAI Chat Completions (streamed with stream: true)",
                tags=["openai"],
                security=TENANT,
                op_id=f"chat_completions{suffix}",
                body=request_body(ref("ChatRequest")),
                responses={"200": ok_response(ref("ChatCompletion"), stream=True), **openai_errors},
            )
        }
        paths[f"{prefix}/responses"] = {
            "post": operation(
                "OpenAI Responses, stateless (streamed with stream: true)",
                tags=["openai"],
                security=TENANT,
                op_id=f"responses{suffix}",
                body=request_body(ref("ResponsesRequest")),
                responses={"200": ok_response(ref("ResponsesObject"), stream=True), **openai_errors},
            )
        }
    model = path_param("model", {"type": "string", "enum": models}, "a model configured on this gateway")
    alt = query_param(
        "alt", {"type": "string", "enum": ["sse"]}, "sse: server-sent events instead of a JSON array"
    )
    for base in ("/v1beta/models", "/v1/models"):
        tag = base.split("/")[1]
        paths[f"{base}/{{model}}:generateContent"] = {
            "post": operation(
                "Gemini generateContent",
                tags=["gemini"],
                security=GEMINI_TENANT,
                op_id=f"generate_content_{tag}",
                body=request_body(ref("GeminiRequest")),
                parameters=[model],
                responses={"200": ok_response(ref("GeminiResponse")), **gemini_errors},
            )
        }
        paths[f"{base}/{{model}}:streamGenerateContent"] = {
            "post": operation(
                "Gemini streamGenerateContent (a JSON array, or SSE with alt=sse)",
                tags=["gemini"],
                security=GEMINI_TENANT,
                op_id=f"stream_generate_content_{tag}",
                body=request_body(ref("GeminiRequest")),
                parameters=[model, alt],
                responses={
                    "200": {
                        "description": "the stream",
                        "content": {JSON: {"schema": arr(ref("GeminiResponse"))}, SSE: {"schema": SSE_EVENT}},
                    },
                    **gemini_errors,
                },
            )
        }
        paths[f"{base}/{{model}}:countTokens"] = {
            "post": operation(
                "Gemini countTokens",
                tags=["gemini"],
                security=GEMINI_TENANT,
                op_id=f"count_tokens_{tag}",
                body=request_body(ref("GeminiCountRequest")),
                parameters=[model],
                responses={"200": ok_response(obj({"totalTokens": INT}, ("totalTokens",))), **gemini_errors},
            )
        }
    return paths


# ---------------------------------------------------------------------- discovery and health


def discovery_paths() -> dict[str, Any]:
    any_error = {"anyOf": [ref("OpenAIError"), ref("AnthropicError"), ref("GeminiError")]}
    list_errors = {
        c: {"description": d, "content": {JSON: {"schema": any_error}}}
        for c, d in {"401": "unknown key", "403": "no key (Gemini)", "431": "headers too large"}.items()
    }
    version = {
        "name": "anthropic-version",
        "in": "header",
        "required": False,
        "schema": STR,
        "description": "present: Anthropic's list shape; a Gemini client (x-goog-api-key, ?key=): Gemini's; "
        "otherwise OpenAI's",
    }
    models_list = {
        "anyOf": [obj({"data": arr(ANY_OBJECT)}, ("data",)), obj({"models": arr(ANY_OBJECT)}, ("models",))]
    }
    one = path_param("model_id", description="a model name (Gemini style: models/<name>)")
    gemini_errors = error_responses(
        "GeminiError",
        {"401": "unknown key", "403": "no key", "404": "unknown model", "431": "request headers too large"},
    )
    out: dict[str, Any] = {}
    for path, op_id in (("/v1/models", "list_models"), ("/models", "list_models_short")):
        out[path] = {
            "get": operation(
                "List models (OpenAI or Anthropic shape)",
                tags=["discovery"],
                security=GEMINI_TENANT,
                op_id=op_id,
                parameters=[version],
                responses={"200": ok_response(models_list), **list_errors},
            )
        }
    out["/v1/models/{model_id}"] = {
        "get": operation(
            "One model (OpenAI, Anthropic or Gemini shape)",
            tags=["discovery"],
            security=GEMINI_TENANT,
            op_id="get_model",
            parameters=[one, version],
            responses={
                "200": ok_response(ANY_OBJECT),
                **{
                    c: {
                        "description": d,
                        "content": {
                            JSON: {
                                "schema": {
                                    "anyOf": [ref("OpenAIError"), ref("AnthropicError"), ref("GeminiError")]
                                }
                            }
                        },
                    }
                    for c, d in {
                        "401": "unknown key",
                        "403": "no key",
                        "404": "unknown model",
                        "431": "headers too large",
                    }.items()
                },
            },
        )
    }
    out["/v1beta/models"] = {
        "get": operation(
            "List models (Gemini shape)",
            tags=["discovery"],
            security=GEMINI_TENANT,
            op_id="gemini_list_models",
            responses={"200": ok_response(obj({"models": arr(ANY_OBJECT)}, ("models",))), **gemini_errors},
        )
    }
    out["/v1beta/models/{model_id}"] = {
        "get": operation(
            "One model (Gemini shape)",
            tags=["discovery"],
            security=GEMINI_TENANT,
            op_id="gemini_get_model",
            parameters=[one],
            responses={"200": ok_response(ANY_OBJECT), **gemini_errors},
        )
    }
    out["/health"] = {
        "get": operation(
            "Liveness and account health (no secrets)",
            tags=["discovery"],
            security=[],
            op_id="health",
            responses={
                "200": ok_response(
                    obj(
                        {
                            "status": {
                                "type": "string",
                                "enum": ["ok", "degraded", "no_accounts", "draining"],
                            },
                            "uptime_s": NUM,
                            "inflight": INT,
                            "writes_pending": INT,
                            "accounts": arr(ANY_OBJECT),
                            "models": arr(STR),
                        },
                        ("status", "accounts", "models"),
                    )
                ),
                **error_responses("OpenAIError", {"431": "request headers too large"}),
            },
        )
    }
    out["/openapi.json"] = {
        "get": operation(
            "This document",
            tags=["discovery"],
            security=[],
            op_id="openapi",
            responses={
                "200": ok_response(obj({"openapi": STR, "paths": ANY_OBJECT}, ("openapi", "paths"))),
                **error_responses("OpenAIError", {"431": "request headers too large"}),
            },
        )
    }
    return out
