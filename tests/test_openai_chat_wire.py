"""OpenAI Chat Completions wire: protocol module, OpenAI-style providers, golden cases, and the
official ``openai`` SDK reading what the gateway streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai as openai_sdk
import pytest
from golden_util import case_params, check, from_plain, load, to_plain
from hypercorn.asyncio import serve
from hypercorn.config import Config

from gatewaytui.codec import SSEDecoder, dumps, loads
from gatewaytui.model import (
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
from gatewaytui.protocols import anthropic as anthropic_wire
from gatewaytui.protocols import openai_chat as wire
from gatewaytui.providers import openai, openai_compatible, openrouter
from gatewaytui.providers.base import Credentials

GOLDEN = "openai_chat"


# ---------------------------------------------------------------- helpers


def sse_frames(data: bytes) -> list[Any]:
    """Client-side view of encoder output: JSON payloads (``created`` zeroed), "[DONE]", comments."""
    frames: list[Any] = []
    for raw in data.split(b"\n\n"):
        if not raw:
            continue
        assert raw.startswith(b"data: "), raw
        payload = raw[len(b"data: ") :]
        if payload == b"[DONE]":
            frames.append("[DONE]")
            continue
        obj = loads(payload)
        if "created" in obj:
            obj["created"] = 0
        frames.append(obj)
    return frames


def encode_stream(req: ChatRequest, events: list[Event]) -> bytes:
    enc = wire.StreamEncoder(req, "req_test")
    return b"".join(enc.encode(ev) for ev in events) + enc.finish()


def parse_stream(data: bytes, size: int | None = None, req: ChatRequest | None = None) -> list[Event]:
    parser = openai.StreamParser(req or ChatRequest(model="gpt-4o", stream=True))
    events: list[Event] = []
    step = size or len(data) or 1
    for i in range(0, len(data), step):
        events.extend(parser.feed(data[i : i + step]))
    events.extend(parser.finish())
    return events


def assert_grammar(events: list[Event], *, complete_args: bool = True) -> None:
    """MessageStart (BlockStart Delta* BlockStop)* MessageDelta MessageStop, or cut by a StreamError."""
    assert events and isinstance(events[0], MessageStart), events[:1]
    errors = [i for i, ev in enumerate(events) if isinstance(ev, StreamError)]
    assert errors in ([], [len(events) - 1]), "a StreamError must be the last event"
    body = events[1:-1] if errors else events[1:]
    if not errors:
        assert isinstance(body[-1], MessageStop) and isinstance(body[-2], MessageDelta)
        body = body[:-2]
    delta_kind = {"text": TextDelta, "thinking": ThinkingDelta, "tool_call": ToolArgsDelta}
    expected, current = 0, None
    args: dict[int, str] = {}
    for ev in body:
        if isinstance(ev, BlockStart):
            assert current is None, "a block opened while another was open"
            assert ev.index == expected, f"block index {ev.index}, expected {expected}"
            expected += 1
            current = ev
            if ev.type == "tool_call":
                assert ev.id and ev.name
                args[ev.index] = ""
        elif isinstance(ev, BlockStop):
            assert current is not None and ev.index == current.index
            current = None
        else:
            assert current is not None and ev.index == current.index, ev  # type: ignore[union-attr]
            assert isinstance(ev, delta_kind[current.type]), (ev, current)
            if isinstance(ev, ToolArgsDelta):
                args[ev.index] += ev.partial_json
    assert errors or current is None
    if not errors:
        stop = events[-2]
        assert isinstance(stop, MessageDelta)
        assert (stop.stop_reason == "tool_use") == bool(args), "tool_use iff a tool block was emitted"
        if complete_args:
            for text in args.values():
                assert isinstance(json.loads(text or "{}"), dict)


# ---------------------------------------------------------------- golden cases


@pytest.mark.parametrize("path", case_params(GOLDEN, "client"))
def test_client_golden(path: Path) -> None:
    case = load(path)
    req = wire.decode_request(case["request"])
    assert req.raw is case["request"] and req.protocol == "openai_chat"
    check(path, "internal", to_plain(req, exclude=("raw",)))
    check(path, "upstream", wire.encode_request(req))
    if "response" in case:
        body = wire.encode_response(from_plain(case["response"]), req)
        body["created"] = 0
        check(path, "encoded_response", body)
    if "events" in case:
        check(path, "sse", sse_frames(encode_stream(req, from_plain(case["events"]))))


@pytest.mark.parametrize("path", case_params(GOLDEN, "upstream"))
def test_upstream_golden(path: Path) -> None:
    case = load(path)
    req = ChatRequest(model="gpt-4o", stream=True, protocol="openai_chat")
    if "upstream_sse" in case:
        data = case["upstream_sse"].encode()
        events = parse_stream(data, req=req)
        check(path, "events", to_plain(events))
        assert_grammar(events, complete_args=not isinstance(events[-1], StreamError))
        for size in (1, 2, 5, 17, 64):  # frames split at odd byte boundaries parse the same
            assert parse_stream(data, size, req) == events
    if "response_body" in case:
        check(path, "decoded", to_plain(openai.parse_response(dumps(case["response_body"]), req)))


# ---------------------------------------------------------------- decode_request


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **kw}


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "at least one message"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (body(stream_options={"include_usage": True}), "only allowed when 'stream' is enabled"),
        (body(n=2), "n=1"),
        (body(temperature=3), "temperature"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_completion_tokens="10"), "max_completion_tokens"),
        (body(stop=[1]), "stop.0"),
        (body(tool_choice="sometimes"), "tool_choice"),
        (body(tool_choice={"type": "function"}), "tool_choice.function"),
        (body(reasoning_effort="extreme"), "reasoning_effort"),
        (body(response_format={"type": "yaml"}), "response_format.type"),
        (body(functions=[{"name": "f"}]), "legacy functions"),
        (body(tools=[{"type": "function", "function": {"parameters": {}}}]), "tools.0.function.name"),
        (body(tools=["get_weather"]), "tools.0"),
        ({"model": "m", "messages": ["hi"]}, "messages.0"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        (
            {"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]},
            "legacy 'function'",
        ),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        (
            {"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
            "only text parts",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"video": "x"}]}]},
            "messages.0.content.0.type: field required",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}
                ],
            },
            "http(s)",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}],
                    }
                ],
            },
            "base64",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
            "file_data or file_id",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}],
            },
            "function",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}
                ],
            },
            "id",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ],
)
def test_decode_rejects_bad_input_with_clear_400(payload: dict[str, Any], needle: str) -> None:
    with pytest.raises(GatewayError) as info:
        wire.decode_request(payload)
    assert info.value.kind == "invalid_request" and info.value.status == 400
    assert needle in info.value.message


def test_decode_stream_override_and_include_usage() -> None:
    req = wire.decode_request(body(stream=True, stream_options={"include_usage": False}))
    assert req.stream and not req.include_usage
    req = wire.decode_request(body(stream_options={"include_usage": True}), stream=True)
    assert req.stream and req.include_usage
    assert wire.decode_request(body(), model="alias").model == "alias"


def test_decode_tool_choice_variants() -> None:
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("a", "b", "c")
    ]
    assert wire.decode_request(body(tools=tools, tool_choice="required")).tool_choice == ToolChoice(
        mode="any"
    )
    assert wire.decode_request(body(tools=tools, tool_choice="none")).tool_choice == ToolChoice(mode="none")
    assert wire.decode_request(body(parallel_tool_calls=True)).tool_choice == ToolChoice(
        mode="auto", parallel=True
    )
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "auto",
            "tools": [
                {"type": "function", "function": {"name": "a"}},
                {"type": "function", "function": {"name": "c"}},
            ],
        },
    }
    req = wire.decode_request(body(tools=tools, tool_choice=allowed))
    assert [t.name for t in req.tools] == ["a", "c"] and req.tool_choice == ToolChoice(mode="auto")
    allowed["allowed_tools"]["mode"] = "required"
    allowed["allowed_tools"]["tools"] = [{"type": "function", "function": {"name": "b"}}]
    req = wire.decode_request(body(tools=tools, tool_choice=allowed, parallel_tool_calls=False))
    assert req.tool_choice == ToolChoice(mode="tool", name="b", parallel=False)


def test_decode_reasoning_controls() -> None:
    assert wire.decode_request(body(reasoning_effort="low")).thinking == ThinkingConfig(effort="low")
    assert wire.decode_request(body(reasoning_effort="none")).thinking == ThinkingConfig(
        enabled=False, effort="none"
    )
    req = wire.decode_request(body(reasoning={"max_tokens": 3000, "exclude": True}))
    assert req.thinking == ThinkingConfig(budget_tokens=3000, include=False)


def test_decode_tool_messages_merge_before_text_and_learn_names() -> None:
    req = wire.decode_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "user", "content": "and"},
                {"role": "tool", "tool_call_id": "c2", "content": ""},
            ],
        }
    )
    (turn,) = req.messages[1:]
    assert [type(p).__name__ for p in turn.content] == ["ToolResult", "ToolResult", "Text"]
    assert turn.content[0] == ToolResult(call_id="c1", content=[Text("one")], name="f")
    assert turn.content[1] == ToolResult(call_id="c2", content=[])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ("", {}),
        ("  ", {}),
        ('{"a": 1}', {"a": 1}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": "tru', {"a": "tru"}),
        ('{"a": 1,}', {"a": 1}),
        ('{"a":', {"a": None}),
        ('"{\\"a\\": 1}"', {"a": 1}),
        ("[1, 2]", {"raw": "[1, 2]"}),
        ("city=Paris", {"raw": "city=Paris"}),
    ],
)
def test_parse_arguments_repairs_or_wraps(raw: str | None, expected: dict[str, Any]) -> None:
    assert wire.parse_arguments(raw) == expected


def test_invalid_arguments_keep_raw_text() -> None:
    req = wire.decode_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}
                    ],
                }
            ],
        }
    )
    call = req.messages[0].content[0]
    assert call == ToolCall(id="c", name="f", arguments={"raw": "not json"}, raw_arguments="not json")


# ---------------------------------------------------------------- encode_request (upstream body)


def test_encode_from_anthropic_history() -> None:
    """A Claude Code-shaped request reaches a Chat upstream with every rule applied."""
    long_name = "mcp__a_rather_long_server_name__and_an_even_longer_tool_name_for_testing_purposes"
    req = anthropic_wire.decode_request(
        {
            "model": "claude",
            "max_tokens": 1000,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "tools": [
                {
                    "name": long_name,
                    "input_schema": {"type": "object"},
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "go", "cache_control": {"type": "ephemeral"}}],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "sig"},
                        {"type": "text", "text": ""},
                        {"type": "tool_use", "id": "toolu_1", "name": long_name, "input": {"x": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "is_error": True,
                            "content": [
                                {"type": "text", "text": "failed"},
                                {
                                    "type": "image",
                                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                                },
                            ],
                        },
                    ],
                },
            ],
        }
    )
    out = wire.encode_request(req)
    short = wire.upstream_tool_name(long_name)
    assert len(short) == 64 and short != long_name and short == wire.upstream_tool_name(long_name)
    assert req.extras[wire.TOOL_NAMES_KEY] == {short: long_name}
    assert "cache_control" not in json.dumps(out)
    assert out["max_completion_tokens"] == 1000 and "max_tokens" not in out
    assert out["reasoning_effort"] == "low"  # budget 2048
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["tools"][0]["function"]["name"] == short
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": short, "arguments": '{"x":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: failed"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "[attachments from tool result toolu_1]"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "here"},
            ],
        },
    ]


def test_encode_options_for_other_servers() -> None:
    req = ChatRequest(
        model="m",
        max_tokens=99,
        messages=[Message("assistant", [Thinking("plan", family="openai"), Text("ok")])],
        stop=["a", "b", "c", "d", "e"],
    )
    out = wire.encode_request(req, max_tokens_field="max_tokens", reasoning_history="reasoning_content")
    assert out["max_tokens"] == 99 and out["stop"] == ["a", "b", "c", "d"]
    assert out["messages"] == [{"role": "assistant", "content": "ok", "reasoning_content": "plan"}]
    assert "reasoning_content" not in json.dumps(wire.encode_request(req))


def test_encode_rejects_document_urls_clearly() -> None:
    req = ChatRequest(model="m", messages=[Message("user", [Document(url="https://x/y.pdf")])])
    with pytest.raises(GatewayError, match="documents by URL"):
        wire.encode_request(req)


def test_long_call_ids_shortened_consistently() -> None:
    long_id = "toolu_" + "x" * 60
    req = ChatRequest(
        model="m",
        messages=[
            Message("assistant", [ToolCall(id=long_id, name="f")]),
            Message("user", [ToolResult(call_id=long_id, content=[Text("ok")])]),
        ],
    )
    msgs = wire.encode_request(req)["messages"]
    assert msgs[0]["tool_calls"][0]["id"] == msgs[1]["tool_call_id"]
    assert len(msgs[1]["tool_call_id"]) == 40


def test_tool_names_restored_in_responses_and_streams() -> None:
    long_name = "server.tool:" + "n" * 70
    req = ChatRequest(model="m", stream=True, tools=[Tool(name=long_name)])
    out = wire.encode_request(req)
    short = out["tools"][0]["function"]["name"]
    assert wire._TOOL_NAME_OK.match(short)
    upstream = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": short, "arguments": "{}"}}
                    ],
                },
            }
        ],
    }
    resp = openai.parse_response(dumps(upstream), req)
    assert (
        resp.content == [ToolCall(id="c", name=long_name, raw_arguments="{}")]
        and resp.stop_reason == "tool_use"
    )
    chunk = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [{"index": 0, "id": "c", "function": {"name": short, "arguments": "{}"}}]
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    events = parse_stream(b"data: " + dumps(chunk) + b"\n\ndata: [DONE]\n\n", req=req)
    assert [ev.name for ev in events if isinstance(ev, BlockStart)] == [long_name]


# ---------------------------------------------------------------- usage and errors


def test_usage_arithmetic_round_trip() -> None:
    u = wire.decode_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 25},
        }
    )
    assert u == Usage(
        input_tokens=30, output_tokens=40, cache_read_tokens=60, cache_write_5m_tokens=10, reasoning_tokens=25
    )
    back = wire.encode_usage(u)
    assert back["prompt_tokens"] == 100 and back["completion_tokens"] == 40 and back["total_tokens"] == 140
    assert back["prompt_tokens_details"] == {"cached_tokens": 60, "cache_write_tokens": 10}
    assert wire.decode_usage(None) == Usage() and wire.decode_usage({"prompt_tokens": None}) == Usage()


@pytest.mark.parametrize(
    ("kind", "etype", "code"),
    [
        ("invalid_request", "invalid_request_error", None),
        ("authentication", "invalid_request_error", "invalid_api_key"),
        ("not_found", "invalid_request_error", "not_found"),
        ("rate_limit", "requests", "rate_limit_exceeded"),
        ("billing", "insufficient_quota", "insufficient_quota"),
        ("api_error", "server_error", None),
        ("overloaded", "server_error", "server_overloaded"),
    ],
)
def test_encode_error_envelope(kind: str, etype: str, code: str | None) -> None:
    out = wire.encode_error(GatewayError(kind, "boom"), "req_1")
    assert out == {"error": {"message": "boom", "type": etype, "param": None, "code": code}}
    if kind != "invalid_request":
        assert wire.decode_error(out["error"]).kind == kind
    detailed = wire.encode_error(
        GatewayError("invalid_request", "too long", code="context_length_exceeded", param="messages"), "r"
    )
    assert detailed["error"]["code"] == "context_length_exceeded" and detailed["error"]["param"] == "messages"


def test_openrouter_numeric_error_code() -> None:
    err = wire.decode_error({"code": 429, "message": "slow down"})
    assert (err.kind, err.status, err.message) == ("rate_limit", 429, "slow down")


# ---------------------------------------------------------------- StreamEncoder details


def _tool_events() -> list[Event]:
    return [
        MessageStart(id="msg_1", model="m"),
        BlockStart(0, "thinking"),
        ThinkingDelta(0, "hmm"),
        BlockStop(0),
        BlockStart(1, "tool_call", id="toolu_a", name="f"),
        ToolArgsDelta(1, '{"a":'),
        ToolArgsDelta(1, "1}"),
        BlockStop(1),
        BlockStart(2, "tool_call", id="toolu_b", name="g"),
        BlockStop(2),
        MessageDelta("tool_use", Usage(input_tokens=5, output_tokens=7)),
        MessageStop(),
    ]


def test_stream_encoder_chunk_rules() -> None:
    req = ChatRequest(model="alias", stream=True)
    frames = sse_frames(encode_stream(req, _tool_events()))
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert all(
        c["id"] == "chatcmpl-msg_1" and c["object"] == "chat.completion.chunk" and c["model"] == "m"
        for c in chunks
    )
    roles = [c["choices"][0]["delta"].get("role") for c in chunks]
    assert roles[0] == "assistant" and not any(roles[1:])
    assert not any(c["choices"] == [] for c in chunks), "no usage chunk unless the client asked"
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [tc["index"] for tc in calls] == [0, 0, 0, 1, 1]
    assert [("id" in tc, "type" in tc) for tc in calls] == [
        (True, True),
        (False, False),
        (False, False),
        (True, True),
        (False, False),
    ]
    assert calls[-1]["function"] == {"arguments": "{}"}  # never leave arguments empty
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "hmm"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_encoder_error_and_reasoning_opt_out() -> None:
    req = ChatRequest(model="m", stream=True, include_usage=True, thinking=ThinkingConfig(include=False))
    enc = wire.StreamEncoder(req, "req_1")
    out = (
        enc.encode(MessageStart(id="chatcmpl-1", model="m"))
        + enc.encode(BlockStart(0, "thinking"))
        + enc.encode(ThinkingDelta(0, "secret"))
    )
    out += enc.encode(StreamError("overloaded", "busy", 529)) + enc.encode(MessageStop()) + enc.finish()
    frames = sse_frames(out)
    assert b"secret" not in out and "[DONE]" not in frames
    assert frames[-1] == {
        "error": {"message": "busy", "type": "server_error", "param": None, "code": "server_overloaded"}
    }
    assert enc.keepalive() == b": ping\n\n"


def test_stop_reason_mapping_follows_what_was_emitted() -> None:
    assert wire.finish_reason("tool_use", saw_tool_call=False) == "stop"
    assert wire.finish_reason("max_tokens", saw_tool_call=True) == "length"
    assert wire.finish_reason("refusal", saw_tool_call=False) == "content_filter"
    assert wire.stop_reason("tool_calls", saw_tool_call=False) == "end_turn"
    assert wire.stop_reason("stop", saw_tool_call=True) == "tool_use"


# ---------------------------------------------------------------- providers


def creds(base: str = openai.DEFAULT_BASE_URL) -> Credentials:
    return Credentials(base_url=base, api_key="sk-test", headers={"OpenAI-Project": "proj_1"})


def test_passthrough_keeps_unknown_fields_and_forces_usage() -> None:
    raw = body(
        stream=True, some_new_field={"x": 1}, max_tokens=10, stream_options={"include_obfuscation": False}
    )
    req = wire.decode_request(raw)
    assert not req.include_usage
    up = openai.build_request(req, "gpt-4o-2024-08-06", creds())
    sent = loads(up.body)
    assert up.passthrough and up.stream and up.url == "https://api.openai.com/v1/chat/completions"
    assert (
        sent["model"] == "gpt-4o-2024-08-06"
        and sent["some_new_field"] == {"x": 1}
        and sent["max_tokens"] == 10
    )
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert up.headers["authorization"] == "Bearer sk-test" and up.headers["OpenAI-Project"] == "proj_1"
    assert raw["stream_options"] == {"include_obfuscation": False}, "the client's body is not mutated"
    # the upstream's usage chunk is metered but not shown to a client that did not ask for it
    upstream = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    upstream += b'data: {"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n'
    events = parse_stream(upstream, req=req)
    assert isinstance(events[-2], MessageDelta) and events[-2].usage.input_tokens == 3
    frames = sse_frames(encode_stream(req, events))
    assert not any(isinstance(f, dict) and f.get("choices") == [] for f in frames)
    req.include_usage = True
    frames = sse_frames(encode_stream(req, events))
    assert frames[-2]["choices"] == [] and frames[-2]["usage"]["prompt_tokens"] == 3


def test_passthrough_overrides_and_non_stream() -> None:
    req = wire.decode_request(
        body(stream=True, stream_options={"include_usage": True}, max_completion_tokens=500)
    )
    req.stream = False
    req.max_tokens = 200
    req.extras["preset_system"] = "House rules."
    sent = loads(openai.build_request(req, "gpt-4o", creds()).body)
    assert "stream" not in sent and "stream_options" not in sent
    assert sent["max_completion_tokens"] == 200
    assert sent["messages"][0] == {"role": "system", "content": "House rules."}


def test_openai_translated_request_model_rules() -> None:
    req = ChatRequest(
        model="x",
        temperature=0.3,
        thinking=ThinkingConfig(effort="high"),
        messages=[Message("user", [Text("q")])],
    )
    sent = loads(openai.build_request(req, "o3-mini", creds()).body)
    assert "temperature" not in sent and sent["reasoning_effort"] == "high"
    sent = loads(openai.build_request(req, "gpt-4.1", creds()).body)
    assert sent["temperature"] == 0.3 and "reasoning_effort" not in sent
    req.stream = True
    sent = loads(openai.build_request(req, "gpt-4.1", creds()).body)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_openrouter_flavor() -> None:
    req = ChatRequest(
        model="x",
        max_tokens=300,
        thinking=ThinkingConfig(budget_tokens=4000),
        messages=[Message("user", [Text("q")])],
    )
    up = openrouter.build_request(req, "anthropic/claude-sonnet-4", creds(openrouter.DEFAULT_BASE_URL))
    sent = loads(up.body)
    assert up.url == "https://openrouter.ai/api/v1/chat/completions"
    assert sent["max_tokens"] == 300 and "max_completion_tokens" not in sent
    # the budget is cut to fit max_tokens, half of it left for the answer
    assert sent["reasoning"] == {"max_tokens": 150} and "reasoning_effort" not in sent
    req.thinking = ThinkingConfig(effort="medium", include=False)
    assert loads(openrouter.build_request(req, "m", creds(openrouter.DEFAULT_BASE_URL)).body)[
        "reasoning"
    ] == {"effort": "medium", "exclude": True}
    assert openrouter.WIRE == "openai_chat" and openrouter.NAME == "openrouter"


def test_openai_compatible_flavor_and_base_url() -> None:
    assert openai_compatible.DEFAULT_BASE_URL is None and openai_compatible.NAME == "openai-compatible"
    req = ChatRequest(model="x", max_tokens=5, messages=[Message("user", [Text("q")])])
    up = openai_compatible.build_request(req, "qwen3", Credentials(base_url="http://127.0.0.1:8000/v1"))
    assert up.url == "http://127.0.0.1:8000/v1/chat/completions" and "authorization" not in up.headers
    assert loads(up.body)["max_tokens"] == 5
    with pytest.raises(GatewayError, match="base_url"):
        openai_compatible.build_request(req, "qwen3", Credentials(base_url=""))


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.openai.com", "https://api.openai.com/v1/chat/completions"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"),
        ("https://openrouter.ai/api", "https://openrouter.ai/api/v1/chat/completions"),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/chat/completions"),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        ("https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1/chat/completions"),
        ("http://localhost:11434", "http://localhost:11434/v1/chat/completions"),
        ("http://h/custom/chat/completions", "http://h/custom/chat/completions"),
    ],
)
def test_chat_url(base: str, url: str) -> None:
    assert openai.chat_url(base) == url


def _err(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return openai.classify_error(status, headers or {}, dumps(payload))


def test_classify_error() -> None:
    quota = _err(
        429,
        {
            "error": {
                "message": "You exceeded your current quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        },
    )
    assert quota.cause == "quota" and quota.message.startswith("You exceeded")
    limited = _err(
        429,
        {"error": {"message": "Rate limit", "type": "tokens", "code": "rate_limit_exceeded"}},
        {
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",
            "x-ratelimit-reset-requests": "1s",
        },
    )
    assert limited.cause == "rate_limit" and limited.retry_after == 360.0
    assert _err(429, {}, {"retry-after": "7"}).retry_after == 7.0
    assert _err(402, {"error": {"code": 402, "message": "Insufficient credits"}}).cause == "quota"
    assert _err(404, {"error": {"code": "model_not_found", "message": "no"}}).cause == "model_not_found"
    assert _err(401, {"error": {"code": "invalid_api_key", "message": "bad key"}}).cause == "auth"
    assert (
        _err(400, {"error": {"code": "context_length_exceeded", "message": "too long"}}).cause
        == "bad_request"
    )
    assert _err(503, {}).cause == "overloaded"


def test_read_quota() -> None:
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000",
        "x-ratelimit-reset-tokens": "1h2m3.5s",
    }
    q = openai.read_quota(headers, now=1000.0)
    assert q == {
        "requests_limit": 500,
        "requests_remaining": 499,
        "requests_reset": 1000.12,
        "tokens_limit": 30000,
        "tokens_remaining": 29000,
        "tokens_reset": 1000.0 + 3723.5,
        "reset_in": 0.12,
    }
    assert openai.read_quota({}) is None
    assert (
        openai.parse_duration("6m0s") == 360.0
        and openai.parse_duration("2") == 2.0
        and openai.parse_duration("soon") is None
    )


def test_parse_response_error_with_http_200() -> None:
    with pytest.raises(openai.UpstreamError) as info:
        openai.parse_response(
            dumps({"error": {"code": 429, "message": "Rate limited upstream"}}), ChatRequest(model="m")
        )
    assert info.value.cause == "rate_limit"


# ---------------------------------------------------------------- parse side: more shapes


def _chunks(*deltas: dict[str, Any], finish: str = "tool_calls") -> bytes:
    out = b""
    for d in deltas:
        out += (
            b"data: "
            + dumps({"id": "c", "model": "m", "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
            + b"\n\n"
        )
    out += (
        b"data: "
        + dumps({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        + b"\n\n"
    )
    return out + b"data: [DONE]\n\n"


def test_parser_text_between_tool_fragments_never_cuts_arguments() -> None:
    data = _chunks(
        {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x":'}}]},
        {"content": "note"},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]},
        {"content": " more"},
    )
    events = parse_stream(data)
    assert_grammar(events)
    args = "".join(ev.partial_json for ev in events if isinstance(ev, ToolArgsDelta) and ev.index == 0)
    assert args == '{"x":1}'
    texts = [ev.text for ev in events if isinstance(ev, TextDelta)]
    assert texts == ["note", " more"]


def test_parser_missing_index_and_nameless_calls() -> None:
    data = _chunks(
        {"tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"k":1}'}}]},
        {"tool_calls": [{"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
        {"tool_calls": [{"index": 7, "function": {"arguments": "{}"}}]},  # never named: dropped
        finish="stop",
    )
    events = parse_stream(data)
    assert_grammar(events)
    assert [(ev.id, ev.name) for ev in events if isinstance(ev, BlockStart)] == [("a", "f"), ("b", "g")]
    assert events[-2].stop_reason == "tool_use"  # type: ignore[union-attr]


def test_parser_only_done_and_malformed() -> None:
    events = parse_stream(b"data: [DONE]\n\n")
    assert_grammar(events)
    assert events[-2] == MessageDelta("end_turn", Usage())
    events = parse_stream(b'data: {"id":"c","choices":[]}\n\ndata: {not json\n\n')
    assert isinstance(events[-1], StreamError) and events[-1].status == 502


def test_parser_finish_without_done_is_not_cut_and_length_maps() -> None:
    data = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"abc"},"finish_reason":"length"}]}\n\n'
    events = parse_stream(data)
    assert_grammar(events)
    assert events[-2].stop_reason == "max_tokens"  # type: ignore[union-attr]


# ---------------------------------------------------------------- the official SDK as a conformance test


@contextlib.asynccontextmanager
async def replay_server(respond: Callable[[dict[str, Any]], tuple[str, list[bytes]]]) -> AsyncIterator[str]:
    """A raw ASGI app under Hypercorn on 127.0.0.1 (port 0) that answers with prepared bytes."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        content_type, pieces = respond(loads(raw))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) the socket
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop.set()
        await task


