"""Failover before the first byte, never after it, and the 503 when no account can serve.

A real gateway under Hypercorn, the fake upstream, and the official SDKs as clients (no SDK retries).
Account "a" has the higher priority, so it is always tried first; "b" is the healthy spare.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

PROMPT = [{"role": "user", "content": "Hello there"}]


def two_accounts(base_url: str, **extra_a: Any) -> list[dict[str, Any]]:
    return [
        {
            "label": "a",
            "provider": "anthropic",
            "base_url": base_url,
            "api_key": "key-a",
            "priority": 10,
            **extra_a,
        },
        {"label": "b", "provider": "anthropic", "base_url": base_url, "api_key": "key-b"},
    ]


def keys_seen(upstream: Any) -> list[str | None]:
    return [r.headers.get("x-api-key") for r in upstream.requests if r.path == "/v1/messages"]


class Clients:
    """Official SDK clients (no retries of their own), closed when the test ends."""

    def __init__(self) -> None:
        self.made: list[Any] = []

    def anthropic(self, gw: Any, key: str) -> anthropic.AsyncAnthropic:
        self.made.append(anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key, max_retries=0))
        return self.made[-1]

    def openai(self, gw: Any, key: str) -> openai.AsyncOpenAI:
        self.made.append(openai.AsyncOpenAI(base_url=gw.base_url + "/v1", api_key=key, max_retries=0))
        return self.made[-1]


@pytest.fixture
async def sdk() -> Any:
    clients = Clients()
    yield clients
    for c in clients.made:
        await (c.aclose() if isinstance(c, httpx.AsyncClient) else c.close())


async def account(gw: Any, label: str) -> Any:
    acc = gw.rt.pool.find(label)
    assert acc is not None
    return acc


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize(
    "status,cause",
    [(429, "rate_limit"), (529, "overloaded"), (500, "server"), (503, "overloaded")],
)
async def test_fails_over_to_the_next_account(
    make_gateway: Any, upstream: Any, sdk: Any, status: int, cause: str, stream: bool
) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("key-a", status=status, retry_after=30 if status == 429 else None)
    sub = gw.rt.bus.subscribe()
    c = sdk.anthropic(gw, key)
    if stream:
        async with c.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT) as s:
            msg = await s.get_final_message()
    else:
        msg = await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)
    assert msg.content[0].text.startswith("Hello from the fake upstream!")
    assert keys_seen(upstream) == ["key-a", "key-b"]
    a = await account(gw, "a")
    assert a.cause == cause and a.health() == "cooldown"
    assert a.since is not None and a.cooldown_until > a.since
    assert a.last_error and str(status) in a.last_error
    if status == 429:  # retry-after honoured
        assert a.cooldown_until - a.since == pytest.approx(30, abs=1)
    events = [e for e in sub.drain() if e.topic == "account.cooldown"]
    assert events and events[0].data["label"] == "a" and events[0].data["cause"] == cause
    await gw.flush()
    row = await gw.rt.read(
        lambda c: c.execute("SELECT attempts, account_id, status FROM requests").fetchone()
    )
    assert (row["attempts"], row["account_id"], row["status"]) == (2, (await account(gw, "b")).id, "ok")


@pytest.mark.parametrize(
    "status,body",
    [
        (401, None),  # the fake's envelope: authentication_error
        (
            403,
            {
                "type": "error",
                "error": {"type": "permission_error", "message": "This organization has been disabled."},
            },
        ),
    ],
    ids=["authentication_error", "organization_disabled"],
)
async def test_rejected_credentials_disable_the_account(
    make_gateway: Any, upstream: Any, sdk: Any, status: int, body: Any
) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("key-a", status=status, body=body)
    msg = await sdk.anthropic(gw, key).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
    )
    assert msg.content[0].text
    a = await account(gw, "a")
    assert not a.enabled and a.cause == "auth" and str(status) in (a.disabled_reason or "")
    upstream.clear_faults()
    await sdk.anthropic(gw, key).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)
    assert keys_seen(upstream) == ["key-a", "key-b", "key-b"]  # stays out until the operator acts


GEMINI_FILE_DENIED = {
    "error": {
        "code": 403,
        "message": "You do not have permission to access the File abc123 or it may not exist.",
        "status": "PERMISSION_DENIED",
    }
}


def gemini_accounts(base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "label": f"g{i}",
            "provider": "gemini",
            "base_url": base_url,
            "api_key": f"key-g{i}",
            "priority": 9 - i,
        }
        for i in range(3)
    ]


async def gemini_call(gw: Any, key: str) -> httpx.Response:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [{"fileData": {"fileUri": "https://x/files/abc123", "mimeType": "text/plain"}}],
            }
        ]
    }
    async with httpx.AsyncClient(base_url=gw.base_url, headers={"x-goog-api-key": key}) as http:
        return await http.post("/v1beta/models/gemini-2.5-flash:generateContent", json=body)


def gemini_keys_seen(upstream: Any) -> list[str | None]:
    return [r.headers.get("x-goog-api-key") for r in upstream.requests if "generateContent" in r.path]


async def test_a_file_the_key_cannot_read_touches_no_account(make_gateway: Any, upstream: Any) -> None:
    """Gemini's 403 for a referenced file is the request's: the client gets it, every account stays up."""
    gw = await make_gateway(accounts=gemini_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("*", status=403, body=GEMINI_FILE_DENIED)
    for _ in range(3):  # one tenant, again and again
        r = await gemini_call(gw, key)
        assert r.status_code == 403
        assert r.json()["error"]["status"] == "PERMISSION_DENIED"
        assert "permission to access the File" in r.json()["error"]["message"]
    assert gemini_keys_seen(upstream) == ["key-g0"] * 3  # never failed over across the accounts
    for i in range(3):
        g = await account(gw, f"g{i}")
        assert g.enabled and g.health() == "healthy" and g.cause is None
    upstream.clear_faults()
    assert (await gemini_call(gw, key)).status_code == 200


async def test_refusals_from_different_tenants_in_a_row_disable_the_account(
    make_gateway: Any, upstream: Any
) -> None:
    """A 403 without an invalid-key reason is the account's once several tenants meet it in a row."""
    gw = await make_gateway(accounts=gemini_accounts(upstream.base_url))
    upstream.fail_key("key-g0", status=403, body=GEMINI_FILE_DENIED)
    keys = [await gw.mint(f"tenant{i}") for i in range(3)]
    for key in keys[:2]:
        assert (await gemini_call(gw, key)).status_code == 403
        assert (await gemini_call(gw, key)).status_code == 403  # a repeat by one tenant counts once
    assert (await account(gw, "g0")).enabled
    assert (await gemini_call(gw, keys[2])).status_code == 403
    g0 = await account(gw, "g0")
    assert not g0.enabled and g0.cause == "auth" and "several tenants" in (g0.disabled_reason or "")
    assert (await gemini_call(gw, keys[0])).status_code == 200  # the others serve
    assert gemini_keys_seen(upstream)[-1] == "key-g1"


