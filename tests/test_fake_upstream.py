"""The fake upstream speaks each provider's wire exactly: checked over real HTTP with httpx and the official SDKs."""

from __future__ import annotations

import math

import anthropic
import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from gatewaytui.demo.upstream import FakeUpstream, ThreadedUpstream, serve

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}},
    "required": ["city", "days", "metric"],
}
WEATHER_ARGS = {"city": "Paris", "days": 1, "metric": True}
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def server():
    with ThreadedUpstream() as running:
        yield running


@pytest.fixture
def up(server):
    """The shared upstream, reset for each test."""
    server.upstream.requests.clear()
    server.upstream.clear_faults()
    server.upstream.accepted_keys = None
    return server.upstream


@pytest.fixture
def http(server, up):
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def claude(server, up):
    return anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)


@pytest.fixture
def oai(server, up):
    return openai.OpenAI(api_key="k", base_url=server.base_url + "/v1", max_retries=0)


@pytest.fixture
def gemini(server, up):
    return genai.Client(api_key="k", http_options=gtypes.HttpOptions(base_url=server.base_url))


def tokens_for(*texts: str) -> int:
    return max(1, math.ceil(sum(len(t) for t in texts) / 4))


def sse_frames(body: str) -> list[tuple[str | None, str]]:
    frames = []
    for block in body.replace("\r\n", "\n").strip().split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        frames.append((event, "\n".join(data)))
    return frames


def anthropic_body(text: str, **extra):
    return {
        "model": "claude-test",
        "max_tokens": 2000,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


# ---------------------------------------------------------------------------------------------- serving


async def test_serve_in_the_running_loop_on_a_free_port():
    upstream = FakeUpstream()
    async with serve(upstream) as base_url:
        assert not base_url.endswith(":0") and upstream.base_url == base_url
        async with httpx.AsyncClient(base_url=base_url) as client:
            openai_list = (await client.get("/v1/models", headers={"authorization": "Bearer k"})).json()
            claude_list = (await client.get("/v1/models", headers=ANTHROPIC_HEADERS)).json()
            gemini_list = (await client.get("/v1beta/models", params={"key": "k"})).json()
    assert openai_list["object"] == "list" and openai_list["data"][0]["object"] == "model"
    assert claude_list["has_more"] is False and claude_list["data"][0]["type"] == "model"
    assert gemini_list["models"][0]["name"].startswith("models/") and "nextPageToken" not in gemini_list
    assert [r.path for r in upstream.requests] == ["/v1/models", "/v1/models", "/v1beta/models"]


def test_requests_are_recorded_with_headers_query_and_body(http, up):
    body = anthropic_body("hi", some_future_field={"x": 1})
    headers = {**ANTHROPIC_HEADERS, "anthropic-beta": "a-1,b-2"}
    assert http.post("/v1/messages?beta=true", json=body, headers=headers).status_code == 200
    seen = up.requests[-1]
    assert (seen.method, seen.path, seen.query) == ("POST", "/v1/messages", {"beta": "true"})
    assert seen.headers["anthropic-beta"] == "a-1,b-2"
    assert seen.json == body


# ---------------------------------------------------------------------------------------------- Anthropic


def test_anthropic_plain_message_and_token_formula(claude):
    text = "What is the capital of France? Please answer briefly."
    raw = claude.messages.with_raw_response.create(
        model="claude-test", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": text}]
    )
    message = raw.parse()
    expected = f"Hello from the fake upstream! You said: {text[:60]}"
    assert message.content[0].text == expected
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == tokens_for("Be brief.", text)
    assert message.usage.output_tokens == len(expected.split())
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    assert (
        raw.headers["anthropic-ratelimit-requests-limit"]
        and raw.headers["anthropic-ratelimit-unified-5h-utilization"]
    )


def test_anthropic_stream_with_thinking_tool_and_usage_directive(claude):
    text = "use the tool get_weather [usage in=100 out=20 cache_read=50 cache_write=30 cache_write_1h=10]"
    tool = {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}
    with claude.messages.stream(
        model="claude-test",
        max_tokens=4000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "other", "input_schema": {"type": "object"}}, tool],
        messages=[{"role": "user", "content": text}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature and final.content[0].thinking.startswith("The user wrote: use the tool")
    assert final.content[2].name == "get_weather" and final.content[2].input == WEATHER_ARGS
    assert final.stop_reason == "tool_use"
    usage = final.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (100, 20, 50)
    assert usage.cache_creation_input_tokens == 40
    assert (
        usage.cache_creation.ephemeral_5m_input_tokens == 30
        and usage.cache_creation.ephemeral_1h_input_tokens == 10
    )


def test_anthropic_stream_event_grammar(http):
    tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    body = anthropic_body("use two tools please", tools=tools, stream=True)
    frames = sse_frames(http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS).text)
    events = [e for e, _ in frames]
    assert all(e is not None for e in events)
    datas = [orjson.loads(d) for _, d in frames]
    assert all(d["type"] == e for e, d in zip(events, datas, strict=True))
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    assert "ping" in events
    starts = [d for d in datas if d["type"] == "content_block_start"]
    assert [d["index"] for d in starts] == [0, 1, 2]
    assert datas[0]["message"]["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
    }
    fragments = [
        d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta" and d["index"] == 1
    ]
    assert len([f for f in fragments if f]) >= 3 and orjson.loads("".join(fragments)) == WEATHER_ARGS
    assert datas[-2]["usage"]["output_tokens"] == len("I will call get_weather and get_weather.".split()) + 20


