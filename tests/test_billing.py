"""Costs to the micro-dollar, through the running gateway: usage shapes, streams, failures, 402, caps."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import DEFAULT_MODELS, GatewayHandle

from gatewaytui.billing import pricing
from gatewaytui.model import Usage
from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.protocols import anthropic as anthropic_wire
from gatewaytui.store import ledger
from gatewaytui.store import requests as request_store

SONNET = pricing.Price(
    input=3_000_000,
    output=15_000_000,
    cache_read=300_000,
    cache_write_5m=3_750_000,
    cache_write_1h=6_000_000,
    per_use=(("web_search", 10_000), ("web_fetch", 0), ("code_execution", 0)),  # the configured defaults
)


def micro(tokens_and_usd_per_mtok: list[tuple[int, str]]) -> int:
    """Independent reference: sum tokens * USD/MTok exactly, round up once to a micro-dollar."""
    exact = sum(
        Fraction(t) * Fraction(p) for t, p in tokens_and_usd_per_mtok
    )  # USD/MTok * tokens = micro-USD
    return -((-exact.numerator) // exact.denominator)


def client(gw: GatewayHandle, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0)


async def row(gw: GatewayHandle, request_id: str) -> dict[str, Any]:
    await gw.flush()
    found = request_store.get(gw.rt.readers.get(), request_id)
    assert found is not None, request_id
    return found


async def ledger_sum(gw: GatewayHandle, tenant_id: int) -> int:
    await gw.flush()
    return ledger.balance(gw.rt.readers.get(), tenant_id)


def test_cost_line_items_split_cache_creation() -> None:
    u = Usage(
        input_tokens=1234,
        output_tokens=567,
        cache_read_tokens=8901,
        cache_write_5m_tokens=2345,
        cache_write_1h_tokens=678,
    )
    c = pricing.cost(u, SONNET)
    expected = micro([(1234, "3"), (567, "15"), (8901, "0.3"), (2345, "3.75"), (678, "6")])
    assert c.total_micro == expected == 3702 + 8505 + 2671 + 8794 + 4068
    assert c.items["cache_write_5m"] == {"tokens": 2345, "per_mtok_micro": 3_750_000, "cost_micro": "8793.75"}
    assert c.items["cache_write_1h"]["cost_micro"] == "4068"
    assert c.items["cache_read"]["cost_micro"] == "2670.3"
    assert list(c.items) == ["input", "cache_write_5m", "cache_write_1h", "cache_read", "output"]


def test_unsplit_cache_creation_is_billed_as_5_minute_writes() -> None:
    u = anthropic_wire.decode_usage(
        {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 1001,
        }
    )
    assert (u.cache_write_5m_tokens, u.cache_write_1h_tokens) == (1001, 0)
    assert pricing.cost(u, SONNET).total_micro == micro([(10, "3"), (3, "15"), (7, "0.3"), (1001, "3.75")])


def test_rounding_happens_once_per_request() -> None:
    # 1 token of each kind at fractional micro-dollar rates: the sum is rounded, not each line
    p = pricing.Price(
        input=300_000, output=300_000, cache_read=300_000, cache_write_5m=300_000, cache_write_1h=300_000
    )
    u = Usage(
        input_tokens=1, output_tokens=1, cache_read_tokens=1, cache_write_5m_tokens=1, cache_write_1h_tokens=1
    )
    assert pricing.cost(u, p).total_micro == 2  # 5 * 0.3 = 1.5 -> 2, not 5 * ceil(0.3) = 5


def test_worst_case_covers_any_real_usage_of_the_same_request() -> None:
    worst = pricing.worst_case(SONNET, 1000, 200)
    for u in (
        Usage(input_tokens=1000, output_tokens=200),
        Usage(cache_write_1h_tokens=1000, output_tokens=200),
        Usage(input_tokens=300, cache_read_tokens=300, cache_write_5m_tokens=400, output_tokens=200),
    ):
        assert pricing.cost(u, SONNET).total_micro <= worst


@pytest.mark.parametrize(
    "usage",
    [
        {"in": 100, "out": 20, "cache_read": 50, "cache_write": 30, "cache_write_1h": 10},
        {"in": 7, "out": 333, "cache_read": 0, "cache_write": 12345, "cache_write_1h": 0},
        {"in": 1, "out": 1, "cache_read": 99999, "cache_write": 0, "cache_write_1h": 4321},
    ],
)
async def test_cached_usage_costs_exactly_stream_and_unary(
    gateway: GatewayHandle, usage: dict[str, int]
) -> None:
    key = await gateway.mint("acme", usd=5)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    directive = "[usage " + " ".join(f"{k}={v}" for k, v in usage.items()) + "]"
    expected = micro(
        [
            (usage["in"], "3"),
            (usage["out"], "15"),
            (usage["cache_read"], "0.3"),
            (usage["cache_write"], "3.75"),
            (usage["cache_write_1h"], "6"),
        ]
    )
    c = client(gateway, key)
    msgs = [{"role": "user", "content": f"cost check {directive}"}]
    unary = await c.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=400, messages=msgs
    )
    async with c.messages.stream(model="claude-sonnet-4-5", max_tokens=400, messages=msgs) as s:
        final = await s.get_final_message()
    stream_id = s.response.headers["request-id"]
    u = final.usage
    assert (u.cache_creation.ephemeral_5m_input_tokens, u.cache_creation.ephemeral_1h_input_tokens) == (
        usage["cache_write"],
        usage["cache_write_1h"],
    )
    r1, r2 = await row(gateway, unary.headers["request-id"]), await row(gateway, stream_id)
    assert r1["stream"] == 0 and r2["stream"] == 1
    assert r1["cost_micro"] == r2["cost_micro"] == expected
    assert r1["line_items"] == r2["line_items"]
    assert r1["price"] == SONNET.to_dict()
    assert (
        r1["cache_write_5m_tokens"] == usage["cache_write"]
        and r1["cache_write_1h_tokens"] == usage["cache_write_1h"]
    )
    assert await ledger_sum(gateway, tid) == 5_000_000 - 2 * expected
    assert gateway.rt.wallet.balance[tid] == 5_000_000 - 2 * expected and gateway.rt.wallet.held[tid] == 0


async def test_openai_client_same_usage_same_cost_stream_or_not(gateway: GatewayHandle) -> None:
    key = await gateway.mint("oai", usd=5)
    c = openai.AsyncOpenAI(api_key=key, base_url=gateway.base_url + "/v1", max_retries=0)
    msgs = [{"role": "user", "content": "hello [usage in=321 out=45 cache_read=1000]"}]
    r = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=msgs)
    stream = await c.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=msgs, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream.parse():
        pass
    a, b = await row(gateway, r.headers["x-request-id"]), await row(gateway, stream.headers["x-request-id"])
    expected = micro([(321, "2.5"), (45, "10"), (1000, "1.25")])
    assert a["cost_micro"] == b["cost_micro"] == expected


async def test_insufficient_balance_is_402_in_each_protocol(gateway: GatewayHandle, upstream: Any) -> None:
    key = await gateway.mint("poor", usd=None)
    before = len(upstream.requests)
    with pytest.raises(anthropic.APIStatusError) as exc:
        await client(gateway, key).messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert exc.value.status_code == 402
    assert exc.value.body["error"]["type"] == "billing_error"
    assert "insufficient credit" in exc.value.body["error"]["message"]
    with pytest.raises(openai.APIStatusError) as oexc:
        await openai.AsyncOpenAI(
            api_key=key, base_url=gateway.base_url + "/v1", max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert oexc.value.status_code == 402 and "insufficient credit" in str(oexc.value.body)
    async with httpx.AsyncClient(base_url=gateway.base_url) as h:
        g = await h.post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": key},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
    assert g.status_code == 402 and "insufficient credit" in g.json()["error"]["message"]
    assert len(upstream.requests) == before  # refused before anything went upstream


async def test_hold_is_worst_case_and_released_unused(gateway: GatewayHandle) -> None:
    key = await gateway.mint("acme", usd=1)
    r = await client(gateway, key).messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=1000,
        messages=[{"role": "user", "content": "hi [usage in=10 out=5]"}],
    )
    rec = await row(gateway, r.headers["request-id"])
    size = int(r.http_request.headers["content-length"])
    assert rec["hold_micro"] == pricing.worst_case(
        SONNET, size, 1000
    )  # every byte at the dearest rate + max_tokens
    entries = ledger.entries(gateway.rt.readers.get(), rec["tenant_id"])
    by_kind = {e["kind"]: e["amount_micro"] for e in entries if e["request_id"] == rec["id"]}
    assert by_kind == {"hold": -rec["hold_micro"], "settle": rec["hold_micro"] - rec["cost_micro"]}
    assert rec["cost_micro"] == micro([(10, "3"), (5, "15")])


async def test_failed_upstream_is_never_billed(gateway: GatewayHandle) -> None:
    key = await gateway.mint("acme", usd=1)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    with pytest.raises(anthropic.APIStatusError):
        await client(gateway, key).messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "x [fault:400]"}]
        )
    await gateway.flush()
    rows = request_store.recent(gateway.rt.readers.get(), tenant_id=tid)
    assert len(rows) == 1 and rows[0]["cost_micro"] == 0 and rows[0]["status"] == "error"
    kinds = sorted(e["kind"] for e in ledger.entries(gateway.rt.readers.get(), tid))
    assert kinds == ["hold", "release", "topup"]
    assert await ledger_sum(gateway, tid) == 1_000_000 == gateway.rt.wallet.balance[tid]


async def test_failover_bills_only_the_answering_attempt(make_gateway: Any, upstream: Any) -> None:
    accounts = [
        {
            "label": "first",
            "provider": "anthropic",
            "base_url": upstream.base_url,
            "api_key": "key-first",
            "priority": 10,
        },
        {"label": "second", "provider": "anthropic", "base_url": upstream.base_url, "api_key": "key-second"},
    ]
    gw = await make_gateway(accounts=accounts, models=DEFAULT_MODELS[:2])
    upstream.fail_key("key-first", 500)
    key = await gw.mint("acme", usd=1)
    r = await client(gw, key).messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi [usage in=40 out=8]"}],
    )
    rec = await row(gw, r.headers["request-id"])
    assert rec["attempts"] == 2 and rec["status"] == "ok"
    assert rec["cost_micro"] == micro([(40, "3"), (8, "15")])
    assert await ledger_sum(gw, rec["tenant_id"]) == 1_000_000 - rec["cost_micro"]


async def test_client_cut_stream_is_charged_for_what_was_generated(
    gateway: GatewayHandle, upstream: Any
) -> None:
    key = await gateway.mint("acme", usd=1)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": "long one [usage in=100 out=60] [chunks:60] [pace:20]"}],
    }
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        async with h.stream("POST", "/v1/messages", json=body, headers={"x-api-key": key}) as resp:
            request_id = resp.headers["request-id"]
            deltas = 0
            async for line in resp.aiter_lines():
                if line.startswith("data:") and "text_delta" in line:
                    deltas += 1
                    if deltas == 3:
                        break
    for _ in range(1000):  # the gateway notices the disconnect and settles
        if request_id not in gateway.rt.traffic.inflight:
            break
        await asyncio.sleep(0.01)
    rec = await row(gateway, request_id)
    assert rec["status"] == "cancelled"
    assert rec["input_tokens"] == 100
    assert 1 <= rec["output_tokens"] < 60
    assert rec["cost_micro"] == micro([(100, "3"), (rec["output_tokens"], "15")])
    assert await ledger_sum(gateway, tid) == 1_000_000 - rec["cost_micro"] == gateway.rt.wallet.balance[tid]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
async def test_openai_stream_cut_before_its_usage_still_bills_the_prompt(
    gateway: GatewayHandle, upstream: Any, path: str
) -> None:
    """OpenAI reports usage in the last chunk: a client that leaves before it still used the prompt."""
    from gatewaytui import tokens
    from gatewaytui.protocols import openai_chat

    key = await gateway.mint("acme", usd=1)
    tid = gateway.rt.keyring.authenticate(key)["tenant_id"]
    prompt = "tell me a long story about lighthouses and keepers " * 20 + "[chunks:60] [pace:20]"
    body: dict[str, Any] = {"model": "gpt-4o", "stream": True, "max_tokens": 500}
    if path == "/v1/chat/completions":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["input"] = prompt
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        async with h.stream("POST", path, json=body, headers={"authorization": f"Bearer {key}"}) as resp:
            assert resp.status_code == 200
            request_id = resp.headers["request-id"]
            deltas = 0
            async for line in resp.aiter_lines():
                if line.startswith("data:") and "delta" in line:
                    deltas += 1
                    if deltas == 4:
                        break
    for _ in range(1000):
        if request_id not in gateway.rt.traffic.inflight:
            break
        await asyncio.sleep(0.01)
    rec = await row(gateway, request_id)
    assert rec["status"] == "cancelled"
    req = openai_chat.decode_request({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})
    expected_input = tokens.count_request(req, tokens.encoding_for("openai", "gpt-4o"))
    assert rec["input_tokens"] == expected_input > 200, (
        "the prompt is billed, counted with the model's tokenizer"
    )
    assert rec["output_tokens"] >= 1
    assert rec["cost_micro"] == micro([(rec["input_tokens"], "2.5"), (rec["output_tokens"], "10")])
    assert await ledger_sum(gateway, tid) == 1_000_000 - rec["cost_micro"]


async def test_per_call_cap_refuses_dear_requests(gateway: GatewayHandle) -> None:
    key = await gateway.mint("capped", usd=10)
    await tenant_ops.set_cap(
        gateway.rt, "capped", 20_000, model="claude-sonnet-4-5"
    )  # $0.02 a call on sonnet
    c = client(gateway, key)
    with pytest.raises(anthropic.BadRequestError) as exc:
        await c.messages.create(
            model="claude-sonnet-4-5", max_tokens=4000, messages=[{"role": "user", "content": "hi"}]
        )
    assert "per-call cap of $0.020000" in exc.value.message
    assert (
        "output ceiling of 8,192 tokens" in exc.value.message
    )  # what a request without max_tokens is priced at
    ok = await c.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert ok.content
    # other models are not capped by a per-model cap; a tenant-wide cap applies to all
    await c.messages.create(
        model="claude-haiku-4-5", max_tokens=4000, messages=[{"role": "user", "content": "hi"}]
    )
    await tenant_ops.set_cap(gateway.rt, "capped", 1_000)
    with pytest.raises(anthropic.BadRequestError):
        await c.messages.create(
            model="claude-haiku-4-5", max_tokens=4000, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.BadRequestError):  # the per-model cap still wins for sonnet
        await c.messages.create(
            model="claude-sonnet-4-5", max_tokens=4000, messages=[{"role": "user", "content": "hi"}]
        )
    assert gateway.rt.wallet.held[gateway.rt.keyring.authenticate(key)["tenant_id"]] == 0


async def test_no_max_tokens_sends_the_models_ceiling_upstream(gateway: GatewayHandle, upstream: Any) -> None:
    key = await gateway.mint("acme", usd=5)
    c = openai.AsyncOpenAI(api_key=key, base_url=gateway.base_url + "/v1", max_retries=0)
    await c.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    sent = [r for r in upstream.requests if r.path.startswith("/v1/messages")][-1].json
    assert sent["max_tokens"] == 8192
