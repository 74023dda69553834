"""The Gemini wire: client protocol (protocols/gemini.py) and upstream provider (providers/gemini.py).

Golden cases live in tests/golden/gemini/; the google-genai SDK is the conformance check for the
stream encoder (it is served by a tiny ASGI app under Hypercorn on a free local port).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from golden_util import case_params, check, from_plain, load, to_plain

from gatewaytui.codec import dumps, loads
from gatewaytui.model import (
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
    Event,
    GatewayError,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from gatewaytui.protocols import anthropic
from gatewaytui.protocols import gemini as wire
from gatewaytui.providers import gemini as provider
from gatewaytui.providers.base import Credentials

MINTED = re.compile(re.escape(wire.MINTED_ID_PREFIX) + r"[0-9a-f]+")


def normalise(obj: Any) -> Any:
    """Random minted ids replaced by a fixed marker, so goldens stay stable."""
    if isinstance(obj, str):
        return MINTED.sub(wire.MINTED_ID_PREFIX + "<minted>", obj)
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    if isinstance(obj, dict):
        return {k: normalise(v) for k, v in obj.items()}
    return obj


def assert_grammar(events: list[Event]) -> None:
    """MessageStart (BlockStart Delta* BlockStop)* MessageDelta MessageStop, or a StreamError last."""
    errored = bool(events) and isinstance(events[-1], StreamError)
    if errored:
        assert not any(isinstance(e, StreamError) for e in events[:-1])
        events = events[:-1]
    elif events:
        assert isinstance(events[-2], MessageDelta) and isinstance(events[-1], MessageStop), events[-2:]
        events = events[:-2]
    assert not events or isinstance(events[0], MessageStart)
    open_index: int | None = None
    next_index = 0
    for ev in events[1:]:
        assert not isinstance(ev, (MessageStart, MessageDelta, MessageStop)), ev
        if isinstance(ev, BlockStart):
            assert open_index is None and ev.index == next_index, ev
            open_index, next_index = ev.index, next_index + 1
        elif isinstance(ev, BlockStop):
            assert ev.index == open_index, ev
            open_index = None
        else:
            assert getattr(ev, "index", None) == open_index, ev
    assert open_index is None or errored  # a StreamError may cut a block short


def parse_stream(data: bytes, size: int | None = None, req: ChatRequest | None = None) -> list[Event]:
    parser = provider.StreamParser(req)
    events: list[Event] = []
    step = size or len(data) or 1
    for i in range(0, len(data), step):
        events.extend(parser.feed(data[i : i + step]))
    events.extend(parser.finish())
    return events


def names_req(names: dict[str, str] | None) -> ChatRequest:
    req = ChatRequest(model="gemini-2.5-flash", protocol="anthropic")
    if names:
        req.extras[wire.TOOL_NAMES_KEY] = names
    return req


# ---------------------------------------------------------------- golden cases


@pytest.mark.parametrize("path", case_params("gemini", "request"))
def test_golden_client_request(path: Path) -> None:
    case = load(path)
    req = wire.decode_request(case["body"], model=case["model"], stream=case["stream"])
    assert req.raw is case["body"] and req.protocol == "gemini"
    check(path, "internal", to_plain(req, exclude=("raw",)))
    check(path, "upstream", wire.encode_request(req, model=wire.bare_model(case["model"])))


@pytest.mark.parametrize("path", case_params("gemini", "encode"))
def test_golden_encode_request(path: Path) -> None:
    case = load(path)
    if "anthropic" in case:
        req = anthropic.decode_request(case["anthropic"])
    else:
        req = from_plain(case["internal"])
    check(path, "upstream", wire.encode_request(req, model=case["upstream_model"]))
    check(path, "tool_names", req.extras.get(wire.TOOL_NAMES_KEY))


@pytest.mark.parametrize("path", case_params("gemini", "response"))
def test_golden_response(path: Path) -> None:
    case = load(path)
    resp = wire.decode_response(case["upstream"], names=case.get("tool_names"))
    check(path, "internal", normalise(to_plain(resp)))
    via_provider = provider.parse_response(dumps(case["upstream"]), names_req(case.get("tool_names")))
    assert normalise(to_plain(via_provider)) == normalise(to_plain(resp))
    check(path, "client", normalise(wire.encode_response(resp, None)))


@pytest.mark.parametrize("path", case_params("gemini", "upstream_stream"))
def test_golden_upstream_stream(path: Path) -> None:
    case = load(path)
    data = case["stream"].encode()
    whole = parse_stream(data)
    assert_grammar(whole)
    check(path, "events", normalise(to_plain(whole)))
    for size in (1, 2, 3, 5, 7, 13, 64):  # odd byte boundaries give the same events
        assert normalise(to_plain(parse_stream(data, size))) == normalise(to_plain(whole)), size


@pytest.mark.parametrize("path", case_params("gemini", "client_stream"))
def test_golden_client_stream(path: Path) -> None:
    case = load(path)
    req = ChatRequest(model="gemini-2.5-flash", protocol="gemini", stream=True, extras=dict(case["extras"]))
    req.thinking = from_plain(case.get("thinking"))
    events = from_plain(case["events"])
    encoder = wire.StreamEncoder(req, "req-1")
    out = b"".join(encoder.encode(ev) for ev in events) + encoder.finish()
    check(path, "output", out.decode())
    if req.extras.get("gemini_sse", True):
        assert out.endswith(b"\r\n\r\n")
        assert all(line.startswith("data: {") for line in out.decode().split("\r\n") if line)
    else:
        assert isinstance(json.loads(out), list)
    assert_grammar(parse_stream(out))  # what we send, our own parser reads back


# ---------------------------------------------------------------- decoding a client body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "contents: field required"),
        ({"contents": {"parts": []}}, "contents: expected array"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": "hi"}]}, "contents[0].parts: expected array"),
        ({"contents": [{"parts": [{}]}]}, "contents[0].parts[0]: empty part"),
        ({"contents": [{"parts": [{"text": 3}]}]}, "contents[0].parts[0].text: expected string"),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": "x"}}]}]},
            "functionCall.args: expected object",
        ),
        (
            {"contents": [{"parts": [{"functionResponse": {"response": {}}}]}]},
            "functionResponse.name: expected string",
        ),
        ({"contents": [{"parts": [{"inlineData": {"data": "AA"}}]}]}, "inlineData.mimeType: expected string"),
        ({"contents": [], "generationConfig": {"candidateCount": 2}}, "candidateCount: only one candidate"),
        ({"contents": [], "generationConfig": {"temperature": 3}}, "temperature: must be between 0 and 2"),
        (
            {"contents": [], "generationConfig": {"thinkingConfig": {"thinkingLevel": "HUGE"}}},
            "thinkingLevel",
        ),
        (
            {"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "mode: must be AUTO",
        ),
        (
            {"contents": [], "tools": [{"functionDeclarations": [{"description": "no name"}]}]},
            "functionDeclarations[0].name",
        ),
        ({"contents": [], "systemInstruction": {"parts": [{"inlineData": {}}]}}, "only text parts"),
    ],
)
def test_decode_rejects_bad_input_clearly(body: dict[str, Any], message: str) -> None:
    with pytest.raises(GatewayError) as info:
        wire.decode_request(body, model="gemini-2.5-flash")
    assert info.value.kind == "invalid_request" and info.value.status == 400
    assert message in info.value.message


def test_decode_requires_a_model_and_strips_the_resource_prefix() -> None:
    with pytest.raises(GatewayError, match="model"):
        wire.decode_request({"contents": []})
    assert wire.decode_request({"contents": []}, model="models/gemini-2.5-pro").model == "gemini-2.5-pro"


def test_count_tokens_wrapper_is_unwrapped() -> None:
    body = {
        "generateContentRequest": {
            "model": "models/gemini-2.5-flash",
            "contents": [{"parts": [{"text": "hi"}]}],
        }
    }
    req = wire.decode_request(body)
    assert req.model == "gemini-2.5-flash" and req.messages[0].content == [Text("hi")]


def test_minted_call_ids_are_stable_across_turns() -> None:
    """The id minted for an id-less call is the one its answer resolves to, now and in the next turn."""
    turn1 = [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "1"}}}]},
    ]
    turn2 = [
        *turn1,
        {"role": "model", "parts": [{"text": "done"}]},
        {"role": "user", "parts": [{"text": "again"}]},
    ]
    first = wire.decode_request({"contents": turn1}, model="m").messages
    second = wire.decode_request({"contents": turn2}, model="m").messages
    call, result = first[1].content[0], first[2].content[0]
    assert isinstance(call, ToolCall) and isinstance(result, ToolResult)
    assert result.call_id == call.id
    assert second[1].content[0] == call and second[2].content[0] == result


def test_function_response_shapes() -> None:
    contents = [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}] * 3},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "f", "response": {"output": {"rows": 2}}}},
                {"functionResponse": {"name": "f", "response": {"error": "denied"}}},
                {
                    "functionResponse": {
                        "name": "f",
                        "response": {},
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}],
                    }
                },
            ],
        },
    ]
    results = wire.decode_request({"contents": contents}, model="m").messages[1].content
    assert [r.call_id for r in results] == ["call_0_0", "call_0_1", "call_0_2"]
    assert results[0] == ToolResult("call_0_0", [Text('{"rows":2}')], name="f")
    assert results[1] == ToolResult("call_0_1", [Text("denied")], is_error=True, name="f")
    assert results[2] == ToolResult("call_0_2", [Image(media_type="image/png", data="iVBOR")], name="f")


def test_thinking_config_variants() -> None:
    def thinking(cfg: dict[str, Any]) -> ThinkingConfig | None:
        return wire.decode_request(
            {"contents": [], "generationConfig": {"thinkingConfig": cfg}}, model="m"
        ).thinking

    assert thinking({"thinkingBudget": 0}) == ThinkingConfig(enabled=False, budget_tokens=0, include=False)
    assert thinking({"thinkingBudget": -1, "includeThoughts": True}) == ThinkingConfig(
        adaptive=True, include=True
    )
    assert thinking({"thinkingBudget": 500}) == ThinkingConfig(budget_tokens=500, include=False)
    assert thinking({"thinking_level": "high"}) == ThinkingConfig(effort="high", include=False)
    assert thinking({}) is None


# ---------------------------------------------------------------- encoding for an upstream

FORBIDDEN = {
    "$schema",
    "$id",
    "$ref",
    "$defs",
    "definitions",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "const",
    "examples",
    "$comment",
    "deprecated",
    "default",
    "exclusiveMinimum",
    "oneOf",
    "allOf",
}


def walk_keys(schema: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k != "properties":
                keys.add(k)
                keys |= walk_keys(v)
            else:
                for sub in v.values():
                    keys |= walk_keys(sub)
    elif isinstance(schema, list):
        for v in schema:
            keys |= walk_keys(v)
    return keys


def test_schema_sanitiser_claude_code_shape() -> None:
    case = load(Path(__file__).parent / "golden" / "gemini" / "encode_claude_code_history.json")
    schema = case["anthropic"]["tools"][0]["input_schema"]
    out = wire.schema_for_gemini(schema)
    assert not walk_keys(out) & FORBIDDEN
    props = out["properties"]
    assert out["type"] == "OBJECT" and out["required"] == ["command"]  # "ghost" is not a property
    assert props["mode"] == {"type": "STRING", "enum": ["fast"]}
    assert (
        props["level"]["type"] == "INTEGER"
        and props["level"]["nullable"] is True
        and "enum" not in props["level"]
    )
    assert props["edits"]["items"]["required"] == ["old_string", "new_string"]  # $ref inlined
    assert props["anything"]["items"] == {"type": "STRING"}
    assert props["choice"] == {"type": "STRING", "description": "pick", "nullable": True}
    assert "format" not in props["url"]


def test_schema_sanitiser_type_lists_allof_and_cycles() -> None:
    assert wire.schema_for_gemini({"type": ["string", "number", "null"]}) == {
        "anyOf": [{"type": "STRING"}, {"type": "NUMBER"}],
        "nullable": True,
    }
    merged = wire.schema_for_gemini(
        {
            "allOf": [
                {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer"}}},
            ]
        }
    )
    assert merged == {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}, "b": {"type": "INTEGER"}},
        "required": ["a"],
    }
    cyclic = {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    }
    assert wire.schema_for_gemini(cyclic)["type"] == "OBJECT"  # bounded, no recursion error


def test_tool_names_are_sanitised_and_mapped_back() -> None:
    long = "mcp__plugin_server__" + "x" * 80
    req = ChatRequest(
        model="m",
        messages=[Message("user", [Text("hi")])],
        tools=[
            Tool(name=long),
            Tool(name="9lives"),
            Tool(name="a b"),
            Tool(name="a_b"),
            Tool(name="ok.name:v1-2"),
        ],
    )
    body = wire.encode_request(req)
    names = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}", n) for n in names), names
    assert len(set(names)) == 5 and names[4] == "ok.name:v1-2"
    back = req.extras[wire.TOOL_NAMES_KEY]
    assert {back.get(n, n) for n in names} == {long, "9lives", "a b", "a_b", "ok.name:v1-2"}
    chunk = {
        "candidates": [
            {"content": {"parts": [{"functionCall": {"name": names[0], "args": {}}}]}, "finishReason": "STOP"}
        ]
    }
    events = parse_stream(b"data: " + dumps(chunk) + b"\n\n", req=req)
    assert [e.name for e in events if isinstance(e, BlockStart)] == [long]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("data:image/png;base64,iVBOR", {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}),
        ("gs://b/cat.png", {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}}),
    ],
)
def test_image_urls_gemini_can_use(url: str, expected: dict[str, Any]) -> None:
    req = ChatRequest(model="m", messages=[Message("user", [Image(media_type="image/png", url=url)])])
    assert wire.encode_request(req)["contents"][0]["parts"] == [expected]


def test_image_url_gemini_cannot_fetch_is_a_clear_400() -> None:
    req = ChatRequest(model="m", messages=[Message("user", [Image(url="https://example.com/cat.png")])])
    with pytest.raises(GatewayError) as info:
        wire.encode_request(req)
    assert info.value.kind == "invalid_request" and "inline as base64" in info.value.message


@pytest.mark.parametrize(
    ("model", "thinking", "expected"),
    [
        (
            "gemini-2.5-flash",
            ThinkingConfig(budget_tokens=50000),
            {"thinkingBudget": 24576, "includeThoughts": True},
        ),
        ("gemini-2.5-pro", ThinkingConfig(budget_tokens=50000, include=False), {"thinkingBudget": 32768}),
        ("gemini-2.5-flash", ThinkingConfig(effort="low"), {"thinkingBudget": 2048, "includeThoughts": True}),
        ("gemini-2.5-flash", ThinkingConfig(adaptive=True), {"thinkingBudget": -1, "includeThoughts": True}),
        ("gemini-2.5-flash", ThinkingConfig(enabled=False), {"thinkingBudget": 0}),
        ("gemini-2.5-pro", ThinkingConfig(enabled=False), {"thinkingBudget": 128}),
        (
            "gemini-3-pro-preview",
            ThinkingConfig(effort="medium"),
            {"thinkingLevel": "high", "includeThoughts": True},
        ),
        (
            "gemini-3-flash-preview",
            ThinkingConfig(budget_tokens=512),
            {"thinkingLevel": "minimal", "includeThoughts": True},
        ),
        ("gemini-3-pro-preview", ThinkingConfig(adaptive=True), {"includeThoughts": True}),
    ],
)
def test_thinking_for_each_gemini_generation(
    model: str, thinking: ThinkingConfig, expected: dict[str, Any]
) -> None:
    req = ChatRequest(model="x", messages=[Message("user", [Text("hi")])], thinking=thinking)
    assert wire.encode_request(req, model=model)["generationConfig"]["thinkingConfig"] == expected


def test_decoded_request_reencodes_with_signatures_intact() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "q"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "a", "thoughtSignature": "U0lH"},
                    {"text": "", "thoughtSignature": "T05MWQ=="},
                ],
            },
            {"role": "user", "parts": [{"text": "q2"}]},
        ]
    }
    upstream = wire.encode_request(wire.decode_request(body, model="m"))
    assert upstream["contents"] == body["contents"]


def test_foreign_signature_round_trips_through_a_gemini_client() -> None:
    """Anthropic thinking shown to a Gemini client comes back as Anthropic thinking, even re-encoded urlsafe."""
    resp = ChatResponse(
        id="r", model="m", content=[Thinking("hmm", signature="Eq+/Sig==", family="anthropic"), Text("x")]
    )
    parts = wire.encode_response(resp, None)["candidates"][0]["content"]["parts"]
    carried = parts[0]["thoughtSignature"]
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(carried)).decode()  # what google-genai sends back
    req = wire.decode_request(
        {"contents": [{"role": "model", "parts": [{**parts[0], "thoughtSignature": urlsafe}, parts[1]]}]},
        model="m",
    )
    assert req.messages[0].content == [Thinking("hmm", signature="Eq+/Sig==", family="anthropic"), Text("x")]
    assert "thoughtSignature" not in str(wire.encode_request(req))  # never sent to Gemini itself


def test_streamed_foreign_thinking_replays_whole() -> None:
    """Streamed, the thought text and the signature arrive in different parts; the replay still pairs them."""
    req = ChatRequest(model="m", extras={"gemini_sse": False})
    enc = wire.StreamEncoder(req, "r")
    events: list[Event] = [
        MessageStart("m1", "claude"),
        BlockStart(0, "thinking", family="anthropic"),
        ThinkingDelta(0, "step one, "),
        ThinkingDelta(0, "step two"),
        SignatureDelta(0, "EqSig=="),
        BlockStop(0),
        MessageDelta("end_turn", Usage()),
        MessageStop(),
    ]
    chunks = json.loads(b"".join(enc.encode(e) for e in events) + enc.finish())
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    replay = wire.decode_request({"contents": [{"role": "model", "parts": parts}]}, model="m")
    assert (
        Thinking("step one, step two", signature="EqSig==", family="anthropic") in replay.messages[0].content
    )
    anthropic_body = anthropic.encode_request(replay)
    assert anthropic_body["messages"][0]["content"] == [
        {"type": "thinking", "thinking": "step one, step two", "signature": "EqSig=="}
    ]


# ---------------------------------------------------------------- usage and errors


def test_usage_both_ways() -> None:
    usage = wire.decode_usage(
        {
            "promptTokenCount": 1200,
            "cachedContentTokenCount": 1000,
            "candidatesTokenCount": 6,
            "thoughtsTokenCount": 120,
            "toolUsePromptTokenCount": 4,
        }
    )
    assert usage == Usage(input_tokens=204, output_tokens=126, cache_read_tokens=1000, reasoning_tokens=120)
    assert wire.encode_usage(usage) == {
        "promptTokenCount": 1204,
        "candidatesTokenCount": 6,
        "totalTokenCount": 1330,
        "cachedContentTokenCount": 1000,
        "thoughtsTokenCount": 120,
    }
    assert wire.decode_usage(None) == Usage()


def test_error_envelope() -> None:
    err = GatewayError("rate_limit", "slow down", retry_after=36.2)
    assert wire.encode_error(err, "req-9") == {
        "error": {
            "code": 429,
            "message": "slow down",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"},
                {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-9"},
            ],
        }
    }
    assert wire.encode_error(GatewayError("overloaded", "busy"), "")["error"] == {
        "code": 503,
        "message": "busy",
        "status": "UNAVAILABLE",
    }
    assert wire.StreamEncoder(ChatRequest(model="m"), "r").keepalive() == b""


def test_empty_array_stream_is_still_json() -> None:
    enc = wire.StreamEncoder(ChatRequest(model="m", extras={"gemini_sse": False}), "r")
    assert json.loads(enc.finish()) == []


# ---------------------------------------------------------------- encoder -> parser round trip


@pytest.mark.parametrize("sse", [True, False])
def test_encoder_output_parses_back_to_the_same_content(sse: bool) -> None:
    events: list[Event] = [
        MessageStart("r1", "gemini-2.5-flash"),
        BlockStart(0, "thinking", family="gemini"),
        ThinkingDelta(0, "why"),
        SignatureDelta(0, "U0lHMQ=="),
        BlockStop(0),
        BlockStart(1, "text"),
        TextDelta(1, 'a]b},"c'),
        BlockStop(1),
        BlockStart(2, "tool_call", id="call_1", name="f", signature="U0lHMg=="),
        ToolArgsDelta(2, '{"x": [1, '),
        ToolArgsDelta(2, "2]}"),
        BlockStop(2),
        MessageDelta("tool_use", Usage(input_tokens=3, output_tokens=4)),
        MessageStop(),
    ]
    req = ChatRequest(model="m", extras={"gemini_sse": sse})
    enc = wire.StreamEncoder(req, "r1")
    data = b"".join(enc.encode(e) for e in events) + enc.finish()
    back = parse_stream(data, 3)
    assert_grammar(back)
    merged_args = [e for e in events if not (isinstance(e, ToolArgsDelta) and e.partial_json == "2]}")]
    assert [type(e).__name__ for e in back] == [
        type(e).__name__ for e in merged_args
    ]  # one args delta per call
    assert back[9] == ToolArgsDelta(2, '{"x":[1,2]}') and back[8] == BlockStart(
        2, "tool_call", id="call_1", name="f", signature="U0lHMg=="
    )
    assert back[6] == TextDelta(1, 'a]b},"c') and back[3] == SignatureDelta(0, "U0lHMQ==")
    assert back[11] == MessageDelta("tool_use", Usage(input_tokens=3, output_tokens=4))


def test_array_splitter_handles_escapes_at_every_boundary() -> None:
    elements = [{"a": 'x"}]\\', "b": [{"c": "{["}]}, {"d": '\\"'}]
    data = b"[\n" + b",\r\n".join(json.dumps(e, indent=1).encode() for e in elements) + b"\n]"
    for size in range(1, 9):
        splitter = provider.JsonArraySplitter()
        got = [loads(x) for i in range(0, len(data), size) for x in splitter.feed(data[i : i + size])]
        assert got == elements and not splitter.incomplete


def test_parser_rejects_garbage_data() -> None:
    events = parse_stream(b"data: {not json}\n\n")
    assert isinstance(events[-1], StreamError) and events[-1].status == 502


# ---------------------------------------------------------------- provider


def creds(**kw: Any) -> Credentials:
    return Credentials(base_url=kw.pop("base_url", provider.DEFAULT_BASE_URL), **kw)


def test_build_request_urls_and_auth() -> None:
    req = ChatRequest(
        model="gem", messages=[Message("user", [Text("hi")])], stream=True, protocol="anthropic"
    )
    up = provider.build_request(req, "gemini-2.5-flash", creds(api_key="K"))
    assert (
        up.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert up.headers["x-goog-api-key"] == "K" and "authorization" not in up.headers and up.stream
    assert not up.passthrough and loads(up.body)["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    req.stream = False
    up = provider.build_request(
        req, "models/gemini-2.5-pro", creds(oauth_token="T", base_url="https://proxy/v1beta/")
    )
    assert up.url == "https://proxy/v1beta/models/gemini-2.5-pro:generateContent"
    assert up.headers["authorization"] == "Bearer T" and "x-goog-api-key" not in up.headers
    assert (
        provider.model_url("https://x/v1", "tunedModels/t1", "generateContent")
        == "https://x/v1/tunedModels/t1:generateContent"
    )


def test_passthrough_keeps_unknown_fields_and_applies_presets() -> None:
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc",
        "system_instruction": {"parts": [{"text": "client system"}]},
        "generationConfig": {"responseModalities": ["TEXT"], "maxOutputTokens": 9000},
        "futureField": {"x": 1},
    }
    req = wire.decode_request(body, model="gemini-2.5-flash", stream=True)
    req.extras.update(gemini_sse=False, preset_system="gateway preset", preset_defaults={"temperature": 0.2})
    req.max_tokens = 4096
    up = provider.build_request(req, "gemini-2.5-flash", creds(api_key="K"))
    assert up.passthrough and up.url.endswith(":streamGenerateContent")  # the client's framing (no alt=sse)
    sent = loads(up.body)
    assert sent["safetySettings"] == body["safetySettings"] and sent["cachedContent"] == "cachedContents/abc"
    assert sent["futureField"] == {"x": 1}
    assert sent["system_instruction"] == {"parts": [{"text": "gateway preset"}, {"text": "client system"}]}
    assert sent["generationConfig"] == {
        "responseModalities": ["TEXT"],
        "maxOutputTokens": 4096,
        "temperature": 0.2,
    }
    assert body["generationConfig"]["maxOutputTokens"] == 9000  # the client's body is not mutated


def gerr(status: int, code: str, message: str, details: list[dict[str, Any]]) -> bytes:
    return dumps({"error": {"code": status, "message": message, "status": code, "details": details}})


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


def quota(quota_id: str, value: str = "15") -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": quota_id, "quotaValue": value}],
    }


@pytest.mark.parametrize(
    ("status", "body", "cause", "retry_after"),
    [
        (
            429,
            gerr(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota",
                [quota("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), RETRY],
            ),
            "rate_limit",
            37.0,
        ),
        (
            429,
            gerr(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota",
                [quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "250"), RETRY],
            ),
            "quota",
            37.0,
        ),
        (
            429,
            gerr(
                429,
                "RESOURCE_EXHAUSTED",
                "limit: 0",
                [quota("GenerateContentInputTokensPerModelPerMinute", "0")],
            ),
            "quota",
            None,
        ),
        (
            429,
            b'[{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}]',
            "rate_limit",
            None,
        ),
        (
            400,
            gerr(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            ),
            "auth",
            None,
        ),
        (400, gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", []), "bad_request", None),
        (
            404,
            gerr(404, "NOT_FOUND", "models/nope is not found for API version v1beta", []),
            "model_not_found",
            None,
        ),
        (503, gerr(503, "UNAVAILABLE", "The model is overloaded.", []), "overloaded", None),
        (500, gerr(500, "INTERNAL", "An internal error has occurred.", []), "server", None),
    ],
)
def test_classify_error(status: int, body: bytes, cause: str, retry_after: float | None) -> None:
    err = provider.classify_error(status, {}, body)
    assert (err.cause, err.retry_after) == (cause, retry_after)
    assert err.message and not err.message.startswith("{")


def test_retry_after_header_wins_and_quota_headers_absent() -> None:
    err = provider.classify_error(429, {"retry-after": "5"}, gerr(429, "RESOURCE_EXHAUSTED", "x", [RETRY]))
    assert err.retry_after == 5.0
    assert provider.read_quota({"x-goog-api-key": "k"}) is None


def test_parse_response_rejects_non_json() -> None:
    with pytest.raises(GatewayError) as info:
        provider.parse_response(b"<html>", names_req(None))
    assert info.value.status == 502


# ---------------------------------------------------------------- the official google-genai SDK

SDK_EVENTS: list[Event] = [
    MessageStart("msg_sdk", "claude-sonnet-4-5", Usage(input_tokens=11)),
    BlockStart(0, "thinking", family="gemini"),
    ThinkingDelta(0, "Considering."),
    SignatureDelta(0, "c2lnbmF0dXJl"),
    BlockStop(0),
    BlockStart(1, "text"),
    TextDelta(1, "Hello "),
    TextDelta(1, "world"),
    BlockStop(1),
    BlockStart(2, "tool_call", id="toolu_1", name="get_weather"),
    ToolArgsDelta(2, '{"city": '),
    ToolArgsDelta(2, '"Paris"}'),
    BlockStop(2),
    MessageDelta("tool_use", Usage(output_tokens=7)),
    MessageStop(),
]
SDK_RESPONSE = ChatResponse(
    id="msg_sdk",
    model="claude-sonnet-4-5",
    content=[Text("Hello world"), ToolCall("toolu_1", "get_weather", {"city": "Paris"})],
    stop_reason="tool_use",
    usage=Usage(input_tokens=11, output_tokens=7, cache_read_tokens=5),
)


def make_app(seen: list[ChatRequest]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        match = re.fullmatch(
            r"/v1(?:beta)?/models/([^:]+):(generateContent|streamGenerateContent)", scope["path"]
        )
        if match is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        stream = match.group(2) == "streamGenerateContent"
        req = wire.decode_request(loads(body), model=match.group(1), stream=stream)  # the SDK's body decodes
        req.extras["gemini_sse"] = b"alt=sse" in scope["query_string"]
        seen.append(req)
        if not stream:
            payload = dumps(wire.encode_response(SDK_RESPONSE, req))
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        events = SDK_EVENTS
        if req.model == "broken":
            events = [*SDK_EVENTS[:8], StreamError("overloaded", "Overloaded, try later", 529)]
        encoder = wire.StreamEncoder(req, "req-sdk")
        ctype = wire.STREAM_CONTENT_TYPE if req.extras["gemini_sse"] else wire.ARRAY_CONTENT_TYPE
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype.encode())]}
        )
        for ev in events:
            data = encoder.encode(ev)
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": encoder.finish()})

    return app


@pytest.fixture(scope="module")
def sdk_server() -> Any:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = config.errorlog = None
    seen: list[ChatRequest] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(serve(make_app(seen), config, shutdown_trigger=stop.wait))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", seen
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)
    loop.close()


def sdk_client(base_url: str, api_version: str | None = None) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=base_url, api_version=api_version)
    )


def sdk_config() -> Any:
    from google.genai import types

    declaration = types.FunctionDeclaration(
        name="get_weather",
        description="Weather for a city",
        parameters_json_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    )
    return types.GenerateContentConfig(
        system_instruction="Be brief.",
        max_output_tokens=256,
        temperature=0.4,
        tools=[types.Tool(function_declarations=[declaration])],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
    )


@pytest.mark.parametrize("api_version", [None, "v1"])
def test_sdk_generate_content_stream(sdk_server: Any, api_version: str | None) -> None:
    base_url, seen = sdk_server
    client = sdk_client(base_url, api_version)
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Weather in Paris?", config=sdk_config()
        )
    )
    parts = [p for c in chunks for p in c.candidates[0].content.parts or []]
    assert "".join(p.text or "" for p in parts if not p.thought) == "Hello world"
    assert [p.text for p in parts if p.thought and p.text] == ["Considering."]
    assert [p.thought_signature for p in parts if p.thought_signature] == [base64.b64decode("c2lnbmF0dXJl")]
    calls = [p.function_call for p in parts if p.function_call]
    assert [(c.id, c.name, c.args) for c in calls] == [("toolu_1", "get_weather", {"city": "Paris"})]
    last = chunks[-1]
    assert last.candidates[0].finish_reason.value == "STOP"
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (11, 7)
    assert all(c.model_version == "claude-sonnet-4-5" and c.response_id == "msg_sdk" for c in chunks)
    req = seen[-1]  # what the SDK sent decoded cleanly
    assert req.stream and req.model == "gemini-2.5-flash" and req.system == [Text("Be brief.")]
    assert req.tools[0].name == "get_weather" and req.tools[0].schema["required"] == ["city"]
    assert req.thinking == ThinkingConfig(budget_tokens=1024, include=True) and req.max_tokens == 256


def test_sdk_generate_content(sdk_server: Any) -> None:
    base_url, seen = sdk_server
    client = sdk_client(base_url)  # keep a reference: a dropped Client closes its HTTP client
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Weather?", config=sdk_config()
    )
    assert response.text == "Hello world"
    assert [(c.id, c.name, c.args) for c in response.function_calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"})
    ]
    assert (
        response.usage_metadata.prompt_token_count == 16
        and response.usage_metadata.cached_content_token_count == 5
    )
    assert response.candidates[0].finish_reason.value == "STOP" and not seen[-1].stream


def test_sdk_replays_history_that_decodes(sdk_server: Any) -> None:
    """The SDK's own history (the model turn we produced + a function response) decodes with matched ids."""
    from google.genai import types

    base_url, seen = sdk_server
    client = sdk_client(base_url)
    first = client.models.generate_content(model="gemini-2.5-flash", contents="Weather?", config=sdk_config())
    call = first.function_calls[0]
    history = [
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        first.candidates[0].content,
        types.Content(
            role="user", parts=[types.Part.from_function_response(name=call.name, response={"output": "22C"})]
        ),
    ]
    client.models.generate_content(model="gemini-2.5-flash", contents=history, config=sdk_config())
    messages = seen[-1].messages
    assert messages[1].content[1] == ToolCall("toolu_1", "get_weather", {"city": "Paris"})
    assert messages[2].content == [ToolResult("toolu_1", [Text("22C")], name="get_weather")]