def test_anthropic_count_tokens(claude):
    counted = claude.messages.count_tokens(
        model="claude-test", messages=[{"role": "user", "content": "x" * 41}]
    )
    assert counted.input_tokens == 11


def test_anthropic_tool_result_images_and_max_tokens(claude):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    seen = claude.messages.create(
        model="m",
        max_tokens=100,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is this?"}]}],
    )
    assert seen.content[0].text == "Hello from the fake upstream! I see 1 image. You said: what is this?"
    history = [
        {"role": "user", "content": "use the tool"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C"}]},
    ]
    tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    answered = claude.messages.create(model="m", max_tokens=100, tools=tools, messages=history)
    assert answered.content[0].text == "The tool returned: 22C" and answered.stop_reason == "end_turn"
    cut = claude.messages.create(model="m", max_tokens=3, messages=[{"role": "user", "content": "hello"}])
    assert (cut.stop_reason, cut.usage.output_tokens, cut.content[0].text) == (
        "max_tokens",
        3,
        "Hello from the",
    )


def test_anthropic_rejects_what_the_api_rejects(http):
    missing = http.post("/v1/messages", json={"model": "m", "messages": []}, headers=ANTHROPIC_HEADERS)
    assert missing.status_code == 400
    assert missing.json()["type"] == "error" and missing.json()["error"]["type"] == "invalid_request_error"
    assert missing.json()["request_id"] == missing.headers["request-id"]
    dangling = anthropic_body("x")
    dangling["messages"] = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}]},
        {"role": "user", "content": "b"},
    ]
    refused = http.post("/v1/messages", json=dangling, headers=ANTHROPIC_HEADERS)
    assert refused.status_code == 400 and "toolu_9" in refused.json()["error"]["message"]
    assert http.post("/v1/messages", content=b"{not json", headers=ANTHROPIC_HEADERS).status_code == 400


def test_anthropic_429_with_retry_after(claude):
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "[fault:429 retry-after=2] hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        claude.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "[fault:529]"}]
        )
    assert (
        overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    )


def test_directive_fault_times_and_quota(http):
    body = anthropic_body("[fault:500 times=1] once only")
    assert [
        http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS).status_code for _ in range(2)
    ] == [500, 200]
    quota = http.post("/v1/messages", json=anthropic_body("[fault:429 quota]"), headers=ANTHROPIC_HEADERS)
    assert quota.status_code == 429 and quota.headers["anthropic-ratelimit-unified-status"] == "rejected"