async def test_a_success_between_refusals_resets_the_count(make_gateway: Any, upstream: Any) -> None:
    gw = await make_gateway(accounts=gemini_accounts(upstream.base_url))
    keys = [await gw.mint(f"tenant{i}") for i in range(3)]
    for key in keys:
        upstream.fail_key("key-g0", status=403, body=GEMINI_FILE_DENIED, times=1)
        assert (await gemini_call(gw, key)).status_code == 403
        assert (await gemini_call(gw, key)).status_code == 200
    assert (await account(gw, "g0")).enabled


async def test_an_invalid_gemini_key_disables_at_once(make_gateway: Any, upstream: Any) -> None:
    gw = await make_gateway(accounts=gemini_accounts(upstream.base_url))
    invalid = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    upstream.fail_key("key-g0", status=400, body=invalid)
    assert (await gemini_call(gw, await gw.mint())).status_code == 200
    g0 = await account(gw, "g0")
    assert not g0.enabled and g0.cause == "auth"
    assert gemini_keys_seen(upstream) == ["key-g0", "key-g1"]


async def test_other_protocols_fail_over_too(make_gateway: Any, upstream: Any, sdk: Any) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("key-a", status=529)
    oc = sdk.openai(gw, key)
    chat = await oc.chat.completions.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)  # type: ignore[arg-type]
    assert chat.choices[0].message.content
    assert keys_seen(upstream) == ["key-a", "key-b"]
    (await account(gw, "a")).cooldown_until = 0  # let "a" be tried first again
    upstream.fail_key("key-a", status=500)
    chunks = [
        c
        async for c in await oc.chat.completions.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT, stream=True
        )
    ]  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert keys_seen(upstream)[2:] == ["key-a", "key-b"]


