"""Opt-in request/response bodies (redacted, capped) and the console's history query, against a real gateway."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from gatewaytui.store import bodies
from gatewaytui.store import requests as request_store
from gatewaytui.tui.screens.request import replay_curl

TOKEN = "admin-token-for-tests"
TOKEN_ENV = "GATEWAYTUI_TEST_ADMIN_TOKEN"


async def send(gw: Any, key: str, *, stream: bool, text: str = "Hello there") -> httpx.Response:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [
            {"role": "user", "content": "call the tool"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"api_key": "plainsecret"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"},
                    {"type": "text", "text": f"{text} gw-abcdefghijklmnopqrstuvwxyz"},
                ],
            },
        ],
        "tools": [
            {"name": "t", "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}}}
        ],
    }
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as c:
        return await c.post(
            "/v1/messages", json=body, headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
        )


async def stored(gw: Any, request_id: str) -> dict[str, Any] | None:
    await gw.flush()
    return await gw.rt.read(lambda c: bodies.get(c, request_id))


async def test_bodies_are_not_kept_unless_the_config_asks(gateway: Any) -> None:
    key = await gateway.mint("acme", usd=1)
    response = await send(gateway, key, stream=False)
    assert response.status_code == 200
    assert await stored(gateway, response.headers["request-id"]) is None


@pytest.mark.parametrize("stream", [False, True])
async def test_kept_bodies_are_redacted_and_replayable(make_gateway: Any, stream: bool) -> None:
    gw = await make_gateway(console={"store_bodies": True})
    key = await gw.mint("acme", usd=1)
    response = await send(gw, key, stream=stream)
    assert response.status_code == 200
    row = await stored(gw, response.headers["request-id"])
    assert row is not None
    request, answer = row["request"], row["response"]
    assert key not in request and key not in answer
    assert "plainsecret" not in request  # under a secret-looking key
    assert "gw-abcdefghijklmnopqrstuvwxyz" not in request  # key-shaped text anywhere
    sent = orjson.loads(request)
    assert sent["messages"][1]["content"][0]["input"] == {"api_key": "[redacted]"}
    assert sent["tools"][0]["input_schema"]["properties"]["key"] == {"type": "string"}  # schemas stay
    assert sent["max_tokens"] == 64  # "tokens" names are not secrets
    if stream:
        assert "event: message_stop" in answer and answer.startswith("event: message_start")
    else:
        assert orjson.loads(answer) == response.json()  # what the client got, indented for reading
    assert row["response_bytes"] == len(response.content)
    curl = replay_curl(gw.base_url, {"protocol": "anthropic", "route": "v1", "stream": stream}, request)
    assert curl.startswith(f"curl {gw.base_url}/v1/messages")
    assert '-H "x-api-key: $GATEWAYTUI_KEY"' in curl and key not in curl


async def test_bodies_are_capped_with_a_marker(make_gateway: Any) -> None:
    gw = await make_gateway(console={"store_bodies": True, "body_limit_kb": 1})
    key = await gw.mint("acme", usd=1)
    response = await send(gw, key, stream=False, text="word " * 600)
    assert response.status_code == 200
    row = await stored(gw, response.headers["request-id"])
    assert row is not None
    head, marker = row["request"].split("\n…[", 1)
    assert len(head.encode()) <= 1024
    assert marker.endswith("more bytes not kept]")
    assert row["request_bytes"] > 3000


def test_body_limit_must_be_positive() -> None:
    from gatewaytui import config as configmod

    with pytest.raises(configmod.ConfigError, match="body_limit_kb"):
        configmod.parse({"console": {"body_limit_kb": 0}})


async def test_history_filters_sorts_and_reaches_past_the_memory_window(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gw = await make_gateway(server={"admin_token_env": TOKEN_ENV})
    acme, globex = await gw.mint("acme", usd=1), await gw.mint("globex", usd=1)
    ids = []
    for i in range(60):  # more than the 50 requests the gateway keeps in memory
        ids.append((await send(gw, acme if i % 3 else globex, stream=False)).headers["request-id"])
    await gw.flush()
    rows = await gw.rt.read(lambda c: request_store.history(c, limit=100))
    assert len(rows) == 60 and rows[0]["id"] == ids[-1]  # newest first
    assert {r["tenant"] for r in rows} == {"acme", "globex"}
    mine = await gw.rt.read(lambda c: request_store.history(c, filters={"tenant": "glob"}))
    assert len(mine) == 20 and {r["tenant"] for r in mine} == {"globex"}
    assert await gw.rt.read(lambda c: request_store.history(c, text=ids[5])) != []
    assert await gw.rt.read(lambda c: request_store.history(c, filters={"status": "error"})) == []
    oldest = await gw.rt.read(lambda c: request_store.history(c, sort="started", descending=False, limit=1))
    assert oldest[0]["id"] == ids[0]
    with pytest.raises(ValueError, match="unknown sort"):
        await gw.rt.read(lambda c: request_store.history(c, sort="id; DROP TABLE requests"))
    # the same query over the admin API (what ``gatewaytui attach`` reads)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as c:
        auth = {"authorization": f"Bearer {TOKEN}"}
        got = await c.get("/admin/console/history", params={"tenant": "globex", "limit": 5}, headers=auth)
        assert got.status_code == 200
        assert [r["tenant"] for r in got.json()["requests"]] == ["globex"] * 5
        bad = await c.get("/admin/console/history", params={"sort": "nope"}, headers=auth)
        assert bad.status_code == 400 and "unknown sort" in bad.json()["error"]["message"]
        denied = await c.get("/admin/console/history")
        assert denied.status_code == 401
