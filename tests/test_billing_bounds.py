"""Spend stays within what was held, and CPU work stays off the event loop (issue 12: "count_tokens freezes
the gateway", "Spend past the balance").

- token counting runs in worker threads: a small request completes while a big count is still running;
  counts are capped in size; large chat bodies are parsed and decoded off the loop;
- every provider receives the output ceiling the hold was computed for, also when the client sent none;
- server tools are held for (uses x fee + input per use) and their fees billed as line items;
- upstream usage that is not non-negative integers is billed at the hold, the hold always closes, the client
  never sees a 500.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from conftest import DEFAULT_MODELS, GatewayHandle

from gatewaytui import tokens
from gatewaytui.billing import pricing
from gatewaytui.store import ledger
from gatewaytui.store import requests as request_store

SONNET = pricing.Price.of(type("M", (), {**{f"{k}_per_use": v for k, v in (("web_search", 10_000), ("web_fetch", 0), ("code_execution", 0))}, "input_per_mtok": 3_000_000, "output_per_mtok": 15_000_000, "cache_read_per_mtok": 300_000, "cache_write_per_mtok": 3_750_000, "cache_write_1h_per_mtok": 6_000_000})())  # fmt: skip


async def row(gw: GatewayHandle, request_id: str) -> dict[str, Any]:
    await gw.flush()
    found = request_store.get(gw.rt.readers.get(), request_id)
    assert found is not None, request_id
    return found


async def settled(gw: GatewayHandle, request_id: str) -> dict[str, Any]:
    for _ in range(1000):
        if request_id not in gw.rt.traffic.inflight:
            break
        await asyncio.sleep(0.01)
    return await row(gw, request_id)


def anthropic_body(text: str, **kw: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **kw,
    }


# ------------------------------------------------------------------------------------- CPU off the loop


async def test_a_big_count_in_flight_does_not_hold_up_a_small_request(
    gateway: GatewayHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is held inside tiktoken until the small request has been answered: on the event loop (the
    old code) the small request could not complete before the count ended."""
    real = tokens.count_request
    counting, release = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def held_count(*args: Any, **kw: Any) -> int:
        counting.set()
        release.wait(10)
        seen["small answered before the count ended"] = seen.get("small answered", False)
        return real(*args, **kw)

    monkeypatch.setattr(tokens, "count_request", held_count)
    key = await gateway.mint("acme", usd=5)
    big = anthropic_body("lorem ipsum dolor sit amet " * 80_000)  # ~2 MB of text
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60, headers={"x-api-key": key}) as h:
        count = asyncio.create_task(h.post("/v1/messages/count_tokens", json=big))
        while not counting.is_set():
            assert not count.done(), (count.result().status_code, count.result().text)
            await asyncio.sleep(0.01)
        small = await h.post("/v1/messages", json=anthropic_body("hi"))
        assert small.status_code == 200
        seen["small answered"] = True
        release.set()
        counted = await count
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 400_000
    assert seen["small answered before the count ended"]


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
async def test_count_tokens_refuses_text_past_the_cap_in_the_callers_protocol(
    gateway: GatewayHandle, protocol: str
) -> None:
    key = await gateway.mint("acme", usd=1)
    text = "x" * (tokens.MAX_COUNT_CHARS + 1)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as h:
        if protocol == "anthropic":
            r = await h.post(
                "/v1/messages/count_tokens", json=anthropic_body(text), headers={"x-api-key": key}
            )
            assert r.status_code == 413
            assert r.json()["type"] == "error" and r.json()["error"]["type"] == "request_too_large"
            assert "at most 4,000,000 characters" in r.json()["error"]["message"]
        else:
            body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
            r = await h.post(
                "/v1beta/models/gemini-2.5-flash:countTokens", json=body, headers={"x-goog-api-key": key}
            )
            assert r.status_code == 413
            assert r.json()["error"]["code"] == 413 and "at most" in r.json()["error"]["message"]
    assert gateway.rt.counting.jobs == 0


async def test_count_tokens_past_the_backlog_is_refused_not_queued(gateway: GatewayHandle) -> None:
    key = await gateway.mint("acme", usd=1)
    gate = threading.Event()
    busy = [asyncio.ensure_future(gateway.rt.counting.run(gate.wait, 10)) for _ in range(16)]
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
            r = await h.post(
                "/v1/messages/count_tokens", json=anthropic_body("hi"), headers={"x-api-key": key}
            )
        assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
        assert r.headers["retry-after"] == "1"
    finally:
        gate.set()
        await asyncio.gather(*busy)
    assert gateway.rt.counting.jobs == 0


