"""The fake Gemini API (Generative Language ``v1beta``, also under ``v1``): generateContent,
streamGenerateContent (``?alt=sse`` frames or a JSON array), countTokens and the models list.

Requests are read with proto3 JSON rules: camelCase and snake_case field names are both accepted.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from .fake_script import (
    Conversation,
    Env,
    Ids,
    Invalid,
    Plan,
    Reply,
    ToolSpec,
    Usage,
    fake_signature,
    input_tokens,
    retry_headers,
)

CONTENT_TYPE = "application/json; charset=UTF-8"
SSE_CONTENT_TYPE = "text/event-stream"
REQUEST_ID_HEADER: str | None = None
STREAM_CONTENT_TYPE = SSE_CONTENT_TYPE

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
    403: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    404: "models/unknown is not found for API version v1beta, or is not supported for generateContent.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
MODELS = [
    ("gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, 65536),
    ("gemini-2.5-pro", "Gemini 2.5 Pro", 1048576, 65536),
    ("gemini-3-pro-preview", "Gemini 3 Pro Preview", 1048576, 65536),
]
# JSON Schema keywords the ``parameters`` field (OpenAPI subset) rejects as unknown names.
_UNKNOWN_SCHEMA_KEYS = (
    "$schema", "$id", "$ref", "$defs", "definitions", "additionalProperties", "patternProperties",
    "propertyNames", "const", "if", "then", "else", "not", "unevaluatedProperties", "examples", "$comment",
)  # fmt: skip
SKIP_SIGNATURE = "skip_thought_signature_validator"


def _get(obj: Any, camel: str) -> Any:
    """A field by its camelCase name or its snake_case twin."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower())


# ---------------------------------------------------------------------------------------------- reading


def read(body: dict[str, Any], model: str, *, stream: bool, sse: bool) -> Conversation:
    contents = _get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    config = _get(body, "generationConfig") or {}
    limit = _get(config, "maxOutputTokens")
    conv = Conversation(model=model, stream=stream, max_tokens=limit if isinstance(limit, int) else None)
    conv.extra["sse"] = sse
    system = _get(body, "systemInstruction")
    for part in _get(system, "parts") or []:
        conv.count(_get(part, "text"))
    last_text_turn = 0
    for i, content in enumerate(contents):
        parts = _get(content, "parts")
        if not isinstance(parts, list):
            raise Invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        texts = []
        for j, part in enumerate(parts):
            text = _get(part, "text")
            if isinstance(text, str) and not _get(part, "thought"):
                conv.count(text)
                texts.append(text)
            media = _get(part, "inlineData") or _get(part, "fileData")
            if str(_get(media, "mimeType") or "").startswith("image/"):
                conv.images += 1
            response = _get(part, "functionResponse")
            if response is not None:
                conv.count(_result_text(response))
            signature = _get(part, "thoughtSignature")
            if signature is not None and not _is_base64(signature):
                raise Invalid(
                    f"Invalid value at 'contents[{i}].parts[{j}].thought_signature' (TYPE_BYTES), Base64 decoding failed for \"{signature}\""
                )
        if _get(content, "role") in (None, "user") and texts:
            conv.last_user_text = "".join(texts)
            last_text_turn = i
    _check_calls(contents, model, last_text_turn)
    last_parts = _get(contents[-1], "parts")
    results = [_get(p, "functionResponse") for p in last_parts if _get(p, "functionResponse") is not None]
    conv.tool_results = [_result_text(r) for r in results] or None
    _read_tools(body, conv)
    thinking = _get(config, "thinkingConfig") or {}
    budget = _get(thinking, "thinkingBudget")
    conv.extra["include_thoughts"] = bool(_get(thinking, "includeThoughts"))
    conv.thinking = (
        conv.extra["include_thoughts"]
        or (isinstance(budget, int) and budget != 0)
        or _get(thinking, "thinkingLevel") is not None
        or model.startswith("gemini-3")
    )
    return conv


