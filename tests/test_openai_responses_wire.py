"""OpenAI Responses wire: protocol codecs, stream encoder and the upstream provider.

Golden cases live in ``tests/golden/openai_responses/`` (see ``golden_util``). Their kinds:

- ``request``: client body -> internal request (``model``) -> upstream body (``upstream``)
- ``response``: internal response -> client Response object (``client_response``)
- ``stream``: internal events -> client SSE frames (``sse``)
- ``upstream_stream``: recorded upstream SSE lines -> internal events (``events``)
- ``decode_errors``: bodies that must be refused with a 400

The stream encoder is also checked with the official openai SDK's own accumulator against a real
HTTP server (Hypercorn on an ephemeral port) replaying the encoder's bytes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import openai
import pytest
from golden_util import case_params, check, from_plain, load, to_plain
from hypercorn.asyncio import serve
from hypercorn.config import Config

from gatewaytui.codec import SSEDecoder, dumps, loads
from gatewaytui.model import (
    BlockStart,
    BlockStop,
    ChatResponse,
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCall,
    Usage,
)
from gatewaytui.protocols import anthropic as anthropic_wire
from gatewaytui.protocols import openai_responses as wire
from gatewaytui.providers import openai_responses as provider
from gatewaytui.providers.base import Credentials

PROTOCOL = "openai_responses"


# ---------------------------------------------------------------- helpers


def frames(data: bytes) -> list[dict[str, Any]]:
    """Encoder bytes as ``{"event", "data"}`` frames, with the wall-clock ``created_at`` zeroed."""
    out = []
    decoder = SSEDecoder()
    for event, payload in [*decoder.feed(data), *decoder.flush()]:
        obj = loads(payload)
        if isinstance(obj.get("response"), dict):
            obj["response"]["created_at"] = 0
        out.append({"event": event, "data": obj})
    return out


def encode_stream(req: Any, events: list[Event]) -> bytes:
    enc = wire.StreamEncoder(req, "req_golden")
    return b"".join(enc.encode(ev) for ev in events) + enc.finish()


def parse_upstream(data: bytes, chunk: int | None = None) -> list[Event]:
    parser = provider.StreamParser(None)
    events: list[Event] = []
    step = chunk or len(data) or 1
    for at in range(0, len(data), step):
        events.extend(parser.feed(data[at : at + step]))
    events.extend(parser.finish())
    return events


def assert_grammar(events: list[Event]) -> None:
    """MessageStart (BlockStart Delta* BlockStop)* MessageDelta MessageStop, or a StreamError last."""
    assert events, "no events"
    if isinstance(events[-1], StreamError):
        assert not any(isinstance(e, StreamError) for e in events[:-1])
        events = events[:-1]
        if not events:
            return
    else:
        assert isinstance(events[-2], MessageDelta) and isinstance(events[-1], MessageStop), events[-2:]
        events = events[:-2]
    assert isinstance(events[0], MessageStart)
    assert not any(isinstance(e, (MessageStart, MessageDelta, MessageStop)) for e in events[1:])
    open_block: BlockStart | None = None
    next_index = 0
    for ev in events[1:]:
        if isinstance(ev, BlockStart):
            assert open_block is None, "a block opened before the previous one closed"
            assert ev.index == next_index
            open_block, next_index = ev, next_index + 1
        elif isinstance(ev, BlockStop):
            assert open_block is not None and ev.index == open_block.index
            open_block = None
        else:
            assert open_block is not None and ev.index == open_block.index  # type: ignore[union-attr]
            expected = {
                TextDelta: "text",
                ToolArgsDelta: "tool_call",
                ThinkingDelta: "thinking",
                SignatureDelta: "thinking",
            }
            assert open_block.type == expected[type(ev)]
    # a stream that was cut may leave a block open; a completed one may not
    assert open_block is None or isinstance(events[-1], (TextDelta, ToolArgsDelta, ThinkingDelta, BlockStart))


def upstream_bytes(path: Path) -> bytes:
    return "\n".join(load(path)["upstream_sse"]).encode()


# ---------------------------------------------------------------- golden: requests


@pytest.mark.parametrize("path", case_params(PROTOCOL, "request"))
def test_golden_request(path: Path) -> None:
    case = load(path)
    req = wire.decode_request(case["client"])
    check(path, "model", to_plain(req, exclude=("raw",)))
    check(path, "upstream", wire.encode_request(req))


def test_request_goldens_exist() -> None:
    kinds = [load(p.values[0]).get("kind") for p in case_params(PROTOCOL)]
    for kind in ("request", "response", "stream", "upstream_stream", "decode_errors"):
        assert kind in kinds


def test_decode_errors_are_clear_400s() -> None:
    case = load(next(p.values[0] for p in case_params(PROTOCOL, "decode_errors")))
    for item in case["cases"]:
        with pytest.raises(GatewayError) as info:
            wire.decode_request(item["body"])
        err = info.value
        assert (err.kind, err.status) == ("invalid_request", 400), item
        assert item["message"] in err.message, (item, err.message)
        assert err.param == item["param"], (item, err.param)


def test_stateless_message_names_the_fix() -> None:
    with pytest.raises(GatewayError) as info:
        wire.decode_request({"model": "m", "input": "hi", "previous_response_id": "resp_1"})
    assert "stateless" in info.value.message and "full conversation in input" in info.value.message


# ---------------------------------------------------------------- golden: responses


@pytest.mark.parametrize("path", case_params(PROTOCOL, "response"))
def test_golden_response(path: Path) -> None:
    case = load(path)
    req = wire.decode_request(case["client"])
    body = wire.encode_response(from_plain(case["response"]), req)
    assert isinstance(body["created_at"], int)
    body["created_at"] = 0
    check(path, "client_response", body)


def test_response_has_every_required_field() -> None:
    req = wire.decode_request({"model": "m", "input": "hi"})
    body = wire.encode_response(ChatResponse(id="x", model="m", content=[Text("hi")]), req)
    for key in (
        "id", "object", "created_at", "status", "model", "output", "parallel_tool_calls", "tool_choice",
        "tools", "usage", "error", "incomplete_details", "instructions", "metadata", "text", "temperature",
        "top_p", "truncation", "reasoning", "store", "max_output_tokens", "previous_response_id",
    ):  # fmt: skip
        assert key in body, key
    assert body["id"].startswith("resp_") and body["object"] == "response"
    usage = body["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0


def test_usage_arithmetic_round_trip() -> None:
    u = Usage(
        input_tokens=100,
        output_tokens=50,
        cache_read_tokens=900,
        cache_write_5m_tokens=20,
        reasoning_tokens=30,
    )
    enc = wire.encode_usage(u)
    assert enc["input_tokens"] == 1020  # includes cache reads and writes
    assert enc["input_tokens_details"] == {"cached_tokens": 900, "cache_write_tokens": 20}
    assert enc["output_tokens"] == 50 and enc["output_tokens_details"]["reasoning_tokens"] == 30
    assert enc["total_tokens"] == 1070
    assert wire.decode_usage(enc) == u
    assert (
        wire.decode_usage({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 9}}).input_tokens == 0
    )
    assert wire.decode_usage(None) == Usage()


def test_decode_response_maps_items_and_stop_reasons() -> None:
    body = {
        "id": "resp_1",
        "model": "gpt-5",
        "status": "completed",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "hm"}],
                "encrypted_content": "gAAA",
            },
            {"type": "reasoning", "id": "rs_2", "summary": []},  # nothing to keep
            {
                "type": "web_search_call",
                "id": "ws_1",
                "status": "completed",
                "action": {"type": "search", "query": "q"},
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
            },
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a":1}'},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "patch"},
        ],
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3},
    }
    resp = wire.decode_response(body)
    kinds = [p.kind for p in resp.content]
    assert kinds == ["thinking", "opaque", "text", "tool_call", "tool_call"]
    assert resp.content[0] == Thinking(text="hm", signature="gAAA", family="openai")
    assert resp.content[3] == ToolCall(id="call_1", name="f", arguments={"a": 1}, raw_arguments='{"a":1}')
    assert resp.content[4] == ToolCall(
        id="call_2", name="apply_patch", arguments={"input": "patch"}, custom=True
    )
    assert resp.stop_reason == "tool_use"
    assert (resp.usage.input_tokens, resp.usage.cache_read_tokens) == (6, 4)
    body["status"], body["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
    assert wire.decode_response(body).stop_reason == "max_tokens"
    refused = {
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "no"}]}],
    }
    assert wire.decode_response(refused).stop_reason == "refusal"
    with pytest.raises(GatewayError) as info:
        wire.decode_response(
            {"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}
        )
    assert (info.value.kind, info.value.status, info.value.message) == ("rate_limit", 429, "slow down")


def test_thinking_carrier_round_trip() -> None:
    for t in (
        Thinking(text="a", signature="sig", family="anthropic"),
        Thinking(redacted="blob", family="anthropic"),
        Thinking(text="b", signature="gAAAA", family="openai"),
        Thinking(text="c", signature="g-sig", family="gemini"),
    ):
        back = wire.uncarry(t.text, wire.carry(t))
        assert back == t
    assert wire.carry(Thinking(text="unsigned", family="anthropic")) is None


def test_encode_error_envelope() -> None:
    body = wire.encode_error(GatewayError("rate_limit", "slow down", param="x"), "req_1")
    assert body == {
        "error": {"message": "slow down", "type": "requests", "param": "x", "code": "rate_limit_exceeded"}
    }
    ctx = wire.encode_error(GatewayError("invalid_request", "prompt is too long: 300000 tokens"), "req_1")
    assert ctx["error"]["code"] == "context_length_exceeded"
    assert wire.encode_error(GatewayError("api_error", "boom"), "r")["error"]["type"] == "server_error"


def test_foreign_hosted_tools_and_thinking_are_dropped_upstream() -> None:
    """An Anthropic client's server tool and thinking have no Responses form."""
    req = anthropic_wire.decode_request(
        {
            "model": "claude",
            "max_tokens": 100,
            "tools": [
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
                {"name": "ls", "input_schema": {"type": "object", "properties": {}}},
            ],
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "s"},
                        {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok", "is_error": True}
                    ],
                },
            ],
        }
    )
    body = wire.encode_request(req)
    assert body["tools"] == [
        {
            "type": "function",
            "name": "ls",
            "parameters": {"type": "object", "properties": {}},
            "strict": False,
        }
    ]
    assert [i.get("type") for i in body["input"]] == ["message", "function_call", "function_call_output"]
    assert body["input"][1]["arguments"] == "{}"
    assert body["input"][2]["output"] == "Error: ok"
    assert body["store"] is False and body["max_output_tokens"] == 100


