"""OAuth accounts: PKCE against a fake authorization server on loopback, the callback listener and the
gateway's own /auth/callback, encrypted storage, refresh before expiry (once under concurrency), and what
happens when an upstream or the token endpoint rejects the credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anthropic
import httpx
import pytest
from aiohttp import web

from gatewaytui.oauth import pkce_pair

ADMIN_ENV = "GATEWAYTUI_TEST_OAUTH_ADMIN"
TOKEN = "admin-token-for-oauth-tests"
PROMPT = [{"role": "user", "content": "Hello there"}]


class FakeAuthServer:
    """Authorization endpoint (redirects with a code) and token endpoint (checks PKCE, refreshes)."""

    def __init__(self) -> None:
        self.challenges: dict[str, tuple[str, str]] = {}
        self.token_requests: list[dict[str, str]] = []
        self.refreshes = 0
        self.refresh_seen = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse_refresh = False
        self.base_url = ""

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["response_type"] == "code" and q["client_id"] == "test-client"
        assert q["code_challenge_method"] == "S256" and q["scope"] == "user:inference org:create_api_key"
        code = f"code-{len(self.challenges) + 1}"
        self.challenges[code] = (q["code_challenge"], q["redirect_uri"])
        raise web.HTTPFound(f"{q['redirect_uri']}?code={code}&state={q['state']}")

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if form.get("grant_type") == "authorization_code":
            challenge, redirect_uri = self.challenges.pop(str(form.get("code")), ("", ""))
            verifier = str(form.get("code_verifier", ""))
            expected = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if not challenge or expected != challenge or form.get("redirect_uri") != redirect_uri:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return web.json_response(
                {
                    "access_token": "at-1",
                    "refresh_token": "rt-1",
                    "expires_in": 3600,
                    "token_type": "Bearer",
                    "account": {"email_address": "op@example.com"},
                }
            )
        if form.get("grant_type") == "refresh_token":
            self.refreshes += 1
            self.refresh_seen.set()
            await self.gate.wait()
            if self.refuse_refresh or form.get("client_id") != "test-client":
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "refresh token revoked"}, status=400
                )
            n = self.refreshes
            return web.json_response(
                {"access_token": f"at-r{n}", "refresh_token": f"rt-r{n}", "expires_in": 3600}
            )
        return web.json_response({"error": "unsupported_grant_type"}, status=400)


@pytest.fixture
async def auth_server() -> AsyncIterator[FakeAuthServer]:
    fake = FakeAuthServer()
    app = web.Application()
    app.router.add_get("/authorize", fake.authorize)
    app.router.add_post("/token", fake.token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    yield fake
    fake.gate.set()
    await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def oauth_gateway(make_gateway: Any, auth_server: FakeAuthServer, monkeypatch: Any) -> Any:
    monkeypatch.setenv(ADMIN_ENV, TOKEN)

    async def start(port: int) -> Any:
        return await make_gateway(
            accounts=[],
            server={"admin_token_env": ADMIN_ENV},
            oauth={
                "anthropic": {
                    "authorize_url": auth_server.base_url + "/authorize",
                    "token_url": auth_server.base_url + "/token",
                    "client_id": "test-client",
                    "scopes": ["user:inference", "org:create_api_key"],
                    "redirect_port": port,
                }
            },
        )

    return start


def admin(gw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.base_url, headers={"authorization": f"Bearer {TOKEN}"})


async def add_oauth_account(gw: Any, upstream: Any, **extra: Any) -> tuple[dict[str, Any], httpx.Response]:
    """Start the flow through the admin API, then play the browser: authorize, follow the redirect."""
    async with admin(gw) as http:
        r = await http.post(
            "/accounts/add",
            json={"provider": "anthropic", "oauth": True, "base_url": upstream.base_url, **extra},
        )
        assert r.status_code == 200, r.text
        started = r.json()
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(started["authorize_url"])
    return started, page


async def ask(gw: Any, key: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key, max_retries=0) as c:
        msg = await c.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=PROMPT)
        return msg.content[0].text  # type: ignore[union-attr]


def bearer_tokens(upstream: Any) -> list[str]:
    return [r.headers.get("authorization", "") for r in upstream.requests if r.path == "/v1/messages"]


def test_pkce_pair_is_rfc7636_s256() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert (
        challenge
        == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


async def test_pkce_flow_through_the_local_callback_listener(
    oauth_gateway: Any, upstream: Any, auth_server: FakeAuthServer
) -> None:
    port = free_port()
    gw = await oauth_gateway(port)
    sub = gw.rt.bus.subscribe()
    started, page = await add_oauth_account(gw, upstream)
    assert started["callback_port"] == port and started["state"]
    assert started["redirect_uri"] == f"http://localhost:{port}/auth/callback"
    query = parse_qs(urlsplit(started["authorize_url"]).query)
    assert query["state"] == [started["state"]] and query["code_challenge_method"] == ["S256"]
    assert page.status_code == 200 and "Account added" in page.text
    exchange = auth_server.token_requests[0]
    assert (
        exchange["grant_type"] == "authorization_code" and exchange["redirect_uri"] == started["redirect_uri"]
    )

    async with admin(gw) as http:
        listing = await http.get("/accounts")
        status = await http.get(f"/accounts/oauth/{started['state']}")
    accounts = listing.json()["accounts"]
    assert [(a["label"], a["auth"], a["health"]) for a in accounts] == [
        ("anthropic-op@example.com", "oauth", "healthy")
    ]
    assert "at-1" not in listing.text and "rt-1" not in listing.text
    assert status.json()["status"] == "completed" and status.json()["account_id"] == accounts[0]["id"]
    stored = await gw.rt.read(lambda c: c.execute("SELECT auth, oauth FROM accounts").fetchone())
    assert stored["auth"] == "oauth" and stored["oauth"].startswith("enc1:") and "at-1" not in stored["oauth"]
    topics = [e.topic for e in sub.drain()]
    assert topics.index("oauth.started") < topics.index("account.added") < topics.index("oauth.completed")

    with pytest.raises(httpx.ConnectError):  # the listener closes once no sign-in is pending
        async with httpx.AsyncClient() as c:
            await c.get(f"http://127.0.0.1:{port}/auth/callback")

    assert (await ask(gw, await gw.mint())).startswith("Hello from the fake upstream!")
    sent = [r for r in upstream.requests if r.path == "/v1/messages"][-1]
    assert (
        sent.headers["authorization"] == "Bearer at-1"
        and "oauth-2025-04-20" in sent.headers["anthropic-beta"]
    )
    assert "x-api-key" not in sent.headers


async def test_callback_on_the_main_app(
    oauth_gateway: Any, upstream: Any, auth_server: FakeAuthServer
) -> None:
    gw = await oauth_gateway(0)  # 0: an ephemeral callback port
    async with admin(gw) as http:
        started = (
            await http.post("/accounts/add", json={"provider": "anthropic", "oauth": True, "label": "max-1"})
        ).json()
        assert started["callback_port"] > 0
        async with httpx.AsyncClient() as browser:
            redirect = await browser.get(started["authorize_url"])
        assert redirect.status_code == 302
        params = parse_qs(urlsplit(redirect.headers["location"]).query)
        callback = f"/auth/callback?code={params['code'][0]}&state={params['state'][0]}"
        async with httpx.AsyncClient(
            base_url=gw.base_url
        ) as browser:  # no admin token: the state is the proof
            done = await browser.get(callback)
            again = await browser.get(callback)  # a reload of the page changes nothing
            forged = await browser.get("/auth/callback?code=x&state=not-a-state")
        assert done.status_code == 200 and "max-1" in done.text
        assert again.status_code == 200 and [a.label for a in gw.rt.pool] == ["max-1"]
        assert forged.status_code == 400 and "unknown or expired" in forged.text
        # the provider can refuse: the flow records it
        second = (await http.post("/accounts/add", json={"provider": "anthropic", "oauth": True})).json()
        async with httpx.AsyncClient(base_url=gw.base_url) as browser:
            denied = await browser.get(f"/auth/callback?error=access_denied&state={second['state']}")
        assert denied.status_code == 400
        assert (await http.get(f"/accounts/oauth/{second['state']}")).json()["status"] == "failed"
        # providers that show "code#state" for the operator to paste
        third = (
            await http.post("/accounts/add", json={"provider": "anthropic", "oauth": True, "label": "pasted"})
        ).json()
        async with httpx.AsyncClient() as browser:
            shown = parse_qs(urlsplit((await browser.get(third["authorize_url"])).headers["location"]).query)
        pasted = await http.post(
            "/accounts/oauth/complete", json={"code": f"{shown['code'][0]}#{shown['state'][0]}"}
        )
        assert pasted.status_code == 201 and pasted.json()["account"]["label"] == "pasted"
        # bad requests are 400s, not crashes
        assert (
            await http.post("/accounts/add", json={"provider": "gemini", "oauth": True})
        ).status_code == 400
        assert (
            await http.post("/accounts/add", json={"provider": "anthropic", "oauth": True, "label": "max-1"})
        ).status_code == 400
        bad = await http.post("/accounts/oauth/complete", json={"code": "nope", "state": "nope"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request"
        assert (await http.get("/accounts/oauth/nope")).status_code == 404
    acc = gw.rt.pool.find("max-1")
    assert acc is not None and acc.base_url == "https://api.anthropic.com"


async def test_refresh_happens_once_under_concurrency(
    oauth_gateway: Any, upstream: Any, auth_server: FakeAuthServer
) -> None:
    gw = await oauth_gateway(0)
    await add_oauth_account(gw, upstream)
    (acc,) = gw.rt.pool.accounts.values()
    sub = gw.rt.bus.subscribe()
    acc.oauth["expires_at"] = time.time() + 30  # inside the refresh margin
    auth_server.gate.clear()  # hold the token endpoint until every caller is waiting
    callers = [asyncio.create_task(gw.rt.oauth.ensure_fresh(acc)) for _ in range(8)]
    await auth_server.refresh_seen.wait()
    auth_server.gate.set()
    await asyncio.gather(*callers)
    assert auth_server.refreshes == 1
    assert acc.oauth["access_token"] == "at-r1" and acc.oauth["refresh_token"] == "rt-r1"
    assert acc.oauth["expires_at"] > time.time() + 3000
    assert [e.topic for e in sub.drain()].count("account.refreshed") == 1
    stored = await gw.rt.read(lambda c: c.execute("SELECT oauth FROM accounts").fetchone()[0])
    assert "at-r1" in gw.rt.vault.decrypt(stored)

    # through the gateway: concurrent requests with an expiring token share one refresh
    acc.oauth["expires_at"] = time.time() + 30
    key = await gw.mint()
    answers = await asyncio.gather(*(ask(gw, key) for _ in range(5)))
    assert all(a.startswith("Hello") for a in answers)
    assert auth_server.refreshes == 2
    assert set(bearer_tokens(upstream)[-5:]) == {"Bearer at-r2"}


async def test_rejected_token_is_refreshed_and_the_account_comes_back(
    oauth_gateway: Any, upstream: Any, auth_server: FakeAuthServer
) -> None:
    gw = await oauth_gateway(0)
    await add_oauth_account(gw, upstream)
    (acc,) = gw.rt.pool.accounts.values()
    key = await gw.mint()
    sub = gw.rt.bus.subscribe()
    upstream.fail_key("at-1", status=401, times=1)
    with pytest.raises(anthropic.APIStatusError) as info:  # the only account: 503 while it refreshes
        await ask(gw, key)
    assert info.value.status_code == 503
    while True:  # the refresh runs in the background; wait for its outcome on the bus
        event = await asyncio.wait_for(sub.get(), 10)
        if event.topic == "account.enabled":
            break
    assert acc.enabled and acc.cause is None and acc.oauth["access_token"] == "at-r1"
    assert (await ask(gw, key)).startswith("Hello")
    assert bearer_tokens(upstream) == ["Bearer at-1", "Bearer at-r1"]


async def test_refused_refresh_disables_until_reauthorized(
    oauth_gateway: Any, upstream: Any, auth_server: FakeAuthServer
) -> None:
    gw = await oauth_gateway(0)
    await add_oauth_account(gw, upstream, label="max")
    acc = gw.rt.pool.find("max")
    assert acc is not None
    key = await gw.mint()
    auth_server.refuse_refresh = True
    acc.oauth["expires_at"] = time.time() - 5  # expired: it cannot be used without a refresh
    with pytest.raises(anthropic.APIStatusError) as info:
        await ask(gw, key)
    assert info.value.status_code == 503
    assert not acc.enabled and acc.cause == "auth" and "refresh" in (acc.disabled_reason or "")
    assert bearer_tokens(upstream) == []  # the expired token was never sent
    # the operator signs in again for the same account: new tokens, back in rotation
    started, page = await add_oauth_account(gw, upstream, account="max")
    assert page.status_code == 200, page.text
    assert acc.enabled and acc.oauth["access_token"] == "at-1" and len(gw.rt.pool.accounts) == 1
    assert (await ask(gw, key)).startswith("Hello")