async def test_large_chat_bodies_are_decoded_off_the_loop(
    gateway: GatewayHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gatewaytui.providers import anthropic as provider
    from gatewaytui.server import relay

    threads: list[str] = []
    encoded: list[str] = []
    real, real_build = relay.loads_request, provider.build_request

    def spy(data: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return real(data)

    def build_spy(*args: Any, **kw: Any) -> Any:
        encoded.append(threading.current_thread().name)
        return real_build(*args, **kw)

    monkeypatch.setattr(relay, "loads_request", spy)
    monkeypatch.setattr(provider, "build_request", build_spy)
    key = await gateway.mint("acme", usd=5)
    big = [{"role": r, "content": "word " * 20} for r in ("user", "assistant") * 2000] + [
        {"role": "user", "content": "hi"}
    ]
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60, headers={"x-api-key": key}) as h:
        small = await h.post("/v1/messages", json=anthropic_body("hi"))
        large = await h.post("/v1/messages", json={**anthropic_body("hi"), "messages": big})
    assert small.status_code == large.status_code == 200
    assert threads[0] == threading.main_thread().name, "a small body is decoded inline (no thread hop)"
    assert threads[1].startswith("gatewaytui-large request bodies")
    assert encoded[0] == threading.main_thread().name and encoded[1].startswith(
        "gatewaytui-large request bodies"
    )


async def test_a_cut_streams_prompt_is_counted_off_the_loop(
    gateway: GatewayHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tokens.count_request
    threads: list[str] = []

    def spy(*args: Any, **kw: Any) -> int:
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(tokens, "count_request", spy)
    key = await gateway.mint("acme", usd=1)
    body = {
        "model": "gpt-4o",
        "stream": True,
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "a story please [chunks:60] [pace:20]"}],
    }
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        async with h.stream(
            "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as resp:
            request_id = resp.headers["request-id"]
            async for line in resp.aiter_lines():
                if "delta" in line:
                    break
    rec = await settled(gateway, request_id)
    assert rec["status"] == "cancelled" and rec["input_tokens"] > 0
    assert threads and all(t.startswith("gatewaytui-token counting") for t in threads)


# ------------------------------------------------------------------------------------- the output ceiling

CEILING_CASES = [
    ("openai_chat", "gpt-4o", "/v1/chat/completions", "max_completion_tokens"),
    ("openai_chat", "kimi-k2", "/api/v1/chat/completions", "max_tokens"),
    ("openai_chat", "local-llama", "/v1/chat/completions", "max_tokens"),
    ("openai_chat", "claude-sonnet-4-5", "/v1/messages", "max_tokens"),
    ("openai_chat", "gemini-2.5-flash", ":generateContent", "generationConfig.maxOutputTokens"),
    ("openai_chat", "gpt-5", "/v1/responses", "max_output_tokens"),
    ("openai_responses", "gpt-5", "/v1/responses", "max_output_tokens"),
    ("openai_responses", "gpt-4o", "/v1/chat/completions", "max_completion_tokens"),
    ("openai_responses", "kimi-k2", "/api/v1/chat/completions", "max_tokens"),
    ("gemini", "gemini-2.5-flash", ":generateContent", "generationConfig.maxOutputTokens"),
    ("gemini", "local-llama", "/v1/chat/completions", "max_tokens"),
]


@pytest.mark.parametrize(("protocol", "model", "path", "field"), CEILING_CASES)
async def test_every_provider_gets_the_ceiling_the_hold_was_computed_for(
    gateway: GatewayHandle, upstream: Any, protocol: str, model: str, path: str, field: str
) -> None:
    key = await gateway.mint("acme", usd=5)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        if protocol == "openai_chat":
            r = await h.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {key}"},
            )
        elif protocol == "openai_responses":
            r = await h.post(
                "/v1/responses",
                json={"model": model, "input": "hi"},
                headers={"authorization": f"Bearer {key}"},
            )
        else:
            r = await h.post(
                f"/v1beta/models/{model}:generateContent",
                json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                headers={"x-goog-api-key": key},
            )
    assert r.status_code == 200, r.text
    sent = [q for q in upstream.requests if q.path.endswith(path)][-1].json
    value: Any = sent
    for part in field.split("."):
        value = value[part]
    assert value == 8192, f"{model} via {protocol}: {field} sent upstream"
    rec = await row(gateway, r.headers["x-request-id"])
    price = pricing.Price.of(next(m for m in gateway.rt.cfg.models if m.name == model))
    assert rec["hold_micro"] >= pricing.worst_case(price, 1, 8192), "the hold covers that ceiling"


# ------------------------------------------------------------------------------------- server tools

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}


def sse(events: list[tuple[str | None, dict[str, Any] | str]]) -> str:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else __import__("json").dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out)


def anthropic_message(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Found it."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_stream(start_usage: dict[str, Any], end_usage: dict[str, Any]) -> str:
    message = {**anthropic_message(start_usage), "content": [], "stop_reason": None}
    return sse(
        [
            ("message_start", {"type": "message_start", "message": message}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),  # fmt: skip
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Found it."},
                },
            ),  # fmt: skip
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": end_usage,
                },
            ),  # fmt: skip
            ("message_stop", {"type": "message_stop"}),
        ]
    )