def test_tool_result_images_become_an_input_image_array() -> None:
    req = wire.decode_request(
        load(Path(__file__).parent / "golden/openai_responses/request_multimodal.json")["client"]
    )
    outputs = [i for i in wire.encode_request(req)["input"] if i.get("type") == "function_call_output"]
    assert isinstance(outputs[0]["output"], list)
    assert outputs[0]["output"][1] == {
        "type": "input_image",
        "image_url": "data:image/jpeg;base64,/9j/4AAQ",
        "detail": "auto",
    }
    assert outputs[1]["output"] == "found"


# ---------------------------------------------------------------- golden: client streams


@pytest.mark.parametrize("path", case_params(PROTOCOL, "stream"))
def test_golden_stream(path: Path) -> None:
    case = load(path)
    req = wire.decode_request(case["client"])
    data = encode_stream(req, from_plain(case["events"]))
    got = frames(data)
    assert [f["data"]["sequence_number"] for f in got] == list(range(len(got)))
    assert all(f["event"] == f["data"]["type"] for f in got)
    assert [f["data"]["type"] for f in got[:2]] == ["response.created", "response.in_progress"]
    assert got[-1]["data"]["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert b"[DONE]" not in data
    check(path, "sse", got)


def test_encoder_terminal_event_is_guaranteed() -> None:
    req = wire.decode_request({"model": "m", "input": "hi", "stream": True})
    enc = wire.StreamEncoder(req, "req_cut")
    data = enc.encode(MessageStart(id="msg_1", model="m")) + enc.encode(BlockStart(0, "text"))
    data += enc.encode(TextDelta(0, "par")) + enc.finish()
    got = frames(data)
    assert got[-1]["data"]["type"] == "response.failed"
    assert got[-1]["data"]["response"]["error"]["code"] == "server_error"
    assert enc.finish() == b"" and enc.encode(MessageStop()) == b""

    early = wire.StreamEncoder(req, "req_early")  # an error before anything else still starts properly
    got = frames(early.encode(StreamError("rate_limit", "slow down", 429)))
    assert [f["data"]["type"] for f in got] == ["response.created", "response.in_progress", "response.failed"]
    assert got[-1]["data"]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert got[0]["data"]["response"]["id"] == got[-1]["data"]["response"]["id"] == "resp_early"


def test_keepalive_is_an_sse_comment() -> None:
    enc = wire.StreamEncoder(wire.decode_request({"model": "m", "input": "x"}), "r")
    assert enc.keepalive().startswith(b":") and enc.keepalive().endswith(b"\n\n")
    assert frames(enc.keepalive()) == []


def test_encoder_output_parses_back_to_the_same_content() -> None:
    """Internal -> Responses SSE -> internal keeps text, calls (custom too), thinking and usage."""
    case = load(Path(__file__).parent / "golden/openai_responses/stream_tools.json")
    events = from_plain(case["events"])
    req = wire.decode_request(case["client"])
    back = parse_upstream(encode_stream(req, events), chunk=5)
    assert_grammar(back)

    def summary(evs: list[Event]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for ev in evs:
            if isinstance(ev, BlockStart):
                out.append([ev.type, ev.id, ev.name, ev.custom, ""])  # type: ignore[arg-type]
            elif isinstance(ev, (TextDelta, ThinkingDelta)):
                out[-1][4] += ev.text  # type: ignore[index]
            elif isinstance(ev, ToolArgsDelta):
                out[-1][4] += ev.partial_json  # type: ignore[index]
        return [(k, i, n, c, json.loads(t or "{}") if k == "tool_call" else t) for k, i, n, c, t in out]

    assert summary(back) == summary(events)
    assert back[-2].stop_reason == "tool_use"  # type: ignore[union-attr]
    assert back[-2].usage == events[-2].usage  # type: ignore[union-attr]
    sig = next(e for e in back if isinstance(e, SignatureDelta))
    assert wire.uncarry("", sig.signature).signature == "EqQBsig=="


# ---------------------------------------------------------------- golden: upstream streams


@pytest.mark.parametrize("path", case_params(PROTOCOL, "upstream_stream"))
def test_golden_upstream_stream(path: Path) -> None:
    data = upstream_bytes(path)
    events = parse_upstream(data)
    assert_grammar(events)
    for chunk in (1, 2, 7, 13, 64):  # frames split at odd byte boundaries give the same events
        assert parse_upstream(data, chunk) == events, chunk
    assert parse_upstream(data.replace(b"\n", b"\r\n"), 3) == events
    check(path, "events", to_plain(events))


def test_arguments_arrive_exactly_once_whatever_route() -> None:
    for name in (
        "upstream_args_delta",
        "upstream_args_done_only",
        "upstream_args_item_done_only",
        "upstream_completed_only",
    ):
        events = parse_upstream(
            upstream_bytes(Path(__file__).parent / f"golden/openai_responses/{name}.json")
        )
        args = "".join(e.partial_json for e in events if isinstance(e, ToolArgsDelta))
        assert args == '{"city":"Paris"}', name
        assert [e.stop_reason for e in events if isinstance(e, MessageDelta)] == ["tool_use"], name


def test_cut_stream_is_an_error() -> None:
    events = parse_upstream(
        upstream_bytes(Path(__file__).parent / "golden/openai_responses/upstream_cut.json")
    )
    assert isinstance(events[-1], StreamError) and "response.completed" in events[-1].message
    assert not any(isinstance(e, MessageStop) for e in events)


# ---------------------------------------------------------------- provider


def test_passthrough_is_stateless_whatever_store_says() -> None:
    """OpenAI stores a response unless told not to: the stateless route sends store false even when the
    client omits it, and drops reasoning items only a stored response could resolve (no encrypted_content)."""
    creds = Credentials(base_url="https://api.openai.com/v1", api_key="sk-up")
    history = [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAA"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        {"role": "user", "content": "again"},
    ]
    for extra in ({}, {"store": True}):
        body = {"model": "gpt-5", "input": history, **extra}
        sent = loads(provider.build_request(wire.decode_request(body), "gpt-5", creds).body)
        assert sent["store"] is False
        assert [i.get("id") for i in sent["input"] if i.get("type") == "reasoning"] == ["rs_2"]


def test_build_request_passthrough_keeps_the_client_body() -> None:
    body = {
        "model": "codex-alias",
        "input": "hi",
        "store": True,
        "stream": True,
        "future_field": {"x": 1},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
    }
    req = wire.decode_request(
        body, headers={"Session_ID": "s-1", "Authorization": "Bearer client", "originator": "codex_cli_rs"}
    )
    up = provider.build_request(
        req, "gpt-5-codex", Credentials(base_url="https://api.openai.com/v1", api_key="sk-up")
    )
    sent = loads(up.body)
    assert up.passthrough and up.stream
    assert up.url == "https://api.openai.com/v1/responses"
    # unknown fields and tools as the client sent them; store false, as the route keeps nothing
    assert sent == {**body, "model": "gpt-5-codex", "store": False}
    assert up.headers["authorization"] == "Bearer sk-up"
    assert up.headers["session_id"] == "s-1" and up.headers["originator"] == "codex_cli_rs"
    assert up.headers["accept"] == "text/event-stream"


def test_build_request_translated_body() -> None:
    req = anthropic_wire.decode_request(
        {
            "model": "claude",
            "max_tokens": 4000,
            "stream": True,
            "system": "sys",
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "tools": [
                {"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
            ],
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"anthropic-beta": "x"},
    )
    up = provider.build_request(
        req, "gpt-5", Credentials(base_url=provider.DEFAULT_BASE_URL, oauth_token="tok")
    )
    sent = loads(up.body)
    assert not up.passthrough
    assert up.url == "https://api.openai.com/v1/responses"
    assert "anthropic-beta" not in up.headers and up.headers["authorization"] == "Bearer tok"
    assert sent["store"] is False and sent["stream"] is True and sent["model"] == "gpt-5"
    assert sent["instructions"] == "sys"
    assert sent["tools"][0]["strict"] is False and sent["tools"][0]["type"] == "function"
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}
    assert sent["include"] == ["reasoning.encrypted_content"]


def test_passthrough_applies_presets() -> None:
    req = wire.decode_request({"model": "m", "input": "hi", "instructions": "client"})
    req.extras["preset_system"] = "preset"
    req.extras["preset_defaults"] = {"temperature": 0.3}
    req.max_tokens = 77
    sent = loads(provider.build_request(req, "m2", Credentials(base_url="http://x")).body)
    assert sent["instructions"] == "preset\n\nclient"
    assert sent["temperature"] == 0.3 and sent["max_output_tokens"] == 77


def test_parse_response() -> None:
    body = {"id": "resp_9", "model": "gpt-5", "status": "completed", "output": [], "usage": None}
    resp = provider.parse_response(dumps(body), wire.decode_request({"model": "m", "input": "x"}))
    assert (resp.id, resp.stop_reason, resp.usage) == ("resp_9", "end_turn", Usage())


def _err(code: str | None, message: str, etype: str = "invalid_request_error") -> bytes:
    return dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})