def _result_text(response: Any) -> str:
    """A functionResponse as text: its ``output`` (or ``error``) when present, else the whole object."""
    payload = _get(response, "response")
    if not isinstance(payload, dict):
        return ""
    value = payload["output"] if "output" in payload else payload.get("error", payload)
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_calls(contents: list[Any], model: str, current_turn: int) -> None:
    for i, content in enumerate(contents):
        parts = _get(content, "parts")
        calls = [(j, p) for j, p in enumerate(parts) if _get(p, "functionCall") is not None]
        if not calls:
            continue
        if i + 1 < len(contents):
            answered = sum(
                1 for p in _get(contents[i + 1], "parts") or [] if _get(p, "functionResponse") is not None
            )
            if answered != len(calls):
                raise Invalid(
                    "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
                )
        j, first = calls[0]
        if model.startswith("gemini-3") and i > current_turn and not _get(first, "thoughtSignature"):
            name = _get(_get(first, "functionCall"), "name")
            raise Invalid(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, "
                f"and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , "
                f"position {j + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )


def _read_tools(body: dict[str, Any], conv: Conversation) -> None:
    for t, tool in enumerate(_get(body, "tools") or []):
        for d, decl in enumerate(_get(tool, "functionDeclarations") or []):
            name = _get(decl, "name")
            if not isinstance(name, str):
                raise Invalid(
                    f"* GenerateContentRequest.tools[{t}].function_declarations[{d}].name: Name cannot be empty."
                )
            schema = _get(decl, "parametersJsonSchema")
            if schema is None:
                schema = _get(decl, "parameters")
                _check_schema(schema, f"tools[{t}].function_declarations[{d}].parameters")
            conv.tools.append(ToolSpec(name, schema))
    calling = _get(_get(body, "toolConfig"), "functionCallingConfig") or {}
    mode = str(_get(calling, "mode") or "AUTO").upper()
    conv.tool_choice = {"ANY": "required", "VALIDATED": "required", "NONE": "none"}.get(mode, "auto")
    allowed = _get(calling, "allowedFunctionNames")
    if conv.tool_choice == "required" and isinstance(allowed, list) and len(allowed) == 1:
        conv.forced_tool = allowed[0]


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        return
    for key in _UNKNOWN_SCHEMA_KEYS:
        if key in schema:
            raise Invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
            )
    if isinstance(schema.get("type"), list):
        raise Invalid(
            f"Invalid JSON payload received. Proto field is not repeating, cannot start list. at '{where}.type'"
        )
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties[{name}].value")
    _check_schema(schema.get("items"), f"{where}.items")


# ---------------------------------------------------------------------------------------------- rendering


