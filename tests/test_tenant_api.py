"""The tenant API, keys and their limits, through the running gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import GatewayHandle

from gatewaytui.store import keys as key_store


@pytest.fixture
async def http(gateway: GatewayHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        yield h


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def assert_error(r: httpx.Response, status: int, text: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["type"], str) and isinstance(err["message"], str)
    assert text in err["message"], err["message"]
    return err


async def chat(
    gw: GatewayHandle, key: str, path: str = "/v1/messages", text: str = "hi [usage in=10 out=5]"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:
        return await h.post(
            path,
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": text}],
            },
        )


# ---------------------------------------------------------------------- authentication


async def test_any_key_header_authenticates(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    key = await gateway.mint("acme", usd=3)
    for headers in (bearer(key), {"x-api-key": key}, {"x-goog-api-key": key}):
        r = await http.get("/tenant/credits", headers=headers)
        assert r.status_code == 200 and r.json()["balance_micro"] == 3_000_000
    assert_error(await http.get("/tenant/credits"), 401, "missing API key")
    assert_error(await http.get("/tenant/credits", headers=bearer("gw-nope")), 401, "invalid API key")


# ---------------------------------------------------------------------- keys


async def test_keys_are_minted_listed_and_revoked(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    key = await gateway.mint("acme", usd=1)
    r = await http.post("/tenant/keys", headers=bearer(key), json={"label": "ci", "rpm": 30})
    assert r.status_code == 201
    created = r.json()
    secret, info = created["secret"], created["key"]
    assert (
        secret.startswith("gw-")
        and info["prefix"] == secret[:10]
        and info["label"] == "ci"
        and info["rpm"] == 30
    )
    assert info["kind"] == "payg" and info["state"] == "active" and "hash" not in info
    stored = key_store.get(gateway.rt.readers.get(), info["id"])
    assert (
        stored is not None
        and secret not in str(stored.values())
        and stored["hash"] == key_store.hash_key(secret)
    )

    listed = (await http.get("/tenant/keys", headers=bearer(secret))).json()["data"]
    assert {k["id"] for k in listed} == {info["id"], gateway.rt.keyring.authenticate(key)["id"]}
    assert [k["current"] for k in listed if k["id"] == info["id"]] == [True]
    assert all("secret" not in k and "hash" not in k for k in listed)
    assert (await http.get(f"/tenant/keys/{info['id']}", headers=bearer(key))).json()["label"] == "ci"

    assert (await chat(gateway, secret)).status_code == 200
    r = await http.delete(f"/tenant/keys/{info['id']}", headers=bearer(key))
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert_error(await chat(gateway, secret), 401, "revoked")
    assert (await http.delete(f"/tenant/keys/{info['id']}", headers=bearer(key))).json()["state"] == "revoked"


async def test_tenants_are_isolated(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    a = await gateway.mint("alpha", usd=1)
    b = await gateway.mint("beta", usd=1)
    b_key_id = gateway.rt.keyring.authenticate(b)["id"]
    r = await chat(gateway, b)
    b_request = r.headers["request-id"]
    assert_error(await http.get(f"/tenant/keys/{b_key_id}", headers=bearer(a)), 404)
    assert_error(await http.delete(f"/tenant/keys/{b_key_id}", headers=bearer(a)), 404)
    assert_error(await http.get("/tenant/keys/key_doesnotexist", headers=bearer(a)), 404)
    assert_error(await http.get(f"/v1/usage/{b_request}", headers=bearer(a)), 404)
    assert_error(await http.get("/v1/usage/req_unknown", headers=bearer(a)), 404)
    assert b_key_id not in {
        k["id"] for k in (await http.get("/tenant/keys", headers=bearer(a))).json()["data"]
    }
    assert (await chat(gateway, b)).status_code == 200  # b's key was not revoked by a
    assert (await http.get(f"/v1/usage/{b_request}", headers={"x-api-key": b})).status_code == 200


async def test_subscription_key_cannot_mint_payg(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    sub = await gateway.mint("acme", usd=None, kind="subscription")
    assert_error(
        await http.post("/tenant/keys", headers=bearer(sub), json={"kind": "payg"}), 403, "subscription key"
    )
    r = await http.post("/tenant/keys", headers=bearer(sub), json={})
    assert r.status_code == 201 and r.json()["key"]["kind"] == "subscription"
    payg = await gateway.mint("acme", usd=None)
    r = await http.post("/tenant/keys", headers=bearer(payg), json={"kind": "subscription"})
    assert r.status_code == 201 and r.json()["key"]["kind"] == "subscription"


async def test_minted_keys_never_exceed_their_creator(
    gateway: GatewayHandle, http: httpx.AsyncClient
) -> None:
    limited = await gateway.mint("acme", usd=1, models=["claude-haiku-4-5"], rpm=10)
    r = await http.post("/tenant/keys", headers=bearer(limited), json={"label": "child"})
    child = r.json()["key"]
    assert child["models"] == ["claude-haiku-4-5"] and child["rpm"] == 10
    assert_error(
        await http.post("/tenant/keys", headers=bearer(limited), json={"models": ["claude-sonnet-4-5"]}), 403
    )
    assert_error(await http.post("/tenant/keys", headers=bearer(limited), json={"rpm": 11}), 403)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"kind": "gold"}, "kind"),
        ({"rpm": 0}, "rpm"),
        ({"rpm": True}, "rpm"),
        ({"label": 5}, "label"),
        ({"models": ["no-such-model"]}, "models"),
        ({"models": "claude-sonnet-4-5"}, "models"),
        ({"expires_at": 1}, "expires_at"),
        ({"expires_in_days": -1}, "expires_in_days"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_key_requests_are_400(
    gateway: GatewayHandle, http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    key = await gateway.mint("acme", usd=None)
    err = assert_error(await http.post("/tenant/keys", headers=bearer(key), json=body), 400)
    assert param in err["message"]
    assert_error(
        await http.post("/tenant/keys", headers=bearer(key), content=b"{nope"), 400, "not valid JSON"
    )


async def test_key_expiry_and_model_allow_list(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    key = await gateway.mint("acme", usd=1, models=["claude-haiku-4-5"])
    assert_error(await chat(gateway, key), 403, "may not use model")
    r = await http.post("/tenant/keys", headers=bearer(key), json={"expires_in_days": 1})
    assert r.json()["key"]["expires_at"] == pytest.approx(time.time() + 86400, abs=60)
    expired = await gateway.mint("acme", usd=None, expires_at=time.time() - 1)
    assert_error(await chat(gateway, expired), 401, "expired")
    assert_error(await http.get("/tenant/keys", headers=bearer(expired)), 401, "expired")


async def test_rpm_limit_is_429_with_retry_after_in_the_clients_protocol(gateway: GatewayHandle) -> None:
    key = await gateway.mint("acme", usd=1, rpm=2)
    assert (await chat(gateway, key)).status_code == 200
    assert (await chat(gateway, key)).status_code == 200
    r = await chat(gateway, key)
    assert (
        r.status_code == 429
        and r.json()["type"] == "error"
        and r.json()["error"]["type"] == "rate_limit_error"
    )
    assert 1 <= int(r.headers["retry-after"]) <= 60
    with pytest.raises(openai.RateLimitError) as exc:
        await openai.AsyncOpenAI(
            api_key=key, base_url=gateway.base_url + "/v1", max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.response.headers["retry-after"]


async def test_revoking_never_cuts_a_running_stream(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    key = await gateway.mint("acme", usd=1)
    admin_key = await gateway.mint("acme", usd=None)
    key_id = gateway.rt.keyring.authenticate(key)["id"]
    c = anthropic.AsyncAnthropic(api_key=key, base_url=gateway.base_url, max_retries=0)
    texts = []
    async with c.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "go on [chunks:12] [pace:10]"}],
    ) as s:
        async for text in s.text_stream:
            texts.append(text)
            if len(texts) == 2:
                r = await http.delete(f"/tenant/keys/{key_id}", headers=bearer(admin_key))
                assert r.json()["state"] == "revoked"
        final = await s.get_final_message()
    assert len(texts) == 12 and final.stop_reason == "end_turn"
    assert_error(await chat(gateway, key), 401, "revoked")


# ---------------------------------------------------------------------- usage and credit


async def test_request_usage_has_every_field(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    key = await gateway.mint("acme", usd=1)
    r = await chat(
        gateway, key, text="x [usage in=100 out=20 cache_read=50 cache_write=30 cache_write_1h=10]"
    )
    u = (await http.get(f"/v1/usage/{r.headers['request-id']}", headers={"x-api-key": key})).json()
    assert (u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"]) == (100, 20, 50)
    assert u["cache_creation"] == {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 10}
    assert u["cache_creation_input_tokens"] == 40
    assert (
        u["cost_micro"] == 788 and u["model"] == "claude-sonnet-4-5"
    )  # 300 + 112.5 + 60 + 15 + 300, rounded up
    assert set(u["line_items"]) == {"input", "cache_write_5m", "cache_write_1h", "cache_read", "output"}
    assert u["line_items"]["cache_write_5m"]["cost_micro"] == "112.5"


async def test_usage_by_day_has_one_entry_per_utc_day(
    gateway: GatewayHandle, http: httpx.AsyncClient
) -> None:
    key = await gateway.mint("acme", usd=1)
    other = await gateway.mint("other", usd=1)
    for _ in range(2):
        await chat(
            gateway, key, text="x [usage in=100 out=20 cache_read=50 cache_write=30 cache_write_1h=10]"
        )
    await chat(gateway, other)
    today = datetime.now(UTC).date()
    start = today - timedelta(days=2)
    r = await http.get(
        "/tenant/usage", params={"from": start.isoformat(), "to": today.isoformat()}, headers=bearer(key)
    )
    data = r.json()["data"]
    assert [d["date"] for d in data] == [(start + timedelta(days=i)).isoformat() for i in range(3)]
    assert data[0]["requests"] == data[1]["requests"] == 0 and data[0]["cost_micro"] == 0
    last = data[2]
    assert (last["requests"], last["input_tokens"], last["output_tokens"], last["cache_read_tokens"]) == (
        2,
        200,
        40,
        100,
    )
    assert (last["cache_write_5m_tokens"], last["cache_write_1h_tokens"], last["cost_micro"]) == (
        60,
        20,
        2 * 788,
    )
    assert r.json()["total"]["cost_micro"] == 2 * 788
    for params, text in [
        ({"from": "2025-13-01"}, "not a calendar date"),
        ({"from": "yesterday"}, "YYYY-MM-DD"),
        ({"from": "2025-02-02", "to": "2025-02-01"}, "after"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "days"),
    ]:
        assert_error(await http.get("/tenant/usage", params=params, headers=bearer(key)), 400, text)


async def test_credits_show_balance_and_holds_in_flight(
    gateway: GatewayHandle, http: httpx.AsyncClient, upstream: Any
) -> None:
    key = await gateway.mint("acme", usd=2)
    # in flight long enough for a busy machine to read it twice
    task = asyncio.create_task(chat(gateway, key, text="slow [sleep:3000] [usage in=10 out=5]"))
    for _ in range(500):
        if gateway.rt.traffic.inflight:
            break
        await asyncio.sleep(0.01)
    mid = (await http.get("/tenant/credits", headers=bearer(key))).json()
    assert mid["balance_micro"] == 2_000_000 and len(mid["holds"]) == 1
    assert mid["held_micro"] == mid["holds"][0]["amount_micro"] > 0
    assert mid["available_micro"] == 2_000_000 - mid["held_micro"]
    request_id = mid["holds"][0]["request_id"]
    live = (await http.get(f"/v1/usage/{request_id}", headers=bearer(key))).json()
    assert live["status"] == "in_progress"
    await task
    after = (await http.get("/tenant/credits", headers=bearer(key))).json()
    assert after == {**after, "balance_micro": 2_000_000 - (10 * 3 + 5 * 15), "held_micro": 0, "holds": []}


async def test_subscription_keys_only_on_tool_routes(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    sub = await gateway.mint("acme", usd=1, kind="subscription")
    assert_error(await chat(gateway, sub, "/v1/messages"), 403, "tool routes")
    with pytest.raises(openai.PermissionDeniedError):
        await openai.AsyncOpenAI(
            api_key=sub, base_url=gateway.base_url + "/v1", max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    payg = await gateway.mint("acme", usd=None)
    for route in (
        "/v1/messages",
        "/claudecode/v1/messages",
        "/cline/v1/messages",
        "/cursor/v1/messages",
        "/roocode/v1/messages",
    ):
        assert (await chat(gateway, payg, route)).status_code == 200, route


async def test_errors_are_openai_style_json(gateway: GatewayHandle, http: httpx.AsyncClient) -> None:
    key = await gateway.mint("acme", usd=None)
    r = await http.get("/tenant/nothing-here", headers=bearer(key))
    assert r.status_code == 404 and set(r.json()["error"]) >= {"type", "message"}
    r = await http.put("/tenant/keys", headers=bearer(key))
    assert r.status_code == 405 and r.json()["error"]["type"]
    long_id = "k" * 5000
    assert_error(await http.get(f"/tenant/keys/{long_id}", headers=bearer(key)), 404)