def test_classify_error() -> None:
    quota = provider.classify_error(
        429, {}, _err("insufficient_quota", "You exceeded your current quota", "insufficient_quota")
    )
    assert quota.cause == "quota"
    limited = provider.classify_error(
        429,
        {"x-ratelimit-reset-requests": "1.5s", "x-ratelimit-reset-tokens": "6m0s"},
        _err("rate_limit_exceeded", "Rate limit", "requests"),
    )
    assert limited.cause == "rate_limit" and limited.retry_after == pytest.approx(1.5)
    assert provider.classify_error(429, {"retry-after": "7"}, b"").retry_after == 7
    assert (
        provider.classify_error(404, {}, _err("model_not_found", "The model `x` does not exist")).cause
        == "model_not_found"
    )
    missing_item = provider.classify_error(404, {}, _err(None, "Item with id 'rs_1' not found."))
    assert missing_item.cause == "bad_request" and not missing_item.retryable
    assert provider.classify_error(401, {}, _err("invalid_api_key", "bad key")).cause == "auth"
    assert provider.classify_error(500, {}, b"oops").cause == "server"
    ctx = provider.classify_error(
        400, {}, _err("context_length_exceeded", "Your input exceeds the context window")
    )
    assert ctx.cause == "bad_request" and ctx.message == "Your input exceeds the context window"


