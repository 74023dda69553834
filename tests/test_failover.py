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


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_credentials_disable_the_account(
    make_gateway: Any, upstream: Any, sdk: Any, status: int
) -> None:
    gw = await make_gateway(accounts=two_accounts(upstream.base_url))
    key = await gw.mint()
    upstream.fail_key("key-a", status=status)
    msg = await sdk.anthropic(gw, key).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
    )
    assert msg.content[0].text
    a = await account(gw, "a")
    assert not a.enabled and a.cause == "auth" and str(status) in (a.disabled_reason or "")
    upstream.clear_faults()
    await sdk.anthropic(gw, key).messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT)
    assert keys_seen(upstream) == ["key-a", "key-b", "key-b"]  # stays out until the operator acts


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


async def test_connection_error_and_timeout_fail_over(make_gateway: Any, upstream: Any, sdk: Any) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nothing listens here: connection refused
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        accounts = [
            {
                "label": "dead",
                "provider": "anthropic",
                "base_url": f"http://127.0.0.1:{dead_port}",
                "api_key": "k1",
                "priority": 20,
            },
            {
                "label": "silent",
                "provider": "anthropic",
                "base_url": f"http://127.0.0.1:{silent.getsockname()[1]}",
                "api_key": "k2",
                "priority": 10,
            },
            {"label": "good", "provider": "anthropic", "base_url": upstream.base_url, "api_key": "key-good"},
        ]
        gw = await make_gateway(accounts=accounts, server={"first_byte_timeout": 0.5})
        key = await gw.mint()
        msg = await sdk.anthropic(gw, key).messages.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
        )
        assert msg.content[0].text
        assert (await account(gw, "dead")).cause == "connection"
        assert (await account(gw, "silent")).cause == "timeout"
        assert keys_seen(upstream) == ["key-good"]
    finally:
        silent.close()


async def test_failover_stops_at_the_total_deadline(make_gateway: Any, sdk: Any) -> None:
    silent = socket.socket()  # every account answers nothing
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    base = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        accounts = [
            {
                "label": f"slow{i}",
                "provider": "anthropic",
                "base_url": base,
                "api_key": f"k{i}",
                "priority": 9 - i,
            }
            for i in range(4)
        ]
        gw = await make_gateway(
            accounts=accounts, server={"first_byte_timeout": 0.4, "failover_deadline": 0.6}
        )
        with pytest.raises(anthropic.APIStatusError) as info:
            await sdk.anthropic(gw, await gw.mint()).messages.create(
                model="claude-sonnet-4-5", max_tokens=50, messages=PROMPT
            )
        assert info.value.status_code == 503 and "retry-after" in info.value.response.headers
        causes = [gw.rt.pool.find(f"slow{i}").cause for i in range(4)]
        assert causes[:2] == ["timeout", "timeout"] and causes[3] is None  # the deadline ran out first
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