async def test_connection_error_fails_over(make_gateway: Any, upstream: Any, sdk: Any) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nothing listens here: connection refused
    accounts = [
        {
            "label": "dead",
            "provider": "anthropic",
            "base_url": f"http://127.0.0.1:{dead_port}",
            "api_key": "k1",
            "priority": 20,
        },
        {"label": "good", "provider": "anthropic", "base_url": upstream.base_url, "api_key": "key-good"},
    ]
    gw = await make_gateway(accounts=accounts)
    key = await gw.mint()
    msg = await sdk.anthropic(gw, key).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
    )
    assert msg.content[0].text
    assert (await account(gw, "dead")).cause == "connection"
    assert keys_seen(upstream) == ["key-good"]


def silent_accounts(port: int) -> list[dict[str, Any]]:
    return [
        {
            "label": f"slow{i}",
            "provider": "anthropic",
            "base_url": f"http://127.0.0.1:{port}",
            "api_key": f"k{i}",
            "priority": 9 - i,
        }
        for i in range(2)
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_a_slow_request_past_the_deadline_cools_no_account(
    make_gateway: Any, sdk: Any, stream: bool
) -> None:
    """One request that outlasts the gateway's deadline gets a timeout; it is not tried on every account
    and rests none (it may be the request that is slow)."""
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        gw = await make_gateway(
            accounts=silent_accounts(silent.getsockname()[1]),
            server={"first_byte_timeout": 0.4, "failover_deadline": 5},
        )
        c = sdk.anthropic(gw, await gw.mint())
        for _ in range(3):  # the same tenant, again and again
            if stream:  # the stream is not committed before the first byte: the same 504
                with pytest.raises(anthropic.APIStatusError, match="did not answer in time") as info:
                    async with c.messages.stream(
                        model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
                    ) as s:
                        await s.get_final_message()
                assert info.value.status_code == 504
            else:
                with pytest.raises(anthropic.APIStatusError) as info:
                    await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)
                assert info.value.status_code == 504
                assert info.value.response.json()["error"]["type"] == "timeout_error"
        for label in ("slow0", "slow1"):
            acc = await account(gw, label)
            assert acc.cause is None and acc.health() == "healthy"
        await gw.flush()
        rows = await gw.rt.read(lambda c: c.execute("SELECT attempts FROM requests").fetchall())
        assert [r["attempts"] for r in rows] == [1, 1, 1]  # no failover across the accounts
    finally:
        silent.close()


async def test_timeouts_from_different_tenants_in_a_row_cool_the_account(make_gateway: Any, sdk: Any) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        gw = await make_gateway(
            accounts=silent_accounts(silent.getsockname()[1]),
            server={"first_byte_timeout": 0.3, "failover_deadline": 5},
        )
        keys = [await gw.mint(f"tenant{i}") for i in range(3)]
        for i, key in enumerate(keys):
            with pytest.raises(anthropic.APIStatusError) as info:
                await sdk.anthropic(gw, key).messages.create(
                    model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
                )
            assert info.value.status_code == 504
            assert (await account(gw, "slow0")).cause == (None if i < 2 else "timeout")
        slow0 = await account(gw, "slow0")
        assert slow0.health() == "cooldown" and slow0.cooldown_until > time.time()
        assert (await account(gw, "slow1")).cause is None  # the next request goes there
    finally:
        silent.close()