def test_read_quota() -> None:
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1h2m3.5s",
    }
    quota = provider.read_quota(headers) or {}
    assert quota["requests_limit"] == 500 and quota["tokens_remaining"] == 0
    assert quota["reset_in"] == pytest.approx(0.12)
    assert quota["tokens_reset"] - quota["requests_reset"] == pytest.approx(3723.5 - 0.12, abs=0.01)
    assert provider.parse_duration("soon") is None
    assert provider.read_quota({}) is None


# ---------------------------------------------------------------- the official SDK as a conformance test


class ReplayApp:
    """A raw ASGI app: answers POST /v1/responses with prepared bytes and records the request bodies."""

    def __init__(self) -> None:
        self.stream_body = b""
        self.json_body: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = loads(body)
        self.requests.append(request)
        if not request.get("stream"):
            payload = dumps(self.json_body)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        data = self.stream_body
        for at in range(0, len(data), 97):  # odd chunking, frames split mid-line
            await send({"type": "http.response.body", "body": data[at : at + 97], "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def replay() -> Any:
    app = ReplayApp()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) the listening socket
    config.accesslog = None
    config.graceful_timeout = 1
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    client = openai.AsyncOpenAI(api_key="test-key", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    try:
        yield app, client
    finally:
        await client.close()
        stop.set()
        await task


SDK_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "shell",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        },
        "strict": False,
    },
    {"type": "custom", "name": "apply_patch", "description": "edit files"},
]


