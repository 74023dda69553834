"""The console's HTTP side against a real gateway: /admin/snapshot, the /admin/events stream, console actions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from gatewaytui.codec import SSEDecoder
from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.store import keys as key_store

TOKEN = "admin-token-for-tests"
TOKEN_ENV = "GATEWAYTUI_TEST_ADMIN_TOKEN"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def gw(make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return await make_gateway(server={"admin_token_env": TOKEN_ENV})


@pytest.fixture
async def client(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as c:
        yield c


async def frames(response: httpx.Response) -> AsyncIterator[tuple[str | None, Any]]:
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event, data in decoder.feed(chunk):
            yield event, orjson.loads(data)


async def until_topic(
    stream: AsyncIterator[tuple[str | None, Any]], topic: str
) -> tuple[list[str | None], Any]:
    seen = []
    async with asyncio.timeout(10):  # a hang guard, not an assertion about speed
        async for event, data in stream:
            seen.append(event)
            if event == topic:
                return seen, data
    raise AssertionError(f"stream ended before {topic}; saw {seen}")


# ------------------------------------------------------------------ auth


def test_the_event_endpoints_never_load_the_console() -> None:
    code = "import sys, gatewaytui.server.events; print('textual' in sys.modules, 'gatewaytui.tui' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("path", ["/admin/snapshot", "/admin/events", "/admin/console/requests/x"])
async def test_every_console_route_needs_the_admin_token(client: httpx.AsyncClient, path: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"x-admin-token": "wrong"}):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication"
    r = await client.post("/admin/console/create_tenant", json={"name": "x"})
    assert r.status_code == 401


async def test_admin_api_is_off_without_a_configured_token(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAYTUI_NO_SUCH_TOKEN", raising=False)
    gw = await make_gateway(server={"admin_token_env": "GATEWAYTUI_NO_SUCH_TOKEN"})
    async with httpx.AsyncClient(base_url=gw.base_url) as c:
        r = await c.get("/admin/snapshot", headers={"authorization": "Bearer anything"})
    assert r.status_code == 403
    assert r.json()["error"] == {"type": "permission", "message": r.json()["error"]["message"]}
    assert "GATEWAYTUI_NO_SUCH_TOKEN" in r.json()["error"]["message"]


# ------------------------------------------------------------------ snapshot and request detail


async def test_snapshot_shows_tenants_accounts_routing_and_traffic_without_secrets(
    gw: Any, client: httpx.AsyncClient
) -> None:
    secret = await gw.mint("acme", usd=3.0, label="ci")
    r = await client.post(
        "/v1/messages",
        headers={"x-api-key": secret, "anthropic-version": "2023-06-01"},
        json={
            "model": "auto",
            "max_tokens": 30,
            "messages": [{"role": "user", "content": "hi [usage in=50 out=7]"}],
        },
    )
    assert r.status_code == 200
    await gw.flush()
    r = await client.get("/admin/snapshot", headers={"x-admin-token": TOKEN})
    assert r.status_code == 200
    snap = r.json()
    assert set(snap) >= {"at", "traffic", "accounts", "tenants", "routing", "stats", "console"}
    acme = next(t for t in snap["tenants"] if t["name"] == "acme")
    assert acme["keys"][0]["label"] == "ci" and acme["spend_today_micro"] > 0
    assert acme["balance_micro"] == 3_000_000 - acme["spend_today_micro"]
    assert {a["label"] for a in snap["accounts"]} >= {"anthropic-1", "openai-1"}
    assert snap["routing"]["default_model"] == "claude-sonnet-4-5"
    assert {"alias": "auto", "target": "claude-sonnet-4-5", "source": "config"} in snap["routing"]["aliases"]
    recent = snap["traffic"]["recent"][0]
    assert recent["tenant"] == "acme" and recent["output_tokens"] == 7 and recent["state"] == "done"
    assert "headers" not in recent  # per-request detail is fetched on demand
    assert snap["stats"]["total"] == 1 and snap["stats"]["spend_today_micro"] == acme["spend_today_micro"]
    text = r.text
    for needle in (secret, "key-anthropic-1", '"hash":', '"api_key":', '"secret":'):
        assert needle not in text

    detail = (await client.get(f"/admin/console/requests/{recent['id']}", headers=AUTH)).json()
    assert detail["headers"]["x-api-key"] == "[redacted]" and detail["line_items"]["output"]["tokens"] == 7
    missing = await client.get("/admin/console/requests/req_nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"


# ------------------------------------------------------------------ events


async def test_events_arrive_after_ready_and_can_be_filtered(gw: Any, client: httpx.AsyncClient) -> None:
    baseline = len(gw.rt.bus._subs)
    async with client.stream("GET", "/admin/events", headers=AUTH) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response)
        seen, _ = await until_topic(stream, "ready")
        assert seen == ["ready"]
        balance = await tenant_ops.credit(gw.rt, "acme", 1_500_000, note="wire", create=True)
        _, event = await until_topic(stream, "tenant.balance")
        assert event["topic"] == "tenant.balance" and event["data"]["balance_micro"] == balance
        assert isinstance(event["at"], float)

    async with client.stream("GET", "/admin/events?topics=key.,account.", headers=AUTH) as response:
        stream = frames(response)
        await until_topic(stream, "ready")
        await tenant_ops.credit(gw.rt, "acme", 1_000_000)  # filtered out
        await tenant_ops.mint_key(gw.rt, "acme", label="filtered")
        seen, event = await until_topic(stream, "key.created")
        assert seen == ["key.created"] and event["data"]["label"] == "filtered"

    for _ in range(500):  # the server notices the disconnects and drops the subscriptions
        if len(gw.rt.bus._subs) == baseline:
            break
        await asyncio.sleep(0.01)
    assert len(gw.rt.bus._subs) == baseline


# ------------------------------------------------------------------ actions


async def test_console_actions_call_the_admin_functions(gw: Any, client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/admin/console/mint_key", headers=AUTH, json={"tenant": "globex", "label": "ops", "create": True}
    )
    assert r.status_code == 200
    result = r.json()["result"]
    key_id, secret = result["key"]["id"], result["secret"]
    assert gw.rt.keyring.authenticate(secret)["id"] == key_id and result["key"]["tenant"] == "globex"

    r = await client.post(
        "/admin/console/credit", headers=AUTH, json={"tenant": "globex", "amount_micro": 2_000_001}
    )
    assert r.json() == {"result": {"balance_micro": 2_000_001}}

    r = await client.post("/admin/console/revoke_key", headers=AUTH, json={"key_id": key_id})
    assert r.json() == {"result": {"revoked": True}}
    await gw.flush()
    assert key_store.get(gw.rt.readers.get(), key_id)["revoked_at"] is not None

    r = await client.post(
        "/admin/console/set_account_enabled", headers=AUTH, json={"ref": "openai-1", "enabled": False}
    )
    assert r.status_code == 200 and r.json()["result"]["enabled"] is False
    assert gw.rt.pool.find("openai-1").enabled is False

    r = await client.post("/admin/console/set_default_model", headers=AUTH, json={"name": "gpt-4o"})
    assert r.status_code == 200 and gw.rt.catalog.default_model == "gpt-4o"

    r = await client.post(
        "/admin/console/set_cap",
        headers=AUTH,
        json={"tenant": "globex", "cap_micro": 5_000, "model": "gpt-4o"},
    )
    assert r.status_code == 200 and r.json()["result"]["model_caps"] == '{"gpt-4o": 5000}'
    r = await client.post(
        "/admin/console/set_cap", headers=AUTH, json={"tenant": "globex", "cap_micro": 7_000}
    )
    assert r.json()["result"]["per_call_cap_micro"] == 7_000
    tid = r.json()["result"]["id"]
    assert gw.rt.plans.get(tid).per_call_cap_micro == 7_000


@pytest.mark.parametrize(
    ("name", "body", "status", "kind", "says"),
    [
        ("nope", {}, 404, "not_found", "no console action"),
        ("credit", {"tenant": "a"}, 400, "invalid_request", "'amount_micro' is required"),
        ("credit", {"tenant": "a", "amount_micro": 1.5}, 400, "invalid_request", "must be int"),
        ("credit", {"tenant": "a", "amount_micro": True}, 400, "invalid_request", "must be int"),
        ("credit", {"tenant": "a", "amount_micro": -5}, 400, "invalid_request", "positive"),
        ("credit", {"tenant": "", "amount_micro": 5}, 400, "invalid_request", "tenant name"),
        ("create_tenant", {"name": "x", "extra": 1}, 400, "invalid_request", "unknown argument 'extra'"),
        ("create_tenant", {"name": "x", "rt": 1}, 400, "invalid_request", "unknown argument 'rt'"),
        ("update_account", {"ref": "anthropic-1", "weight": 0}, 400, "invalid_request", "at least 1"),
        ("create_tenant", [1, 2], 400, "invalid_request", "JSON object"),
        ("mint_key", {"tenant": "a", "kind": "gold"}, 400, "invalid_request", "kind"),
        ("reset_account", {"ref": "ghost"}, 404, "not_found", "no account"),
        ("set_default_model", {"name": "gpt-9"}, 404, "not_found", "no model"),
        ("set_alias", {"alias": "x"}, 400, "invalid_request", "'target' is required"),
        ("add_account", {"provider": "anthropic"}, 400, "invalid_request", "api_key"),
        ("set_cap", {"tenant": "a", "cap_micro": 0}, 400, "invalid_request", "positive"),
        ("set_cap", {"tenant": "a", "cap_micro": 5, "model": "gpt-9"}, 404, "not_found", "not available"),
        ("set_tier", {"tenant": "a", "tier": "gold"}, 404, "not_found", "no tier"),
    ],
)
async def test_bad_actions_are_json_errors_never_500(
    client: httpx.AsyncClient, name: str, body: Any, status: int, kind: str, says: str
) -> None:
    r = await client.post(f"/admin/console/{name}", headers=AUTH, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == kind and says in err["message"]


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/admin/console/create_tenant", headers={**AUTH, "content-type": "application/json"}, content=b"{nope"
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request"
