"""The fake Anthropic Messages API: ``/v1/messages``, ``/v1/messages/count_tokens``, the models list."""

from __future__ import annotations

import datetime as dt
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
    fake_signature,
    list_field,
    retry_headers,
    text_of,
    word_pieces,
)

REQUEST_ID_HEADER: str | None = "request-id"
STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
MESSAGES = {
    401: "invalid x-api-key",
    404: "model: not found",
    429: "Number of request tokens has exceeded your per-minute rate limit",
    500: "Internal server error",
    529: "Overloaded",
}

MODELS = [
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z", 32000),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", 64000),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", 64000),
]


# ---------------------------------------------------------------------------------------------- reading


def read(body: dict[str, Any], *, count_only: bool = False) -> Conversation:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not count_only and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0):
        raise Invalid(
            "max_tokens: Field required"
            if max_tokens is None
            else "max_tokens: Input should be a valid integer >= 0"
        )
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Invalid("messages: Field required")
    conv = Conversation(
        model=model, stream=body.get("stream") is True, max_tokens=None if count_only else max_tokens
    )
    breakpoints = _read_system(body.get("system"), conv)
    for i, message in enumerate(messages):
        breakpoints += _read_message(message, i, conv)
    _check_tool_results(messages)
    _read_tools(body, conv)
    breakpoints += sum(1 for t in list_field(body, "tools") if isinstance(t, dict) and t.get("cache_control"))
    if breakpoints > 4:
        raise Invalid(f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}.")
    if messages:
        last = messages[-1]
        blocks = last.get("content") if last.get("role") == "user" else None
        results = (
            [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
            if isinstance(blocks, list)
            else []
        )
        if results:
            conv.tool_results = [text_of(b.get("content")) for b in results]
    return conv


def _read_system(system: Any, conv: Conversation) -> int:
    if isinstance(system, str):
        conv.count(system)
        return 0
    if isinstance(system, list):
        for block in system:
            if (
                not isinstance(block, dict)
                or block.get("type") != "text"
                or not isinstance(block.get("text"), str)
            ):
                raise Invalid("system: Input should be a valid list of text blocks")
            conv.count(block["text"])
        return sum(1 for b in system if b.get("cache_control"))
    if system is not None:
        raise Invalid("system: Input should be a valid string or list")
    return 0


def _read_message(message: Any, i: int, conv: Conversation) -> int:
    # role "system" mid-conversation: what Claude Code sends with the mid-conversation-system beta
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
        raise Invalid(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
    content = message.get("content")
    if isinstance(content, str):
        blocks: list[Any] = [{"type": "text", "text": content}]
    elif isinstance(content, list):
        blocks = content
    else:
        raise Invalid(f"messages.{i}.content: Field required")
    texts: list[str] = []
    breakpoints = 0
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise Invalid(f"messages.{i}.content.{j}: Input should be a valid dictionary")
        breakpoints += 1 if block.get("cache_control") else 0
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str) or not text.strip():
                raise Invalid("messages: text content blocks must contain non-whitespace text")
            conv.count(text)
            texts.append(text)
        elif kind == "image":
            conv.images += 1
        elif kind == "tool_result":
            inner = block.get("content")
            conv.count(text_of(inner))
            conv.images += (
                sum(1 for b in inner if isinstance(b, dict) and b.get("type") == "image")
                if isinstance(inner, list)
                else 0
            )
    if message["role"] == "user" and texts:
        conv.last_user_text = "".join(texts)
    return breakpoints


def _check_tool_results(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or not isinstance(message.get("content"), list):
            continue
        ids = [b.get("id") for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
        if not ids:
            continue
        nxt = messages[i + 1].get("content") if i + 1 < len(messages) else None
        answered = (
            {b.get("tool_use_id") for b in nxt if isinstance(b, dict) and b.get("type") == "tool_result"}
            if isinstance(nxt, list)
            else set()
        )
        missing = [x for x in ids if x not in answered]
        if missing and i + 1 < len(messages):
            raise Invalid(
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
            )


def _read_tools(body: dict[str, Any], conv: Conversation) -> None:
    for tool in list_field(body, "tools"):
        if isinstance(tool, dict) and isinstance(tool.get("name"), str) and "input_schema" in tool:
            conv.tools.append(ToolSpec(tool["name"], tool["input_schema"]))
    choice = body.get("tool_choice") or {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    conv.tool_choice = {"any": "required", "tool": "required", "none": "none"}.get(kind or "", "auto")
    conv.forced_tool = choice.get("name") if kind == "tool" else None
    conv.parallel = not (isinstance(choice, dict) and choice.get("disable_parallel_tool_use"))
    thinking = body.get("thinking") or {}
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        conv.thinking = True
        conv.extra["omit_thinking"] = thinking.get("display") == "omitted"
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if conv.max_tokens is not None and budget >= conv.max_tokens:
                raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
        if kind in ("any", "tool"):
            raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")


# ---------------------------------------------------------------------------------------------- rendering


def usage_object(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_writes,
        "cache_read_input_tokens": u.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write,
            "ephemeral_1h_input_tokens": u.cache_write_1h,
        },
        "output_tokens": u.output,
        "service_tier": "standard",
    }


def _stop_reason(plan: Plan) -> str:
    return "max_tokens" if plan.truncated else "tool_use" if plan.calls else "end_turn"


def _blocks(plan: Plan, conv: Conversation, env: Env) -> list[tuple[dict[str, Any], Call | None]]:
    """The final content blocks (with the call behind each tool_use), shared by body and stream."""
    out: list[tuple[dict[str, Any], Call | None]] = []
    if plan.thinking is not None:
        shown = "" if conv.extra.get("omit_thinking") else plan.thinking
        signature = fake_signature("anthropic", plan.thinking)
        out.append(({"type": "thinking", "thinking": shown, "signature": signature}, None))
    if plan.text:
        out.append(({"type": "text", "text": plan.text, "citations": None}, None))
    for call in plan.calls:
        block = {"type": "tool_use", "id": env.ids("toolu_01"), "name": call.name, "input": call.arguments}
        out.append((block, call))
    return out


def render_body(plan: Plan, conv: Conversation, env: Env) -> dict[str, Any]:
    return {
        "id": env.ids("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": [block for block, _ in _blocks(plan, conv, env)],
        "stop_reason": _stop_reason(plan),
        "stop_sequence": None,
        "usage": usage_object(plan.usage),
    }


def frame(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def render_frames(plan: Plan, conv: Conversation, env: Env) -> list[bytes]:
    message = {
        "id": env.ids("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": [],
    }
    start_usage = {**usage_object(plan.usage), "output_tokens": 1}
    frames = [
        frame(
            "message_start",
            {"message": {**message, "stop_reason": None, "stop_sequence": None, "usage": start_usage}},
        )
    ]
    for index, (block, call) in enumerate(_blocks(plan, conv, env)):
        if block["type"] == "thinking":
            opened: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": piece} for piece in word_pieces(block["thinking"])
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in plan.deltas]
        else:
            assert call is not None
            opened = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece} for piece in ["", *call.fragments()]
            ]
        frames.append(frame("content_block_start", {"index": index, "content_block": opened}))
        if index == 0:  # Anthropic sends one ping, right after the first block opens
            frames.append(frame("ping", {}))
        frames.extend(frame("content_block_delta", {"index": index, "delta": delta}) for delta in deltas)
        frames.append(frame("content_block_stop", {"index": index}))
    if len(frames) == 1:  # no content at all (max_tokens 0)
        frames.append(frame("ping", {}))
    end_usage = {
        k: v for k, v in usage_object(plan.usage).items() if k not in ("cache_creation", "service_tier")
    }
    stop = {"stop_reason": _stop_reason(plan), "stop_sequence": None}
    frames.append(frame("message_delta", {"delta": stop, "usage": end_usage}))
    frames.append(frame("message_stop", {}))
    return frames


def error_frame(position: int, env: Env, conv: Conversation) -> bytes:
    return frame("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})


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
    """An HTTP error in Anthropic's envelope, with the headers Anthropic sends alongside."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if quota and status == 429:
        message = message or "You have reached your usage limit for this period."
    if reason == "unknown_route":
        message = message or "Not Found"
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or MESSAGES.get(status, kind)},
        "request_id": env.request_id,
    }
    headers = {
        "request-id": env.request_id,
        "x-should-retry": "true" if status in (408, 409, 429) or status >= 500 else "false",
    }
    if status == 429:
        headers.update(rate_headers(env, 0, rejected=quota))
    headers.update(retry_headers(retry_after, retry_after_ms))
    return Reply.json(status, body, headers)


def make_request_id(ids: Ids) -> str:
    return ids("req_011C", 20)


def auth_error(env: Env) -> Reply:
    return error_reply(401, env, "x-api-key header is required" if env.key is None else "invalid x-api-key")


def rate_headers(env: Env, tokens_used: int, *, rejected: bool = False) -> dict[str, str]:
    """``anthropic-ratelimit-*`` headers: per-minute limits plus the unified 5h/7d subscription windows."""
    reset = dt.datetime.fromtimestamp(env.now + 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    used = 0 if rejected else 1
    headers: dict[str, str] = {}
    for name, limit, remaining in (
        ("requests", 4000, max(0, 4000 - env.key_requests) * used),
        ("tokens", 2_000_000, max(0, 2_000_000 - tokens_used) * used),
        ("input-tokens", 1_600_000, max(0, 1_600_000 - tokens_used) * used),
        ("output-tokens", 400_000, 400_000 * used),
    ):
        headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{name}-reset"] = reset
    q = env.quota
    status = "rejected" if rejected else q.get("status", "allowed")
    for window, seconds in (("5h", 5 * 3600), ("7d", 7 * 86400)):
        util = 1.0 if rejected else q.get(window, 0.0)
        headers[f"anthropic-ratelimit-unified-{window}-utilization"] = f"{util:.2f}"
        headers[f"anthropic-ratelimit-unified-{window}-reset"] = str(int(env.now // seconds + 1) * seconds)
        headers[f"anthropic-ratelimit-unified-{window}-status"] = status
    headers["anthropic-ratelimit-unified-status"] = status
    headers["anthropic-ratelimit-unified-representative-claim"] = "five_hour"
    headers["anthropic-ratelimit-unified-reset"] = headers["anthropic-ratelimit-unified-5h-reset"]
    headers["anthropic-ratelimit-unified-fallback-percentage"] = "0.5"
    return headers


def success_headers(plan: Plan, env: Env) -> dict[str, str]:
    return {"request-id": env.request_id, **rate_headers(env, plan.usage.prompt_total)}


def models_body(query: dict[str, str]) -> dict[str, Any]:
    rows = [
        {
            "type": "model",
            "id": mid,
            "display_name": name,
            "created_at": created,
            "max_input_tokens": 200000,
            "max_tokens": out,
        }
        for mid, name, created, out in MODELS
    ]
    after = query.get("after_id")
    if after:
        ids = [r["id"] for r in rows]
        rows = rows[ids.index(after) + 1 :] if after in ids else []
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
    page, more = rows[:limit], len(rows) > limit
    return {
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def model_body(model_id: str) -> dict[str, Any] | None:
    return next((r for r in models_body({"limit": "1000"})["data"] if r["id"] == model_id), None)