@pytest.mark.parametrize("directive", ["[cut:8]", "[cut:8 abort]"])
async def test_nothing_is_retried_after_the_first_byte(
    make_gateway: Any, upstream: Any, sdk: Any, directive: str
) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    prompt = [{"role": "user", "content": f"Tell me a long story please {directive}"}]
    received: list[str] = []
    with pytest.raises(anthropic.APIError) as info:
        async with sdk.anthropic(gw, key).messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=prompt
        ) as s:
            async for text in s.text_stream:
                received.append(text)
    assert received, "content reached the client before the upstream died"
    assert "upstream" in str(info.value)
    assert keys_seen(upstream) == ["key-a"]  # one upstream request: no retry after the first byte


async def test_mid_stream_stall_ends_with_an_in_band_error(
    make_gateway: Any, upstream: Any, sdk: Any
) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url), server={"stream_idle_timeout": 0.5})
    key = await gw.mint()
    oc = sdk.openai(gw, key)
    stream = await oc.chat.completions.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        stream=True,
        messages=[{"role": "user", "content": "Tell me a long story please [stall:8]"}],
    )
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got)
    assert "stalled" in str(info.value)
    assert keys_seen(upstream) == ["key-a"]


async def test_no_healthy_account_is_a_503_with_retry_after(
    make_gateway: Any, upstream: Any, sdk: Any
) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("key-a", status=429, retry_after=40)
    upstream.fail_key("key-b", status=429, retry_after=20)
    http = httpx.AsyncClient(
        base_url=gw.base_url, headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
    )
    sdk.made.append(http)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": PROMPT}
    for expected_calls in (2, 2):  # the second request finds both cooling and asks no upstream at all
        r = await http.post("/v1/messages", json=body)
        assert r.status_code == 503
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "api_error"
        assert "no healthy upstream account" in r.json()["error"]["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 20  # from the earliest recovery (account b)
        assert len(keys_seen(upstream)) == expected_calls
    # the same outage in the OpenAI shape, and through the SDK
    oc = sdk.openai(gw, key)
    with pytest.raises(openai.APIStatusError) as info:
        await oc.chat.completions.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 20
    assert "no healthy upstream account" in info.value.response.json()["error"]["message"]
    # a stream gets the same 503 before any byte
    with pytest.raises(anthropic.APIStatusError) as ainfo:
        async with sdk.anthropic(gw, key).messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
        ) as s:
            await s.get_final_message()
    assert ainfo.value.status_code == 503


async def test_model_not_found_cools_only_that_model(make_gateway: Any, upstream: Any, sdk: Any) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key(
        "key-a",
        status=404,
        times=1,
        body={"type": "error", "error": {"type": "not_found_error", "message": "model: claude-sonnet-4-5"}},
    )
    c = sdk.anthropic(gw, key)
    await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)
    a = await account(gw, "a")
    assert "claude-sonnet-4-5" in a.model_cooldowns and a.health() == "healthy" and a.cause is None
    await c.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=PROMPT
    )  # "a" still serves haiku
    await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)  # but not sonnet
    assert keys_seen(upstream) == ["key-a", "key-b", "key-a", "key-b"]


async def test_every_account_lacking_the_model_is_a_404(make_gateway: Any, upstream: Any, sdk: Any) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    missing = {"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}}
    upstream.fail_key("*", status=404, body=missing)
    with pytest.raises(anthropic.NotFoundError):
        await sdk.anthropic(gw, key).messages.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
        )