def answer_with(upstream: Any, key: str, body: Any, *, stream: bool) -> None:
    """Make the fake upstream answer every request on account ``key`` with 200 and ``body``."""
    content_type = "text/event-stream" if stream else "application/json"
    upstream.fail_key(key, status=200, body=body, headers={"content-type": content_type})


async def test_web_search_is_held_for_and_its_ceiling_sent_upstream(
    gateway: GatewayHandle, upstream: Any
) -> None:
    key = await gateway.mint("acme", usd=5)
    body = anthropic_body("search the web", tools=[dict(WEB_SEARCH)])
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers={"x-api-key": key}) as h:
        r = await h.post("/v1/messages", json=body)
        explicit = await h.post("/v1/messages", json={**body, "tools": [{**WEB_SEARCH, "max_uses": 2}]})
    assert r.status_code == explicit.status_code == 200
    sent = [q for q in upstream.requests if q.path == "/v1/messages"]
    assert sent[0].json["tools"][0]["max_uses"] == 5, "the default bound is sent as the tool's max_uses"
    assert sent[1].json["tools"][0]["max_uses"] == 2
    raw_len = len(httpx.Request("POST", "http://x", json=body).content)
    rec = await row(gateway, r.headers["request-id"])
    assert rec["hold_micro"] == pricing.worst_case(SONNET, raw_len + 5 * 20_000, 100) + 5 * 10_000
    rec2 = await row(gateway, explicit.headers["request-id"])
    assert rec2["hold_micro"] < rec["hold_micro"]