async def test_sdk_stream_accumulates_encoder_output(replay: Any) -> None:
    app, client = replay
    case = load(Path(__file__).parent / "golden/openai_responses/stream_tools.json")
    req = wire.decode_request(case["client"])
    enc = wire.StreamEncoder(req, "req_sdk")
    events = from_plain(case["events"])
    app.stream_body = (
        enc.encode(events[0]) + enc.keepalive() + b"".join(enc.encode(e) for e in events[1:]) + enc.finish()
    )

    seen: list[str] = []
    async with client.responses.stream(model="gpt-5-codex", input="fix it", tools=SDK_TOOLS) as stream:
        async for event in stream:
            seen.append(event.type)
        final = await stream.get_final_response()

    assert app.requests[0]["stream"] is True
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    assert final.id == "resp_s2" and final.status == "completed"
    types = [item.type for item in final.output]
    assert types == ["reasoning", "message", "function_call", "function_call", "custom_tool_call"]
    reasoning, message, call, bare_call, patch = final.output
    assert reasoning.summary[0].text == "Need to look."
    assert reasoning.encrypted_content == "gwtui1:anthropic:s:EqQBsig=="
    assert final.output_text == "Checking."
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("toolu_a", "shell", {"command": ["ls"]})
    assert bare_call.arguments == "{}"
    assert (patch.call_id, patch.input) == ("toolu_c", "*** Begin Patch\n*** End Patch\n")
    usage = final.usage
    assert usage is not None
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens) == (1040, 1000)
    assert (usage.output_tokens, usage.output_tokens_details.reasoning_tokens, usage.total_tokens) == (
        77,
        20,
        1117,
    )


