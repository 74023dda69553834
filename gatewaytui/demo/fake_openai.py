"""The fake OpenAI Chat Completions API (also OpenAI-compatible and OpenRouter upstreams), plus what every
OpenAI endpoint shares: the error envelope, ``x-request-id`` and ``x-ratelimit-*`` headers, the models list."""

from __future__ import annotations

from typing import Any

import orjson

from .fake_script import (
    Call,
    Conversation,
    Env,
    Ids,
    Invalid,
    Plan,
    Reply,
    ToolSpec,
    Usage,
    list_field,
    retry_headers,
    text_of,
    word_pieces,
)

REQUEST_ID_HEADER: str | None = "x-request-id"
STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8"
FINGERPRINT = "fp_f4ke0pen41"

MODELS = [
    ("gpt-4o", 1715367049),
    ("gpt-4o-mini", 1721172741),
    ("gpt-4.1", 1744316542),
    ("gpt-5", 1754425777),
    ("o4-mini", 1744225351),
]

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 2s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


# ---------------------------------------------------------------------------------------------- shared


def make_request_id(ids: Ids) -> str:
    return ids.hex("req_")


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
    """An HTTP error in OpenAI's envelope ``{"error": {message, type, param, code}}``."""
    kind, code, default = _ERRORS.get(
        status, ("server_error", None, "Internal error.") if status >= 500 else _ERRORS[400]
    )
    if quota and status == 429:
        kind = code = "insufficient_quota"
        default = "You exceeded your current quota, please check your plan and billing details."
    if reason == "unknown_route":
        kind, code, default = "invalid_request_error", None, "Invalid URL"
    elif reason == "missing_key":
        code = None
    body = {"error": {"message": message or default, "type": kind, "param": None, "code": code}}
    headers = {"x-request-id": env.request_id, **retry_headers(retry_after, retry_after_ms)}
    if status == 429:
        headers.update(rate_headers(env, 0, exhausted=True))
    return Reply.json(status, body, headers)


def auth_error(env: Env) -> Reply:
    if env.key is None:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return error_reply(401, env, message, reason="missing_key")
    shown = env.key[:3] + "*" * 4 + env.key[-4:] if len(env.key) > 8 else "*" * len(env.key)
    return error_reply(
        401,
        env,
        f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys.",
    )


def rate_headers(env: Env, tokens: int, *, exhausted: bool = False) -> dict[str, str]:
    requests_left = 0 if exhausted else max(0, 10_000 - env.key_requests)
    tokens_left = 0 if exhausted else max(0, 30_000_000 - tokens)
    return {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": str(requests_left),
        "x-ratelimit-reset-requests": "20s" if exhausted else "6ms",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-tokens": str(tokens_left),
        "x-ratelimit-reset-tokens": "20s" if exhausted else "0s",
    }


def success_headers(plan: Plan, env: Env) -> dict[str, str]:
    return {
        "x-request-id": env.request_id,
        "openai-processing-ms": "42",
        "openai-version": "2020-10-01",
        **rate_headers(env, plan.usage.prompt_total),
    }


def frame(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


def models_body(query: dict[str, str]) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(mid) for mid, _ in MODELS]}


def model_body(model_id: str) -> dict[str, Any] | None:
    created = dict(MODELS).get(model_id)
    return (
        None
        if created is None
        else {"id": model_id, "object": "model", "created": created, "owned_by": "system"}
    )


def read_tool_choice(choice: Any, conv: Conversation) -> None:
    """Chat and Responses share the string forms; the named form differs in nesting."""
    if isinstance(choice, str):
        conv.tool_choice = choice if choice in ("none", "required") else "auto"
    elif isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "allowed_tools":
            mode = (choice.get("allowed_tools") or {}).get("mode") or choice.get("mode")
            conv.tool_choice = "required" if mode == "required" else "auto"
        elif kind in ("function", "custom"):
            named = choice.get("function") or choice.get("custom") or choice
            conv.forced_tool = named.get("name") if isinstance(named, dict) else None


# ---------------------------------------------------------------------------------------------- chat: reading


