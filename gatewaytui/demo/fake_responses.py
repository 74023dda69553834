"""The fake OpenAI Responses API: ``POST /v1/responses`` (stream and not)."""

from __future__ import annotations

from typing import Any

import orjson

from .fake_openai import (
    REQUEST_ID_HEADER,
    auth_error,
    error_reply,
    make_request_id,
    read_tool_choice,
    success_headers,
)
from .fake_script import (
    Conversation,
    Env,
    Invalid,
    Plan,
    ToolSpec,
    Usage,
    fake_signature,
    list_field,
    text_of,
    word_pieces,
)

__all__ = [
    "REQUEST_ID_HEADER",
    "auth_error",
    "error_reply",
    "make_request_id",
    "success_headers",
    "read",
    "render_body",
    "render_frames",
    "error_frame",
]

STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_TEXT_PARTS = ("input_text", "output_text", "text")
_RESULT_ITEMS = ("function_call_output", "custom_tool_call_output")
_CALL_ITEMS = ("function_call", "custom_tool_call")


# ---------------------------------------------------------------------------------------------- reading


def read(body: dict[str, Any]) -> Conversation:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("Missing required parameter: 'model'.")
    limit = body.get("max_output_tokens")
    conv = Conversation(
        model=model, stream=body.get("stream") is True, max_tokens=limit if isinstance(limit, int) else None
    )
    conv.count(body.get("instructions"))
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    elif items is None:
        items = []
    elif not isinstance(items, list):
        raise Invalid("Invalid type for 'input': expected a string or an array of input items.")
    calls: set[Any] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise Invalid(f"Invalid type for 'input[{i}]': expected an object.")
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            text = text_of(content, _TEXT_PARTS)
            conv.count(text)
            if isinstance(content, list):
                conv.images += sum(
                    1 for p in content if isinstance(p, dict) and p.get("type") == "input_image"
                )
            if item.get("role") == "user" and text:
                conv.last_user_text = text
        elif kind in _CALL_ITEMS:
            calls.add(item.get("call_id"))
        elif kind in _RESULT_ITEMS:
            if item.get("call_id") not in calls and not body.get("previous_response_id"):
                raise Invalid(
                    f"No tool call found for function call output with call_id {item.get('call_id')}."
                )
            output = item.get("output")
            conv.count(text_of(output, _TEXT_PARTS))
            if isinstance(output, list):
                conv.images += sum(
                    1 for p in output if isinstance(p, dict) and p.get("type") == "input_image"
                )
    trailing: list[str] = []
    for item in reversed(items):
        if item.get("type") not in _RESULT_ITEMS:
            break
        trailing.insert(0, text_of(item.get("output"), _TEXT_PARTS))
    conv.tool_results = trailing or None
    for tool in list_field(body, "tools"):
        if (
            isinstance(tool, dict)
            and tool.get("type") in ("function", "custom")
            and isinstance(tool.get("name"), str)
        ):
            conv.tools.append(ToolSpec(tool["name"], tool.get("parameters"), custom=tool["type"] == "custom"))
    read_tool_choice(body.get("tool_choice"), conv)
    conv.parallel = body.get("parallel_tool_calls") is not False
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") != "none":
        conv.thinking = True
        conv.extra["summary"] = reasoning.get("summary") is not None
        conv.extra["encrypted"] = "reasoning.encrypted_content" in (body.get("include") or [])
    conv.extra["request"] = body
    return conv


# ---------------------------------------------------------------------------------------------- rendering


def usage_object(u: Usage) -> dict[str, Any]:
    cached: dict[str, int] = {"cached_tokens": u.cache_read}
    if u.cache_writes:
        cached["cache_write_tokens"] = u.cache_writes
    return {
        "input_tokens": u.prompt_total,
        "input_tokens_details": cached,
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.prompt_total + u.output,
    }


def _response(
    conv: Conversation, rid: str, env: Env, status: str, output: list[Any], usage: Usage | None
) -> dict[str, Any]:
    """A full Response object, echoing the request's settings like the real API does."""
    req = conv.extra.get("request") or {}
    reasoning: dict[str, Any] = req["reasoning"] if isinstance(req.get("reasoning"), dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": int(env.now),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "max_tool_calls": req.get("max_tool_calls"),
        "model": conv.model,
        "output": output,
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": req.get("previous_response_id"),
        "prompt_cache_key": req.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": req.get("safety_identifier"),
        "service_tier": "default",
        "store": req.get("store", True),
        "temperature": req.get("temperature", 1.0),
        "text": req.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_logprobs": req.get("top_logprobs", 0),
        "top_p": req.get("top_p", 1.0),
        "truncation": req.get("truncation", "disabled"),
        "usage": usage_object(usage) if usage else None,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
    }