async def test_sdk_stream_reports_failure(replay: Any) -> None:
    app, client = replay
    case = load(Path(__file__).parent / "golden/openai_responses/stream_error.json")
    app.stream_body = encode_stream(wire.decode_request(case["client"]), from_plain(case["events"]))
    async with client.responses.stream(model="gpt-4.1", input="hi") as stream:
        seen = [event async for event in stream]
        with pytest.raises(RuntimeError, match="response.completed"):
            await stream.get_final_response()
    failed = seen[-1]
    assert failed.type == "response.failed"
    assert failed.response.error is not None and failed.response.error.code == "context_length_exceeded"


async def test_sdk_non_stream_create(replay: Any) -> None:
    app, client = replay
    case = load(Path(__file__).parent / "golden/openai_responses/response_tool_use.json")
    app.json_body = wire.encode_response(from_plain(case["response"]), wire.decode_request(case["client"]))
    resp = await client.responses.create(model="gpt-5", input="hi", tools=SDK_TOOLS)
    assert resp.id == "resp_01ABC" and resp.status == "completed"
    assert resp.output_text == "Running tests."
    assert [i.type for i in resp.output] == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert json.loads(resp.output[2].arguments) == {"command": ["pytest"]}
    assert resp.usage is not None and resp.usage.input_tokens == 1020 and resp.usage.total_tokens == 1070