def _odd_pieces(data: bytes) -> list[bytes]:
    sizes = [1, 7, 3, 50, 11]
    pieces, i, k = [], 0, 0
    while i < len(data):
        pieces.append(data[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return pieces


async def test_openai_sdk_accumulates_gateway_stream() -> None:
    """Upstream chunks (split ids, interleaved calls) -> StreamParser -> StreamEncoder -> openai SDK."""
    upstream = load(Path(__file__).parent / "golden" / GOLDEN / "upstream_split_interleaved.json")[
        "upstream_sse"
    ].encode()

    def respond(sent: dict[str, Any]) -> tuple[str, list[bytes]]:
        req = wire.decode_request(sent)
        parser = openai.StreamParser(req)
        events = [ev for piece in _odd_pieces(upstream) for ev in parser.feed(piece)] + parser.finish()
        enc = wire.StreamEncoder(req, "req_sdk")
        return wire.STREAM_CONTENT_TYPE, _odd_pieces(b"".join(enc.encode(ev) for ev in events) + enc.finish())

    async with replay_server(respond) as base_url:
        client = openai_sdk.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        try:
            async with client.chat.completions.stream(
                model="gpt-4o",
                messages=[{"role": "user", "content": "go"}],
                stream_options={"include_usage": True},
            ) as stream:
                final = await stream.get_final_completion()
        finally:
            await client.close()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []
    ]
    assert calls == [("call_0", "search", {"q": "cats"}), ("call_1", "fetch", {"url": "https://x"})]
    assert (
        final.usage is not None
        and final.usage.prompt_tokens == 50
        and final.usage.prompt_tokens_details.cached_tokens == 40
    )  # type: ignore[union-attr]
    assert final.id.startswith("chatcmpl-")


async def test_openai_sdk_reads_non_stream_answer_and_stream_errors() -> None:
    resp = ChatResponse(
        id="msg_9",
        model="claude",
        content=[Text("Hi"), ToolCall(id="toolu_1", name="f", arguments={"a": [1, 2]})],
        stop_reason="tool_use",
        usage=Usage(input_tokens=3, output_tokens=4, cache_read_tokens=2),
    )
    broken = [
        MessageStart(id="msg_1", model="m"),
        BlockStart(0, "text"),
        TextDelta(0, "par"),
        StreamError("overloaded", "Overloaded", 529),
    ]

    def respond(sent: dict[str, Any]) -> tuple[str, list[bytes]]:
        req = wire.decode_request(sent)
        if req.stream:
            return wire.STREAM_CONTENT_TYPE, [encode_stream(req, broken)]
        return "application/json", [dumps(wire.encode_response(resp, req))]

    async with replay_server(respond) as base_url:
        client = openai_sdk.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        try:
            done = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
            with pytest.raises(openai_sdk.APIError, match="Overloaded"):
                async with client.chat.completions.stream(
                    model="m", messages=[{"role": "user", "content": "x"}]
                ) as stream:
                    async for _ in stream:
                        pass
        finally:
            await client.close()
    message = done.choices[0].message
    assert done.choices[0].finish_reason == "tool_calls" and message.content == "Hi"
    assert message.tool_calls and json.loads(message.tool_calls[0].function.arguments) == {"a": [1, 2]}  # type: ignore[union-attr]
    assert done.usage is not None and done.usage.prompt_tokens == 5 and done.usage.total_tokens == 9


def test_golden_inputs_use_known_image_types() -> None:
    req = wire.decode_request(load(Path(__file__).parent / "golden" / GOLDEN / "multimodal.json")["request"])
    images = [p for p in req.messages[0].content if isinstance(p, Image)]
    assert [(i.media_type, i.url is not None) for i in images] == [("image/png", False), (None, True)]


def test_stream_encoder_never_repeats_ids_even_with_decoder_roundtrip() -> None:
    """Bytes from the encoder, parsed back by our own parser, give the same calls (a self-check)."""
    req = ChatRequest(model="m", stream=True, include_usage=True)
    data = encode_stream(req, _tool_events())
    decoder = SSEDecoder()
    assert all(event is None for event, _ in decoder.feed(data))
    events = parse_stream(data, 3)
    assert_grammar(events)
    assert [(ev.id, ev.name) for ev in events if isinstance(ev, BlockStart) and ev.type == "tool_call"] == [
        ("toolu_a", "f"),
        ("toolu_b", "g"),
    ]
    assert events[-2].usage == Usage(input_tokens=5, output_tokens=7)  # type: ignore[union-attr]