def _items(plan: Plan, conv: Conversation, env: Env) -> list[dict[str, Any]]:
    """The final output items, in order."""
    items: list[dict[str, Any]] = []
    if plan.thinking is not None:
        item: dict[str, Any] = {"id": env.ids("rs_", 48), "type": "reasoning", "summary": []}
        if conv.extra.get("summary"):
            item["summary"] = [{"type": "summary_text", "text": plan.thinking}]
        if conv.extra.get("encrypted"):
            item["encrypted_content"] = "gAAAAA" + fake_signature("openai", plan.thinking)
        items.append(item)
    if plan.text:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": plan.text}
        items.append(
            {
                "id": env.ids("msg_", 48),
                "type": "message",
                "status": "completed",
                "content": [part],
                "role": "assistant",
            }
        )
    for call in plan.calls:
        if call.custom:
            items.append(
                {
                    "id": env.ids("ctc_", 48),
                    "type": "custom_tool_call",
                    "status": "completed",
                    "call_id": env.ids("call_"),
                    "input": call.json,
                    "name": call.name,
                }
            )
        else:
            items.append(
                {
                    "id": env.ids("fc_", 48),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": call.json,
                    "call_id": env.ids("call_"),
                    "name": call.name,
                }
            )
    return items


def _status(plan: Plan) -> str:
    return "incomplete" if plan.truncated else "completed"


def render_body(plan: Plan, conv: Conversation, env: Env) -> dict[str, Any]:
    return _response(conv, env.ids("resp_", 48), env, _status(plan), _items(plan, conv, env), plan.usage)


def frame(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Events:
    """Numbers events from 0 as they are added."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        self.frames.append(frame({"type": kind, "sequence_number": len(self.frames), **fields}))


def render_frames(plan: Plan, conv: Conversation, env: Env) -> list[bytes]:
    rid = conv.extra["response_id"] = env.ids("resp_", 48)
    ev = _Events()
    ev.add("response.created", response=_response(conv, rid, env, "in_progress", [], None))
    ev.add("response.in_progress", response=_response(conv, rid, env, "in_progress", [], None))
    items = _items(plan, conv, env)
    for index, item in enumerate(items):
        at = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "reasoning":
            ev.add(
                "response.output_item.added",
                output_index=index,
                item={"id": item["id"], "type": "reasoning", "summary": []},
            )
            for s_index, summary in enumerate(item["summary"]):
                part: dict[str, Any] = {"type": "summary_text", "text": ""}
                ev.add("response.reasoning_summary_part.added", **at, summary_index=s_index, part=part)
                for piece in word_pieces(summary["text"]):
                    ev.add("response.reasoning_summary_text.delta", **at, summary_index=s_index, delta=piece)
                ev.add(
                    "response.reasoning_summary_text.done", **at, summary_index=s_index, text=summary["text"]
                )
                ev.add(
                    "response.reasoning_summary_part.done",
                    **at,
                    summary_index=s_index,
                    part={**part, "text": summary["text"]},
                )
        elif kind == "message":
            ev.add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            ev.add("response.content_part.added", **at, content_index=0, part=part)
            for piece in plan.deltas:
                ev.add("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
            ev.add("response.output_text.done", **at, content_index=0, text=plan.text, logprobs=[])
            ev.add("response.content_part.done", **at, content_index=0, part={**part, "text": plan.text})
        elif kind == "function_call":
            ev.add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in plan.calls[index - _first_call(items)].fragments():
                ev.add("response.function_call_arguments.delta", **at, delta=piece)
            ev.add(
                "response.function_call_arguments.done", **at, arguments=item["arguments"], name=item["name"]
            )
        else:  # custom_tool_call
            ev.add(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "input": ""},
            )
            for piece in plan.calls[index - _first_call(items)].fragments():
                ev.add("response.custom_tool_call_input.delta", **at, delta=piece)
            ev.add("response.custom_tool_call_input.done", **at, input=item["input"])
        ev.add("response.output_item.done", output_index=index, item=item)
    terminal = "response.incomplete" if plan.truncated else "response.completed"
    ev.add(terminal, response=_response(conv, rid, env, _status(plan), items, plan.usage))
    return ev.frames


def _first_call(items: list[dict[str, Any]]) -> int:
    return next(i for i, item in enumerate(items) if item["type"] in _CALL_ITEMS)


def error_frame(position: int, env: Env, conv: Conversation) -> bytes:
    """At the start an ``error`` event; after ``response.created`` a ``response.failed`` terminal event."""
    message = "The server had an error while processing your request. Sorry about that!"
    if position == 0:
        return frame(
            {"type": "error", "sequence_number": 0, "code": "server_error", "message": message, "param": None}
        )
    failed = _response(conv, conv.extra.get("response_id") or env.ids("resp_", 48), env, "failed", [], None)
    failed["error"] = {"code": "server_error", "message": message}
    return frame({"type": "response.failed", "sequence_number": position, "response": failed})