def test_call_name_arriving_late_still_opens_one_named_block() -> None:
    """A peer that leaves the name out of output_item.added: fragments wait for it."""
    lines = [
        {"type": "response.created", "response": {"id": "resp_1", "model": "m"}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "function_call", "call_id": "call_1"},
        },
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"a":'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "1}"},
        {
            "type": "response.function_call_arguments.done",
            "output_index": 0,
            "arguments": '{"a":1}',
            "name": "f",
        },
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": []}},
    ]
    events = parse_upstream(b"".join(b"data: " + dumps(obj) + b"\n\n" for obj in lines), chunk=3)
    assert_grammar(events)
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert [(s.id, s.name) for s in starts] == [("call_1", "f")]
    assert "".join(e.partial_json for e in events if isinstance(e, ToolArgsDelta)) == '{"a":1}'
    assert events[-2] == MessageDelta("tool_use", Usage())


def test_foreign_hosted_tools_reach_anthropic_as_its_own_or_not_at_all() -> None:
    """Web search from OpenAI or Gemini becomes Anthropic's server tool; other hosted tools never leak as a
    function Anthropic would offer the model."""
    from gatewaytui.protocols import gemini

    req = wire.decode_request(
        {
            "model": "m",
            "input": "hi",
            "tools": [
                {"type": "web_search"},
                {"type": "file_search", "vector_store_ids": ["vs_1"]},
                {"type": "function", "name": "f", "parameters": {"type": "object"}},
            ],
        }
    )
    assert anthropic_wire.encode_request(req)["tools"] == [
        {"type": "web_search_20250305", "name": "web_search"},
        {"name": "f", "input_schema": {"type": "object"}},
    ]
    greq = gemini.decode_request(
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"googleSearch": {}}, {"codeExecution": {}}],
        },
        model="m",
        stream=False,
    )
    assert anthropic_wire.encode_request(greq)["tools"] == [
        {"type": "web_search_20250305", "name": "web_search"}
    ]
    own = anthropic_wire.decode_request(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        }
    )
    assert anthropic_wire.encode_request(own)["tools"] == [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    ]