async def test_handle_without_http():
    upstream = FakeUpstream(clock=lambda: 1_700_000_000.0)
    body = orjson.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    reply = await upstream.handle("POST", "/v1/chat/completions", {}, {"Authorization": "Bearer k"}, body)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/event-stream")
    chunks = [chunk async for chunk in reply.stream]
    assert chunks[-1] == b"data: [DONE]\n\n" and b'"created":1700000000' in chunks[0]
    assert (upstream.active_streams, upstream.completed_streams, upstream.cancelled_streams) == (0, 1, 0)


def test_key_faults_for_failover(up, http):
    up.fail_key("key-a", status=429, retry_after=2, times=1)
    body = anthropic_body("hi")
    first = http.post("/v1/messages", json=body, headers={"x-api-key": "key-a"})
    other = http.post("/v1/messages", json=body, headers={"x-api-key": "key-b"})
    again = http.post("/v1/messages", json=body, headers={"x-api-key": "key-a"})
    up.fail_key("key-b", status=500, body={"custom": True}, headers={"x-extra": "1"})
    custom = http.post("/v1/messages", json=body, headers={"x-api-key": "key-b"})
    assert (first.status_code, first.headers["retry-after"], first.json()["error"]["type"]) == (
        429,
        "2",
        "rate_limit_error",
    )
    assert other.status_code == 200 and again.status_code == 200
    assert (
        custom.status_code == 500 and custom.json() == {"custom": True} and custom.headers["x-extra"] == "1"
    )


def test_accepted_keys_refuse_others_in_each_shape(up, http):
    up.accepted_keys = {"good"}
    claude = http.post("/v1/messages", json=anthropic_body("hi"), headers={"x-api-key": "bad"})
    chat = http.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer bad"},
    )
    gem = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": "bad"},
    )
    fine = http.post("/v1/messages", json=anthropic_body("hi"), headers={"x-api-key": "good"})
    assert claude.status_code == 401 and claude.json()["error"]["type"] == "authentication_error"
    assert chat.status_code == 401 and chat.json()["error"]["code"] == "invalid_api_key"
    assert gem.status_code == 400 and gem.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert fine.status_code == 200


# ---------------------------------------------------------------------------------------------- stream scripting


def test_chunks_cut_empty_and_error_event(http):
    def post(text: str) -> httpx.Response:
        return http.post("/v1/messages", json=anthropic_body(text, stream=True), headers=ANTHROPIC_HEADERS)

    chunked = sse_frames(post("[sleep:1] [pace:1] [chunks:40] hi").text)
    deltas = [orjson.loads(d)["delta"]["text"] for e, d in chunked if e == "content_block_delta"]
    assert len(deltas) == 40
    cut = sse_frames(post("[cut:3] hi").text)
    assert len(cut) == 3 and "message_stop" not in [e for e, _ in cut]
    empty = post("[empty]")
    assert empty.status_code == 200 and empty.content == b""
    errored = sse_frames(post("[error-event] hi").text)
    assert errored == [
        ("error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    ]


def test_cut_abort_breaks_the_connection(http):
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(
            "/v1/messages", json=anthropic_body("[cut:2 abort]", stream=True), headers=ANTHROPIC_HEADERS
        )


def test_client_disconnect_cancels_a_stalled_stream(up, http):
    before = up.cancelled_streams
    body = anthropic_body("[stall:2] [pace:1] hi", stream=True)
    with http.stream("POST", "/v1/messages", json=body, headers=ANTHROPIC_HEADERS) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: message_start"
        assert up.wait_until(lambda: up.active_streams == 1)
    assert up.wait_until(lambda: up.cancelled_streams == before + 1 and up.active_streams == 0)


def test_malformed_directive_is_a_clear_400(http):
    refused = http.post("/v1/messages", json=anthropic_body("[chunks:lots]"), headers=ANTHROPIC_HEADERS)
    assert refused.status_code == 400 and "malformed directive" in refused.json()["error"]["message"]


# ---------------------------------------------------------------------------------------------- OpenAI Chat


def test_openai_chat_non_stream_usage_mapping(oai):
    text = "hi [usage in=100 out=20 cache_read=50 cache_write=30 cache_write_1h=10]"
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}]
    )
    done = raw.parse()
    assert done.choices[0].message.content == "Hello from the fake upstream! You said: hi"
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (190, 20, 210)
    assert done.usage.prompt_tokens_details.cached_tokens == 50
    assert raw.headers["x-request-id"].startswith("req_") and raw.headers["x-ratelimit-limit-requests"]