async def test_quota_wall_is_told_from_a_brief_throttle(make_gateway: Any, upstream: Any, sdk: Any) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    reset = int(time.time()) + 3 * 3600
    upstream.fail_key(
        "key-a",
        status=429,
        times=1,
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-5h-utilization": "1.0",
            "anthropic-ratelimit-unified-5h-reset": str(reset),
        },
    )
    c = sdk.anthropic(gw, key)
    await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)
    a = await account(gw, "a")
    assert a.cause == "quota"
    assert a.cooldown_until == pytest.approx(reset, abs=2)  # rests until the 5-hour window resets
    assert a.quota and a.quota["unified_5h_utilization"] == 1.0
    gw.rt.pool.reset(a)  # "a" serves again; "b" goes first and meets a brief throttle
    b = await account(gw, "b")
    b.priority = 20
    upstream.fail_key("key-b", status=429, retry_after=7, times=1)
    await c.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=PROMPT)
    assert b.cause == "rate_limit"
    assert b.cooldown_until - b.since == pytest.approx(7, abs=1)


async def test_sticky_sessions_keep_their_account_and_fail_over(
    make_gateway: Any, upstream: Any, sdk: Any
) -> None:
    accounts = [
        {"label": f"s{i}", "provider": "anthropic", "base_url": upstream.base_url, "api_key": f"key-s{i}"}
        for i in range(4)
    ]
    gw = await make_gateway(accounts=accounts, routing={"strategy": "sticky"})
    key = await gw.mint()
    c = sdk.anthropic(gw, key)
    meta = {"user_id": "user_abc_account_1_session_42"}
    history = [{"role": "user", "content": "Plan the refactor"}]
    for turn in range(3):
        await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=history, metadata=meta)
        history += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": f"turn {turn}"}]
    seen = keys_seen(upstream)
    assert len(set(seen)) == 1  # one conversation, one account: its prompt cache stays warm
    home = seen[0]
    upstream.fail_key(home, status=529)
    await c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=history, metadata=meta)
    assert keys_seen(upstream)[-2] == home and keys_seen(upstream)[-1] != home  # sticky fails over


async def test_concurrent_sub_agents_spread_across_accounts(
    make_gateway: Any, upstream: Any, sdk: Any
) -> None:
    accounts = [
        {"label": f"s{i}", "provider": "anthropic", "base_url": upstream.base_url, "api_key": f"key-s{i}"}
        for i in range(3)
    ]
    gw = await make_gateway(accounts=accounts, routing={"strategy": "sticky"})
    key = await gw.mint()
    c = sdk.anthropic(gw, key)
    meta = {"user_id": "user_abc_account_1_session_77"}
    # three sub-agents of one session, in flight together (each answer is held back by [sleep])
    prompts = [
        [{"role": "user", "content": f"Sub-task {i}: inspect the module [sleep:1000]"}] for i in range(3)
    ]
    await asyncio.gather(
        *(
            c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=p, metadata=meta)
            for p in prompts
        )
    )
    assert sorted(keys_seen(upstream)) == ["key-s0", "key-s1", "key-s2"]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("protocol", ["openai_responses", "gemini"])
async def test_failover_for_every_protocol(
    make_gateway: Any, upstream: Any, sdk: Any, protocol: str, stream: bool
) -> None:
    from gatewaytui.server.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        pytest.skip(f"{protocol} is not served by this build")
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("key-a", status=529)
    http = httpx.AsyncClient(
        base_url=gw.base_url, headers={"authorization": f"Bearer {key}", "x-goog-api-key": key}
    )
    sdk.made.append(http)
    if protocol == "openai_responses":
        r = await http.post(
            "/v1/responses",
            json={
                "model": "claude-sonnet-4-5",
                "input": "Hello there",
                "max_output_tokens": 50,
                "stream": stream,
            },
        )
    else:
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        r = await http.post(
            f"/v1beta/models/claude-sonnet-4-5:{verb}",
            json={"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]},
        )
    assert r.status_code == 200, r.text
    assert "Hello" in r.text  # the answer's first word, whatever the framing
    assert keys_seen(upstream) == ["key-a", "key-b"]
