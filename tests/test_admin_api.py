"""The admin HTTP API: the token, accounts, routing settings, Claude Code's settings.json, and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from gatewaytui.ops import tenants as tenant_ops

ADMIN_ENV = "GATEWAYTUI_TEST_ADMIN_TOKEN"
TOKEN = "admin-token-for-the-tests"
PROMPT = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
async def gw(make_gateway: Any, monkeypatch: Any, tmp_path: Path) -> Any:
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    return await make_gateway(
        server={"admin_token_env": ADMIN_ENV}, claude_home=str(tmp_path / "claude-home")
    )


@pytest.fixture
async def http(gw: Any) -> Any:
    async with httpx.AsyncClient(
        base_url=gw.base_url, headers={"authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"} and {"type", "message"} <= set(body["error"]), body
    return body["error"]


async def ask(gw: Any, key: str, model: str = "claude-sonnet-4-5") -> None:
    async with anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key, max_retries=0) as c:
        await c.messages.create(model=model, max_tokens=20, messages=PROMPT)


async def test_the_admin_token_is_required(gw: Any, monkeypatch: Any) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url) as anon:
        r = await anon.get("/accounts")
        assert r.status_code == 401 and error_of(r)["type"] == "authentication"
        r = await anon.get("/accounts", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await anon.post("/accounts/add", json={"provider": "anthropic", "api_key": "x"})
        assert r.status_code == 401 and not gw.rt.pool.find("anthropic-2")
        tenant_key = await gw.mint()
        assert (
            await anon.get("/accounts", headers={"authorization": f"Bearer {tenant_key}"})
        ).status_code == 401
        monkeypatch.delenv(ADMIN_ENV)
        r = await anon.get("/accounts", headers={"authorization": f"Bearer {TOKEN}"})
        assert (
            r.status_code == 403 and "disabled" in error_of(r)["message"]
        )  # no token configured: fail closed


async def test_listing_and_status_show_no_secrets(gw: Any, http: httpx.AsyncClient, upstream: Any) -> None:
    r = await http.get("/accounts")
    assert r.status_code == 200
    labels = sorted(a["label"] for a in r.json()["accounts"])
    assert labels == ["anthropic-1", "compat-1", "gemini-1", "openai-1", "openrouter-1"]
    assert "key-anthropic-1" not in r.text
    upstream.fail_key("key-anthropic-1", status=429, retry_after=50, times=1)
    with pytest.raises(anthropic.APIStatusError):
        await ask(gw, await gw.mint())
    status = (await http.get("/accounts/status")).json()
    assert status["total"] == 5 and status["cooldown"] == 1 and status["healthy"] == 4
    assert 1 <= status["next_recovery_s"] <= 50
    cooling = next(a for a in status["accounts"] if a["label"] == "anthropic-1")
    assert cooling["cause"] == "rate_limit" and cooling["last_error"].startswith("429")
    one = (await http.get("/accounts/anthropic-1")).json()["account"]
    assert one["cooldown"]["cause"] == "rate_limit"
    health = (await http.get("/health")).json()
    assert any(a["label"] == "anthropic-1" and a["health"] == "cooldown" for a in health["accounts"])
    assert "key-anthropic-1" not in json.dumps(health)


async def test_add_update_switch_reset_enable_disable_remove(
    gw: Any, http: httpx.AsyncClient, upstream: Any
) -> None:
    sub = gw.rt.bus.subscribe()
    r = await http.post(
        "/accounts/add",
        json={
            "provider": "anthropic",
            "label": "spare",
            "api_key": "key-spare",
            "base_url": upstream.base_url,
            "weight": 2,
            "rpm": 100,
        },
    )
    assert r.status_code == 201, r.text
    spare = r.json()["account"]
    assert spare["weight"] == 2 and spare["rpm"] == 100 and "key-spare" not in r.text
    r = await http.patch(
        "/accounts/spare", json={"priority": 5, "models": ["claude-sonnet-4-5"], "rpm": None}
    )
    assert r.json()["account"]["priority"] == 5 and r.json()["account"]["rpm"] is None
    key = await gw.mint()
    await ask(gw, key)
    assert upstream.requests[-1].headers["x-api-key"] == "key-spare"  # the higher priority wins

    r = await http.post("/accounts/switch", json={"account": "anthropic-1"})
    assert r.json()["account"]["preferred"] is True
    await ask(gw, key)
    assert upstream.requests[-1].headers["x-api-key"] == "key-anthropic-1"  # preferred beats priority
    assert (await http.post("/accounts/switch", json={"provider": "anthropic"})).json()["account"] is None
    await ask(gw, key)
    assert upstream.requests[-1].headers["x-api-key"] == "key-spare"

    upstream.fail_key("key-spare", status=529, times=1)
    await ask(gw, key)
    assert (await http.get("/accounts/spare")).json()["account"]["health"] == "cooldown"
    r = await http.post(f"/accounts/{spare['id']}/reset")
    assert r.json()["account"]["health"] == "healthy"
    r = await http.post("/accounts/spare/disable")
    assert r.json()["account"]["enabled"] is False and r.json()["account"]["disabled_reason"]
    await ask(gw, key)
    assert upstream.requests[-1].headers["x-api-key"] == "key-anthropic-1"
    assert (await http.post("/accounts/spare/enable")).json()["account"]["health"] == "healthy"
    assert (await http.delete("/accounts/spare")).status_code == 200
    assert (await http.get("/accounts/spare")).status_code == 404
    topics = {e.topic for e in sub.drain()}
    assert {
        "account.added",
        "account.updated",
        "account.preferred",
        "account.cooldown",
        "account.cooldown_end",
        "account.disabled",
        "account.enabled",
        "account.removed",
    } <= topics


async def test_bad_ids_and_bodies(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("post", "/accounts/nope/reset"),
        ("post", "/accounts/nope/enable"),
        ("post", "/accounts/nope/disable"),
        ("post", "/accounts/nope/remove"),
        ("delete", "/accounts/nope"),
        ("get", "/accounts/nope"),
        ("patch", "/accounts/nope"),
    ]:
        r = await http.request(method.upper(), path, json={})
        assert r.status_code == 404 and error_of(r)["type"] == "not_found", (method, path)
    assert (await http.post("/accounts/switch", json={"account": "nope"})).status_code == 404
    bad_bodies = [
        b"{not json",
        b"[1, 2]",
        json.dumps({"api_key": "x"}).encode(),
        json.dumps({"provider": "nope", "api_key": "x"}).encode(),
        json.dumps({"provider": "anthropic"}).encode(),
        json.dumps({"provider": "anthropic", "api_key": 5}).encode(),
        json.dumps({"provider": "anthropic", "api_key": "x", "weight": "heavy"}).encode(),
        json.dumps({"provider": "anthropic", "api_key": "x", "weight": 0}).encode(),
        json.dumps({"provider": "anthropic", "api_key": "x", "rpm": True}).encode(),
        json.dumps({"provider": "anthropic", "api_key": "x", "models": "claude"}).encode(),
        json.dumps({"provider": "anthropic", "api_key": "x", "base_url": "ftp://x"}).encode(),
        json.dumps({"provider": "anthropic", "api_key": "x", "label": "anthropic-1"}).encode(),
    ]
    for body in bad_bodies:
        r = await http.post("/accounts/add", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and error_of(r)["type"] == "invalid_request", body
    r = await http.patch("/accounts/anthropic-1", json={"secret": "x"})
    assert r.status_code == 400
    r = await http.get("/accounts/usage?hours=soon")
    assert r.status_code == 400
    assert (await http.post("/settings/routing", json={"strategy": "random"})).status_code == 400
    assert (await http.post("/settings/default-model", json={"model": "nope"})).status_code == 404
    assert (await http.post("/settings/haiku-model", json={"model": "kimi-k2"})).status_code == 400


async def test_models_quota_and_usage(gw: Any, http: httpx.AsyncClient, upstream: Any) -> None:
    await ask(gw, await gw.mint())
    models = {a["label"]: a for a in (await http.get("/accounts/models")).json()["accounts"]}
    assert {m["name"] for m in models["anthropic-1"]["models"]} == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    assert {m["name"] for m in models["openai-1"]["models"]} == {"gpt-4o", "gpt-5"}
    quota = {a["label"]: a["quota"] for a in (await http.get("/accounts/quota")).json()["accounts"]}
    assert (
        quota["anthropic-1"]["unified_5h_utilization"] >= 0 and quota["anthropic-1"]["requests_limit"] == 4000
    )
    assert quota["gemini-1"] is None
    upstream.set_quota("key-anthropic-1", five_hour=0.42, seven_day=0.07)
    before = len(upstream.requests)
    refreshed = (await http.get("/accounts/quota/all")).json()
    probe = next(p for p in refreshed["probes"] if p["label"] == "anthropic-1")
    assert probe["ok"] and probe["model"] == "claude-haiku-4-5"  # the cheapest model it serves
    fresh = next(a for a in refreshed["accounts"] if a["label"] == "anthropic-1")["quota"]
    assert fresh["unified_5h_utilization"] == 0.42 and fresh["unified_7d_utilization"] == 0.07
    probes = [r for r in upstream.requests[before:] if r.headers.get("x-api-key") == "key-anthropic-1"]
    assert len(probes) == 1 and probes[0].json["max_tokens"] == 1
    await gw.flush()
    usage = {a["label"]: a for a in (await http.get("/accounts/usage")).json()["accounts"]}
    assert usage["anthropic-1"]["requests"] == 1 and usage["anthropic-1"]["output_tokens"] > 0
    assert usage["anthropic-1"]["cost_micro"] > 0 and usage["gemini-1"]["requests"] == 0


async def test_routing_settings_persist(
    make_gateway: Any, monkeypatch: Any, tmp_path: Path, upstream: Any
) -> None:
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    db = str(tmp_path / "routing.db")
    gw = await make_gateway(server={"admin_token_env": ADMIN_ENV}, db=db)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=gw.base_url, headers=headers) as http:
        assert (await http.get("/settings/haiku-model")).json() == {"haikuKiloModel": ""}
        r = await http.post("/settings/haiku-model", json={"haikuKiloModel": "kimi-k2"})
        assert r.json() == {"haikuKiloModel": "kimi-k2"}
        assert (
            await http.post("/settings/haiku-model", json={"haikuKiloModel": "no-such-model"})
        ).status_code == 404
        r = await http.post(
            "/settings/routing",
            json={
                "strategy": "round-robin",
                "default_model": "gpt-4o",
                "aliases": {"fast": "claude-haiku-4-5", "auto": "claude-haiku-4-5"},
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["aliases"]["auto"] == "claude-haiku-4-5" and r.json()["strategy"] == "round-robin"
    key = await gw.mint()
    await ask(gw, key, "claude-3-5-haiku-latest")  # the haiku lane sends it to OpenRouter's Kimi
    assert upstream.requests[-1].path == "/api/v1/chat/completions"
    assert upstream.requests[-1].json["model"] == "moonshotai/kimi-k2"
    await ask(gw, key, "auto")
    assert upstream.requests[-1].json["model"] == "claude-haiku-4-5"
    await gw.flush()
    await gw.gateway.stop()

    again = await make_gateway(server={"admin_token_env": ADMIN_ENV}, db=db)
    async with httpx.AsyncClient(base_url=again.base_url, headers=headers) as http:
        assert (await http.get("/settings/haiku-model")).json() == {"haikuKiloModel": "kimi-k2"}
        routing = (await http.get("/settings/routing")).json()
        assert routing["strategy"] == "round-robin" and routing["default_model"] == "gpt-4o"
        assert routing["aliases"]["fast"] == "claude-haiku-4-5"
        assert (await http.post("/settings/haiku-model", json={"haikuKiloModel": ""})).json() == {
            "haikuKiloModel": ""
        }
    assert again.rt.pool.strategy == "round-robin"


async def test_claude_code_settings(gw: Any, http: httpx.AsyncClient, tmp_path: Path) -> None:
    home = tmp_path / "claude-home"
    home.mkdir()
    settings = home / "settings.json"
    original = {
        "theme": "dark",
        "permissions": {"allow": ["Bash(ls)"]},
        "env": {"FOO": "1", "ANTHROPIC_API_KEY": "sk-ant-own-key-123456"},
    }
    settings.write_text(json.dumps(original))
    view = (await http.get("/claude/config")).json()
    assert view["mode"] == "direct" and view["exists"] and "sk-ant-own-key-123456" not in json.dumps(view)

    key = await gw.mint("claude-user")
    r = await http.post("/claude/config/proxy", json={"key": key})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "proxy" and key not in r.text
    written = json.loads(settings.read_text())
    assert written["theme"] == "dark" and written["permissions"] == original["permissions"]
    assert written["env"] == {
        "FOO": "1",
        "ANTHROPIC_BASE_URL": gw.base_url + "/claudecode",
        "ANTHROPIC_AUTH_TOKEN": key,
    }
    await ask_with_settings(written["env"])

    r = await http.post("/claude/config/direct")
    assert r.json()["mode"] == "direct"
    assert json.loads(settings.read_text()) == original  # everything as it was before

    unknown = await http.post("/claude/config/proxy", json={"tenant": "new-tenant", "route": "v1"})
    assert (
        unknown.status_code == 404 and "no tenant named 'new-tenant'" in unknown.text
    )  # never made by a typo
    await tenant_ops.create_tenant(gw.rt, "new-tenant")
    minted = await http.post(
        "/claude/config/proxy", json={"tenant": "new-tenant", "route": "v1", "key_var": "ANTHROPIC_API_KEY"}
    )
    env = json.loads(settings.read_text())["env"]
    assert (
        minted.status_code == 200
        and env["ANTHROPIC_BASE_URL"] == gw.base_url
        and env["ANTHROPIC_API_KEY"].startswith("gw-")
    )
    assert (await http.post("/claude/config/proxy", json={"key": "not-a-gateway-key"})).status_code == 400
    assert (await http.post("/claude/config/proxy", json={})).status_code == 400
    assert (
        await http.post("/claude/config/proxy", json={"key": key, "route": "elsewhere"})
    ).status_code == 400
    settings.write_text("{broken")
    r = await http.post("/claude/config/proxy", json={"key": key})
    assert r.status_code == 409 and "not valid JSON" in error_of(r)["message"]
    assert settings.read_text() == "{broken"  # never overwritten


async def ask_with_settings(env: dict[str, str]) -> None:
    """Claude Code would now reach the gateway with these settings."""
    async with anthropic.AsyncAnthropic(
        base_url=env["ANTHROPIC_BASE_URL"],
        auth_token=env["ANTHROPIC_AUTH_TOKEN"],
        api_key=None,
        max_retries=0,
    ) as c:
        await c.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=PROMPT)


async def test_claude_settings_created_when_missing(gw: Any, http: httpx.AsyncClient, tmp_path: Path) -> None:
    key = await gw.mint()
    assert (await http.get("/claude/config")).json()["exists"] is False
    await http.post("/claude/config/proxy", json={"key": key})
    path = tmp_path / "claude-home" / "settings.json"
    assert path.stat().st_mode & 0o777 == 0o600
    await http.post("/claude/config/direct")
    assert json.loads(path.read_text()) == {}