async def test_a_tenant_cannot_afford_web_search_past_its_balance(
    gateway: GatewayHandle, upstream: Any
) -> None:
    """$0.05 of credit once ended at -$14.95: now the search's bound is held first, and refused."""
    key = await gateway.mint("poor", usd=0.05)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers={"x-api-key": key}) as h:
        r = await h.post("/v1/messages", json=anthropic_body("search", tools=[dict(WEB_SEARCH)]))
        plain = await h.post("/v1/messages", json=anthropic_body("hi"))
    assert r.status_code == 402 and "insufficient credit" in r.json()["error"]["message"]
    assert plain.status_code == 200
    assert gateway.rt.wallet.balance[tid] >= 0


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_server_tool_fees_are_billed_as_line_items(
    gateway: GatewayHandle, upstream: Any, stream: bool
) -> None:
    key = await gateway.mint("acme", usd=5)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    usage = {"input_tokens": 12_000, "output_tokens": 300, "server_tool_use": {"web_search_requests": 3}}
    reply: Any = (
        anthropic_stream({"input_tokens": 12_000, "output_tokens": 1}, usage)
        if stream
        else anthropic_message(usage)
    )
    answer_with(upstream, "key-anthropic-1", reply, stream=stream)
    body = anthropic_body("search", tools=[{**WEB_SEARCH, "max_uses": 3}], stream=stream)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers={"x-api-key": key}) as h:
        r = await h.post("/v1/messages", json=body)
    assert r.status_code == 200
    rec = await settled(gateway, r.headers["request-id"])
    assert rec["status"] == "ok"
    assert rec["line_items"]["web_search"] == {"uses": 3, "per_use_micro": 10_000, "cost_micro": "30000"}
    tokens_cost = -(-(12_000 * 3_000_000 + 300 * 15_000_000) // 1_000_000)
    assert rec["cost_micro"] == tokens_cost + 30_000
    await gateway.flush()
    assert ledger.balance(gateway.rt.readers.get(), tid) == 5_000_000 - rec["cost_micro"]


async def test_translated_web_search_is_held_for_too(gateway: GatewayHandle, upstream: Any) -> None:
    """An OpenAI Responses client's web_search tool reaches Claude as Anthropic's web search: held alike."""
    key = await gateway.mint("acme", usd=5)
    body = {"model": "claude-sonnet-4-5", "input": "search", "max_output_tokens": 100, "tools": [{"type": "web_search"}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        r = await h.post("/v1/responses", json=body, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    raw_len = len(httpx.Request("POST", "http://x", json=body).content)
    rec = await row(gateway, r.headers["x-request-id"])
    assert rec["hold_micro"] == pricing.worst_case(SONNET, raw_len + 5 * 20_000, 100) + 5 * 10_000


async def test_a_model_can_refuse_server_tools(make_gateway: Any, upstream: Any) -> None:
    models = [
        {**m, "server_tool_max_uses": 0} if m["name"] == "claude-sonnet-4-5" else m for m in DEFAULT_MODELS
    ]
    gw = await make_gateway(models=models)
    key = await gw.mint("acme", usd=5)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30, headers={"x-api-key": key}) as h:
        r = await h.post("/v1/messages", json=anthropic_body("search", tools=[dict(WEB_SEARCH)]))
        other = await h.post(
            "/v1/messages",
            json={**anthropic_body("search", tools=[dict(WEB_SEARCH)]), "model": "claude-haiku-4-5"},
        )
    assert r.status_code == 400 and "does not allow server tools" in r.json()["error"]["message"]
    assert "web_search" in r.json()["error"]["message"]
    assert other.status_code == 200
    assert not [q for q in upstream.requests if q.json and q.json.get("model") == "claude-sonnet-4-5"]


# ------------------------------------------------------------------------------------- bad usage

BAD_USAGE = {
    "negative": {"input_tokens": -10_000_000, "output_tokens": 5},
    "string": {"input_tokens": "100", "output_tokens": 5},
    "float": {"input_tokens": 100.5, "output_tokens": 5},
}


def openai_reply(usage: dict[str, Any], *, stream: bool) -> Any:
    base = {"id": "chatcmpl-1", "created": 1, "model": "gpt-4o"}
    if not stream:
        choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
    chunk = {**base, "object": "chat.completion.chunk"}
    return sse(
        [
            (
                None,
                {
                    **chunk,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}
                    ],
                },
            ),  # fmt: skip
            (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            (None, {**chunk, "choices": [], "usage": usage}),
            (None, "[DONE]"),
        ]
    )


def chat_usage(bad: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt_tokens": bad["input_tokens"],
        "completion_tokens": bad["output_tokens"],
        "total_tokens": 7,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("wire", ["anthropic", "openai"])
@pytest.mark.parametrize("kind", list(BAD_USAGE))
async def test_bad_upstream_usage_bills_the_hold_and_always_closes_it(
    gateway: GatewayHandle, upstream: Any, wire: str, kind: str, stream: bool
) -> None:
    key = await gateway.mint("acme", usd=5)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    bad = BAD_USAGE[kind]
    if wire == "anthropic":
        reply: Any = (
            anthropic_stream(bad, {"output_tokens": bad["output_tokens"]})
            if stream
            else anthropic_message(bad)
        )
        path, body, headers = "/v1/messages", anthropic_body("hi", stream=stream), {"x-api-key": key}
    else:
        reply = openai_reply(chat_usage(bad), stream=stream)
        body = {
            "model": "gpt-4o",
            "max_tokens": 100,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        }
        path, headers = "/v1/chat/completions", {"authorization": f"Bearer {key}"}
    answer_with(upstream, f"key-{wire}-1", reply, stream=stream)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers=headers) as h:
        r = await h.post(path, json=body)
        assert r.status_code == 200, r.text  # never a 500: the answer was good, only its usage was not
        request_id = r.headers["x-request-id"]
        rec = await settled(gateway, request_id)
        assert rec["status"] == "ok"
        assert rec["cost_micro"] == rec["hold_micro"] > 0, "billed the bound it was admitted for"
        assert rec["line_items"]["bound"]["reason"].startswith("the upstream reported invalid usage")
        assert "input_tokens" in rec["error"] or "prompt_tokens" in rec["error"]
        assert not gateway.rt.wallet.holds and gateway.rt.wallet.held[tid] == 0, "the hold is closed"
        await gateway.flush()
        assert ledger.balance(gateway.rt.readers.get(), tid) == 5_000_000 - rec["hold_micro"]
        upstream.clear_faults()
        again = await h.post(path, json={**body, "stream": False})  # nothing leaked: the tenant carries on
    assert again.status_code == 200


async def test_openai_hosted_web_search_calls_are_billed_per_call(
    gateway: GatewayHandle, upstream: Any
) -> None:
    """OpenAI reports no per-use counter: each ``web_search_call`` item of the response is one use."""
    key = await gateway.mint("acme", usd=5)
    message = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "Found it.", "annotations": []}]}  # fmt: skip
    searches = [{"type": "web_search_call", "id": f"ws_{i}", "status": "completed"} for i in range(2)]
    answer = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "gpt-5",
        "output": [*searches, message],
        "usage": {"input_tokens": 1_000, "output_tokens": 20, "total_tokens": 1_020},
    }
    answer_with(upstream, "key-openai-1", answer, stream=False)
    body = {"model": "gpt-5", "input": "search", "max_output_tokens": 100, "tools": [{"type": "web_search"}]}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        r = await h.post("/v1/responses", json=body, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    rec = await row(gateway, r.headers["x-request-id"])
    assert rec["line_items"]["web_search"] == {"uses": 2, "per_use_micro": 10_000, "cost_micro": "20000"}
    assert rec["cost_micro"] == 1_000 * 1_250_000 // 1_000_000 + 20 * 10 + 20_000