def usage_object(u: Usage, *, final: bool = True) -> dict[str, Any]:
    prompt = u.prompt_total
    out: dict[str, Any] = {"promptTokenCount": prompt}
    if final:
        out["candidatesTokenCount"] = u.output - u.reasoning
    out["totalTokenCount"] = prompt + (u.output if final else 0)
    if u.cache_read:
        out["cachedContentTokenCount"] = u.cache_read
    out["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if u.cache_read:
        out["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cache_read}]
    if final and u.reasoning:
        out["thoughtsTokenCount"] = u.reasoning
    return out


def _parts(
    plan: Plan, conv: Conversation
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(thought parts, text parts, functionCall parts) of the whole answer."""
    thoughts: list[dict[str, Any]] = []
    if plan.thinking is not None and conv.extra.get("include_thoughts"):
        thoughts.append(
            {
                "text": plan.thinking,
                "thought": True,
                "thoughtSignature": fake_signature("gemini-thought", plan.thinking),
            }
        )
    texts = [{"text": plan.text}] if plan.text else []
    calls: list[dict[str, Any]] = [
        {"functionCall": {"name": c.name, "args": c.arguments}} for c in plan.calls
    ]
    if calls and plan.thinking is not None:
        calls[0]["thoughtSignature"] = fake_signature("gemini-call", plan.calls[0].json)
    return thoughts, texts, calls


def _chunk(
    parts: list[dict[str, Any]],
    conv: Conversation,
    usage: dict[str, Any],
    finish: str | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    candidate: dict[str, Any] = {"content": content}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": conv.model,
        "responseId": conv.extra["response_id"],
    }


def _finish(plan: Plan) -> str:
    return "MAX_TOKENS" if plan.truncated else "STOP"


def render_body(plan: Plan, conv: Conversation, env: Env) -> dict[str, Any]:
    conv.extra["response_id"] = env.ids("", 22)
    thoughts, texts, calls = _parts(plan, conv)
    return _chunk(thoughts + texts + calls, conv, usage_object(plan.usage), _finish(plan))


def render_frames(plan: Plan, conv: Conversation, env: Env) -> list[bytes]:
    conv.extra["response_id"] = env.ids("", 22)
    thoughts, _, calls = _parts(plan, conv)
    running = usage_object(plan.usage, final=False)
    chunks = [[p] for p in thoughts] + [[{"text": piece}] for piece in plan.deltas]
    if calls:
        chunks.append(calls)
    bodies = [_chunk(parts, conv, running) for parts in chunks[:-1]]
    bodies.append(_chunk(chunks[-1] if chunks else [], conv, usage_object(plan.usage), _finish(plan)))
    return [_frame(body, i, conv, last=i == len(bodies) - 1) for i, body in enumerate(bodies)]


def _frame(body: dict[str, Any], position: int, conv: Conversation, *, last: bool) -> bytes:
    """``data: <json>`` frames with ``?alt=sse``; otherwise pieces of one pretty-printed JSON array."""
    if conv.extra.get("sse"):
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"
    text = orjson.dumps(body, option=orjson.OPT_INDENT_2)
    return (b"[" if position == 0 else b",\r\n") + text + (b"]" if last else b"")


def error_object(
    status: int,
    message: str | None = None,
    *,
    quota: bool = False,
    retry_after: float | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    code = status
    if reason == "invalid_key":
        code, message = 400, "API key not valid. Please pass a valid API key."
    elif quota and status == 429 and not message:
        message = "You exceeded your current quota, please check your plan and billing details."
    elif reason == "unknown_route" and not message:
        message = "The requested URL was not found on this server."
    err: dict[str, Any] = {
        "code": code,
        "message": message or MESSAGES.get(status, "Request failed."),
        "status": STATUSES.get(code, "INTERNAL" if code >= 500 else "INVALID_ARGUMENT"),
    }
    details: list[dict[str, Any]] = []
    if reason == "invalid_key":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        )
    if status == 429:
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {"quotaMetric": metric, "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}
                ],
            }
        )
        if retry_after is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
            )
    if details:
        err["details"] = details
    return {"error": err}


def error_reply(
    status: int,
    env: Env,
    message: str | None = None,
    *,
    quota: bool = False,
    retry_after: float | None = None,
    retry_after_ms: int | None = None,
    reason: str | None = None,
) -> Reply:
    """Gemini's ``{error:{code,message,status}}``; a rate limit's delay travels in ``RetryInfo``, not a header."""
    body = error_object(status, message, quota=quota, retry_after=retry_after, reason=reason)
    reply = Reply.json(body["error"]["code"], body, retry_headers(None, retry_after_ms))
    reply.headers["content-type"] = CONTENT_TYPE
    return reply


def error_frame(position: int, env: Env, conv: Conversation) -> bytes:
    body = error_object(500)
    if conv.extra.get("sse"):
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"
    return (b"[" if position == 0 else b",\r\n") + orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"]"


def make_request_id(ids: Ids) -> str:
    return ""  # Gemini sends no request-id header


def auth_error(env: Env) -> Reply:
    """No key: 403. A bad API key: 400 API_KEY_INVALID (not 401). A bad OAuth bearer token: 401."""
    if env.key is None:
        return error_reply(403, env)
    return error_reply(401, env) if env.bearer else error_reply(400, env, reason="invalid_key")


def success_headers(plan: Plan, env: Env) -> dict[str, str]:
    return {"x-gemini-service-tier": "standard"}


def count_tokens(body: dict[str, Any], model: str) -> dict[str, Any]:
    inner = _get(body, "generateContentRequest")
    conv = read(inner if isinstance(inner, dict) else body, model, stream=False, sse=False)
    total = input_tokens(conv)
    return {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}


def models_body(query: dict[str, str]) -> dict[str, Any]:
    rows = [model_body(mid) for mid, *_ in MODELS]
    size = (
        int(query["pageSize"]) if query.get("pageSize", "").isdigit() and int(query["pageSize"]) > 0 else 50
    )
    start = int(query["pageToken"]) if query.get("pageToken", "").isdigit() else 0
    out: dict[str, Any] = {"models": rows[start : start + size]}
    if start + size < len(rows):
        out["nextPageToken"] = str(start + size)
    return out


def model_body(model_id: str) -> dict[str, Any] | None:
    for mid, name, inp, outp in MODELS:
        if mid == model_id.removeprefix("models/"):
            return {
                "name": f"models/{mid}",
                "version": "001",
                "displayName": name,
                "description": f"{name} (fake upstream)",
                "inputTokenLimit": inp,
                "outputTokenLimit": outp,
                "supportedGenerationMethods": [
                    "generateContent",
                    "countTokens",
                    "createCachedContent",
                    "batchGenerateContent",
                ],
                "temperature": 1,
                "maxTemperature": 2,
                "topP": 0.95,
                "topK": 64,
                "thinking": True,
            }
    return None