def test_sdk_sees_an_in_band_error(sdk_server: Any) -> None:
    from google.genai import errors

    base_url, _ = sdk_server
    client = sdk_client(base_url)
    texts = []
    with pytest.raises(errors.APIError) as info:
        for chunk in client.models.generate_content_stream(model="broken", contents="hi"):
            texts.append(chunk.text)
    assert [t for t in texts if t] == ["Hello ", "world"]  # thought-only chunks have no .text
    assert (
        info.value.code == 503 and info.value.status == "UNAVAILABLE" and "Overloaded" in info.value.message
    )


def test_stream_without_alt_sse_is_one_json_array(sdk_server: Any) -> None:
    import httpx

    base_url, _ = sdk_server
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with httpx.Client(base_url=base_url) as client:
        response = client.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", json=body)
    chunks = json.loads(response.content)
    assert response.headers["content-type"] == "application/json" and isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert_grammar(parse_stream(response.content, 5))


@pytest.mark.parametrize(
    "chunk",
    [
        {"candidates": "x"},
        {"candidates": [{"content": "x"}], "usageMetadata": [1]},
        {"candidates": [{"content": {"parts": {"text": "x"}}}], "usageMetadata": {"promptTokenCount": "9"}},
        {
            "candidates": [
                {"content": {"parts": [5, {"text": 7}, {"functionCall": "f"}]}, "finishReason": "STOP"}
            ]
        },
        {"promptFeedback": "blocked"},
    ],
)
def test_malformed_upstream_chunks_do_not_crash(chunk: dict[str, Any]) -> None:
    events = parse_stream(b"data: " + dumps(chunk) + b"\n\n")
    assert_grammar(events)
    resp = wire.decode_response(chunk)
    assert (
        resp.usage.total_tokens == 0 and resp.stop_reason == "end_turn"
    )  # (a malformed count: usage.invalid)


@pytest.mark.parametrize("value", ["1.5", "-1", "2147483648", "99999999999999999999999", "1e300", '"12"'])
def test_integer_fields_must_be_int32(value: str) -> None:
    from gatewaytui.codec import loads_request
    from gatewaytui.model import GatewayError
    from gatewaytui.protocols import gemini

    raw = (
        '{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":'
        + value
        + "}}"
    )
    with pytest.raises(GatewayError) as exc:
        gemini.decode_request(loads_request(raw.encode()), model="m", stream=False)
    assert exc.value.status == 400 and "maxOutputTokens" in exc.value.message


def test_integral_float_is_an_integer() -> None:
    from gatewaytui.codec import loads_request
    from gatewaytui.protocols import gemini

    raw = b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100.0,"topK":2147483647}}'
    req = gemini.decode_request(loads_request(raw), model="m", stream=False)
    assert req.max_tokens == 100 and req.top_k == 2**31 - 1