def test_openai_chat_stream_helper_with_tool_call(oai):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "use the tool"}],
        tools=tools,
        stream_options={"include_usage": True},
        reasoning_effort="low",
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.role == "assistant" and message.content == "I will call get_weather."
    assert message.tool_calls[0].function.name == "get_weather" and message.tool_calls[0].id.startswith(
        "call_"
    )
    assert orjson.loads(message.tool_calls[0].function.arguments) == WEATHER_ARGS
    assert final.choices[0].finish_reason == "tool_calls"
    thinking = "The user wrote: use the tool. I should answer politely."
    assert (
        final.usage.completion_tokens == len("I will call get_weather.".split()) + len(thinking.split()) + 10
    )
    assert final.usage.completion_tokens_details.reasoning_tokens == len(thinking.split())


def test_openai_chat_chunk_grammar(http):
    tools = [{"type": "function", "function": {"name": "f", "parameters": WEATHER_SCHEMA}}]
    body = {
        "model": "m",
        "stream": True,
        "tools": tools,
        "messages": [{"role": "user", "content": "parallel tool"}],
    }
    frames = sse_frames(
        http.post("/api/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}).text
    )
    assert frames[-1] == (None, "[DONE]") and all(e is None for e, _ in frames)
    chunks = [orjson.loads(d) for _, d in frames[:-1]]
    assert all("usage" not in c for c in chunks)  # include_usage was not asked for
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert [i for i, d in enumerate(deltas) if "role" in d] == [0]
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert [tc["index"] for tc in calls if "id" in tc] == [0, 1]
    assert all(
        set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
        for tc in calls
        if "id" not in tc
    )
    assert len([tc for tc in calls if tc["index"] == 0 and "id" not in tc]) >= 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_chat_errors_and_cut(oai, http):
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[fault:429 retry-after=2]"}]
        )
    assert caught.value.code == "rate_limit_exceeded" and caught.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.RateLimitError) as quota:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "[fault:429 quota]"}])
    assert quota.value.code == "insufficient_quota"
    with pytest.raises(openai.APIError, match="server had an error"):
        list(
            oai.chat.completions.create(
                model="m", stream=True, messages=[{"role": "user", "content": "[error-event:2]"}]
            )
        )
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "[cut:3]"}]}
    cut = sse_frames(http.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}).text)
    assert len(cut) == 3 and (None, "[DONE]") not in cut
    refused = http.post(
        "/v1/chat/completions",
        json={**body, "stream": False, "stream_options": {"include_usage": True}},
        headers={"authorization": "Bearer k"},
    )
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"


# ---------------------------------------------------------------------------------------------- OpenAI Responses


def test_responses_stream_with_reasoning_and_function_call(oai):
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}]
    with oai.responses.stream(
        model="gpt-5",
        input="use the tool [usage in=10 out=30 cache_read=4 reasoning=12]",
        tools=tools,
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    ) as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[0].summary[0].text.startswith("The user wrote:") and final.output[0].encrypted_content
    assert final.output[2].name == "get_weather" and orjson.loads(final.output[2].arguments) == WEATHER_ARGS
    assert final.status == "completed" and final.output_text == "I will call get_weather."
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (14, 30, 44)
    assert (
        final.usage.input_tokens_details.cached_tokens == 4
        and final.usage.output_tokens_details.reasoning_tokens == 12
    )


