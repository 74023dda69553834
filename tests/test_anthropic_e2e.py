"""The Anthropic path end to end: the official SDK -> gateway under Hypercorn -> fake Anthropic upstream.

Expected costs follow the fake upstream's documented usage (directive ``[usage ...]``) and the model's
price: claude-sonnet-4-5 costs $3 in / $15 out / $0.30 cache read / $3.75 5m write / $6 1h write per MTok.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from gatewaytui.store import ledger as ledger_store
from gatewaytui.store import requests as request_store

USAGE = "[usage in=100 out=20 cache_read=50 cache_write=30 cache_write_1h=10]"
# 100*3 + 20*15 + 50*0.30 + 30*3.75 + 10*6 = 300 + 300 + 15 + 112.5 + 60 = 787.5 -> 788 micro-USD
EXPECTED_COST = 788


@pytest.fixture
async def client():
    """A factory of SDK clients, all closed at teardown (inside the test's event loop)."""
    made: list[anthropic.AsyncAnthropic] = []

    def make(gw, key: str) -> anthropic.AsyncAnthropic:
        made.append(anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0))
        return made[-1]

    yield make
    for c in made:
        await c.close()


async def test_non_streamed_message_is_billed_exactly(gateway, client) -> None:
    key = await gateway.mint("acme", usd=1)
    raw = await client(gateway, key).messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=[{"role": "user", "content": f"Hello there {USAGE}"}],
    )
    msg = await raw.parse()
    assert msg.content[0].text.startswith("Hello from the fake upstream! You said: Hello there")
    assert (msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens) == (
        100,
        20,
        50,
    )
    request_id = raw.headers["request-id"]
    assert raw.headers["x-request-id"] == request_id and request_id.startswith("req_")
    await gateway.flush()
    row = await gateway.rt.read(lambda c: request_store.get(c, request_id))
    assert row["cost_micro"] == EXPECTED_COST
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (100, 20, 50)
    assert (row["cache_write_5m_tokens"], row["cache_write_1h_tokens"]) == (30, 10)
    assert row["line_items"]["cache_write_5m"]["cost_micro"] == "112.5"
    tenant_id = row["tenant_id"]
    balance = await gateway.rt.read(lambda c: ledger_store.balance(c, tenant_id))
    assert balance == 1_000_000 - EXPECTED_COST
    assert gateway.rt.wallet.available(tenant_id) == balance


async def test_streamed_message_same_cost_as_unary(gateway, client) -> None:
    key = await gateway.mint("acme", usd=1)
    async with client(gateway, key).messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=[{"role": "user", "content": f"Stream please {USAGE}"}],
    ) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == final.content[0].text
    assert final.usage.output_tokens == 20 and final.stop_reason == "end_turn"
    await gateway.flush()
    rows = await gateway.rt.read(lambda c: request_store.recent(c))
    assert rows[0]["stream"] == 1 and rows[0]["cost_micro"] == EXPECTED_COST and rows[0]["status"] == "ok"
    assert gateway.rt.wallet.held[rows[0]["tenant_id"]] == 0


async def test_passthrough_keeps_unknown_fields_and_beta_headers(gateway, upstream, client) -> None:
    key = await gateway.mint("acme", usd=1)
    await client(gateway, key).messages.create(
        model="auto",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"context_management": {"edits": []}, "some_future_field": {"x": 1}},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27"},
    )
    seen = upstream.requests[-1]
    assert seen.json["some_future_field"] == {"x": 1} and seen.json["context_management"] == {"edits": []}
    assert seen.json["model"] == "claude-sonnet-4-5"
    assert "interleaved-thinking-2025-05-14" in seen.headers["anthropic-beta"]
    assert seen.headers["x-api-key"] == "key-anthropic-1"


async def test_beta_query_string_route(gateway, client) -> None:
    key = await gateway.mint("acme", usd=1)
    msg = await client(gateway, key).beta.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "beta hi"}],
        betas=["fake-beta-1"],
    )
    assert msg.content[0].text.startswith("Hello from the fake upstream")


async def test_errors_come_back_in_anthropic_shape(gateway, client) -> None:
    key = await gateway.mint("acme", usd=1)
    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        await client(gateway, "gw-not-a-real-key").messages.create(
            model="auto", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert bad_key.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as unknown:
        await client(gateway, key).messages.create(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert unknown.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        await client(gateway, key).messages.create(
            model="auto", max_tokens=8, messages=[{"role": "robot", "content": "x"}]
        )
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        r = await http.post(
            "/v1/messages",
            content=b"{not json",
            headers={"x-api-key": key, "content-type": "application/json"},
        )
        assert (
            r.status_code == 400
            and r.json()["type"] == "error"
            and r.json()["error"]["type"] == "invalid_request_error"
        )
        assert r.headers["request-id"].startswith("req_")
        r = await http.post(
            "/v1/messages", json={"model": "auto", "messages": []}, headers={"authorization": f"Bearer {key}"}
        )
        assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]


async def test_no_credit_is_402_and_revoked_key_is_401(gateway, client) -> None:
    broke = await gateway.mint("broke", usd=None)
    with pytest.raises(anthropic.APIStatusError) as info:
        await client(gateway, broke).messages.create(
            model="auto", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 402 and info.value.body["error"]["type"] == "billing_error"
    from gatewaytui.ops import tenants as tenant_ops

    key = await gateway.mint("acme", usd=1)
    key_id = next(k["id"] for k in gateway.rt.keyring._by_hash.values() if k["tenant"] == "acme")
    await tenant_ops.revoke_key(gateway.rt, key_id)
    with pytest.raises(anthropic.AuthenticationError):
        await client(gateway, key).messages.create(
            model="auto", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )


async def test_health_reports_accounts(gateway, client) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        r = await http.get("/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok"
    assert body["inflight"] == 0 and body["writes_pending"] == 0
    labels = {a["label"]: a["health"] for a in body["accounts"]}
    assert labels["anthropic-1"] == "healthy"
    assert "key-anthropic-1" not in r.text


async def test_foreign_thinking_rides_a_carrier_and_never_reaches_anthropic(
    gateway, upstream, client
) -> None:
    """Gemini reasoning shown to an Anthropic client comes back labelled, and is dropped before Anthropic."""
    key = await gateway.mint("acme", usd=1)
    c = client(gateway, key)
    first = await c.messages.create(
        model="gemini-2.5-flash",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think first"}],
    )
    thinking = [b for b in first.content if b.type == "thinking"]
    assert thinking and thinking[0].signature.startswith("gwtui1:gemini:")
    history = [
        {"role": "user", "content": "think first"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "and now?"},
    ]
    await c.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=history)
    sent = upstream.requests[-1].json
    assert sent["messages"][1]["content"] and all(
        b.get("type") != "thinking" for b in sent["messages"][1]["content"]
    )