def read(body: dict[str, Any]) -> Conversation:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid(
            "Missing required parameter: 'messages'."
            if messages is None
            else "Invalid 'messages': empty array."
        )
    stream = body.get("stream") is True
    if body.get("stream_options") is not None and not stream:
        raise Invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    conv = Conversation(model=model, stream=stream, max_tokens=limit if isinstance(limit, int) else None)
    conv.extra["include_usage"] = bool((body.get("stream_options") or {}).get("include_usage"))
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "function",
        ):
            raise Invalid(f"Invalid value for 'messages[{i}].role'.")
        content = message.get("content")
        text = text_of(content)
        conv.count(text)
        if isinstance(content, list):
            conv.images += sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
        if message["role"] == "user" and text:
            conv.last_user_text = text
    _check_tool_messages(messages)
    trailing: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.insert(0, text_of(message.get("content")))
    conv.tool_results = trailing or None
    for tool in list_field(body, "tools"):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            conv.tools.append(
                ToolSpec(fn["name"], fn.get("parameters") or {"type": "object", "properties": {}})
            )
    read_tool_choice(body.get("tool_choice"), conv)
    conv.parallel = body.get("parallel_tool_calls") is not False
    effort = body.get("reasoning_effort")
    conv.thinking = isinstance(effort, str) and effort != "none"
    return conv


def _check_tool_messages(messages: list[dict[str, Any]]) -> None:
    pending: list[Any] = []
    answerable: set[Any] = set()
    for i, message in enumerate([*messages, {"role": "end"}]):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in answerable:
                raise Invalid(
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (messages[{i}])"
                )
            pending = [p for p in pending if p != call_id]
            continue
        if pending:
            raise Invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
                f"The following tool_call_ids did not have response messages: {', '.join(map(str, pending))}"
            )
        calls = message.get("tool_calls") if role == "assistant" else None
        pending = [c.get("id") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
        answerable = set(pending)


# ---------------------------------------------------------------------------------------------- chat: rendering


def usage_object(u: Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read, "audio_tokens": 0}
    if u.cache_writes:
        prompt_details["cache_write_tokens"] = u.cache_writes
    return {
        "prompt_tokens": u.prompt_total,
        "completion_tokens": u.output,
        "total_tokens": u.prompt_total + u.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(plan: Plan) -> str:
    return "length" if plan.truncated else "tool_calls" if plan.calls else "stop"


def _call_ids(plan: Plan, env: Env) -> list[tuple[str, Call]]:
    return [(env.ids("call_"), call) for call in plan.calls]


def render_body(plan: Plan, conv: Conversation, env: Env) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.text or None,
        "refusal": None,
        "annotations": [],
    }
    if plan.thinking is not None:
        message["reasoning_content"] = plan.thinking
    if plan.calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": call.name, "arguments": call.json}}
            for cid, call in _call_ids(plan, env)
        ]
    return {
        "id": env.ids("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(env.now),
        "model": conv.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(plan)}],
        "usage": usage_object(plan.usage),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def render_frames(plan: Plan, conv: Conversation, env: Env) -> list[bytes]:
    include_usage = conv.extra.get("include_usage", False)
    head = {
        "id": env.ids("chatcmpl-", 29),
        "object": "chat.completion.chunk",
        "created": int(env.now),
        "model": conv.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            body["usage"] = None
        return frame(body)

    frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
    frames.extend(chunk({"reasoning_content": piece}) for piece in word_pieces(plan.thinking or ""))
    frames.extend(chunk({"content": piece}) for piece in plan.deltas)
    for index, (cid, call) in enumerate(_call_ids(plan, env)):
        opened = {
            "index": index,
            "id": cid,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(chunk({"tool_calls": [opened]}))
        frames.extend(
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in call.fragments()
        )
    frames.append(chunk({}, _finish(plan)))
    if include_usage:
        frames.append(frame({**head, "choices": [], "usage": usage_object(plan.usage)}))
    frames.append(frame(b"[DONE]"))
    return frames


def error_frame(position: int, env: Env, conv: Conversation) -> bytes:
    kind, code, message = _ERRORS[500]
    return frame({"error": {"message": message, "type": kind, "param": None, "code": code}})