def test_responses_event_sequence(http):
    body = {"model": "gpt-5", "input": "hello", "stream": True}
    frames = sse_frames(http.post("/v1/responses", json=body, headers={"authorization": "Bearer k"}).text)
    events = [orjson.loads(d) for _, d in frames]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [name for name, _ in frames] == [e["type"] for e in events]
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    for required in (
        "id",
        "created_at",
        "model",
        "object",
        "output",
        "parallel_tool_calls",
        "tool_choice",
        "tools",
    ):
        assert required in created


def test_responses_non_stream_and_truncation(oai):
    done = oai.responses.create(
        model="gpt-5", input=[{"role": "user", "content": "hello there"}], max_output_tokens=2
    )
    assert done.status == "incomplete" and done.incomplete_details.reason == "max_output_tokens"
    assert done.output_text == "Hello from" and done.usage.output_tokens == 2


# ---------------------------------------------------------------------------------------------- Gemini


def test_gemini_generate_and_count(gemini):
    text = "Tell me about Paris"
    reply = gemini.models.generate_content(model="gemini-2.5-flash", contents=text)
    assert reply.text == f"Hello from the fake upstream! You said: {text}"
    assert reply.candidates[0].finish_reason == gtypes.FinishReason.STOP
    assert reply.usage_metadata.prompt_token_count == tokens_for(text)
    assert reply.usage_metadata.candidates_token_count == len(reply.text.split())
    counted = gemini.models.count_tokens(model="gemini-2.5-flash", contents=text)
    assert counted.total_tokens == tokens_for(text)


def test_gemini_stream_with_thoughts_and_function_call(gemini):
    tool = gtypes.Tool(
        function_declarations=[
            gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA)
        ]
    )
    config = gtypes.GenerateContentConfig(
        tools=[tool],
        thinking_config=gtypes.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
    )
    text = "use the tool [usage in=10 out=20 cache_read=5 reasoning=8]"
    chunks = list(
        gemini.models.generate_content_stream(model="gemini-2.5-flash", contents=text, config=config)
    )
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    assert parts[0].thought is True and parts[0].thought_signature
    calls = [p for p in parts if p.function_call]
    assert len(calls) == 1 and calls[0].function_call.args == WEATHER_ARGS and calls[0].thought_signature
    last = chunks[-1]
    assert last.candidates[0].finish_reason == gtypes.FinishReason.STOP
    usage = last.usage_metadata
    assert (usage.prompt_token_count, usage.cached_content_token_count) == (15, 5)
    assert (usage.candidates_token_count, usage.thoughts_token_count, usage.total_token_count) == (12, 8, 35)


def test_gemini_wire_forms(http):
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    sse = http.post(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        json=body,
        headers={"x-goog-api-key": "k"},
    )
    lines = [line for line in sse.text.split("\r\n") if line]
    assert lines and all(line.startswith("data: {") for line in lines)
    array = http.post("/v1/models/gemini-2.5-flash:streamGenerateContent", json=body, params={"key": "k"})
    chunks = orjson.loads(array.content)
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks).startswith(
        "Hello from the fake upstream!"
    )
    snake = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "system_instruction": {"parts": [{"text": "be nice"}]},
    }
    bearer = http.post(
        "/v1beta/models/x:generateContent", json=snake, headers={"authorization": "Bearer t"}
    ).json()
    assert bearer["usageMetadata"]["promptTokenCount"] == tokens_for("hi", "be nice")
    bad_schema = {
        **body,
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "f", "parameters": {"type": "object", "additionalProperties": False}}
                ]
            }
        ],
    }
    refused = http.post("/v1beta/models/x:generateContent", json=bad_schema, headers={"x-goog-api-key": "k"})
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "additionalProperties" in refused.json()["error"]["message"]


def test_gemini_errors(gemini):
    with pytest.raises(genai_errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="[fault:429 retry-after=2]")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    retry = [d for d in caught.value.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]
    with pytest.raises(genai_errors.APIError):
        list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="[error-event:1] hi"))
