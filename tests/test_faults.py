"""Faults survived: client disconnects, upstreams that die, stall, lie with a 200, or take their time.

Every test ends with the same bookkeeping check (``assert_settled_once``): one usage row and exactly one
settlement or release per request, and every in-flight counter (requests, account slots, credit held,
upstream streams) back to zero. Waits poll a condition with a bound; nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from conftest import default_accounts, until

from gatewaytui import host
from gatewaytui.codec import SSEDecoder

WORDS = "one two three four five six seven eight nine ten"


@dataclass(frozen=True)
class Wire:
    """How a client of one protocol asks for a stream of one model, and how it reads the answer."""

    protocol: str
    path: str
    model: str
    body: Callable[[str, str], dict[str, Any]]


def _anthropic(model: str, text: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 300,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }


def _chat(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": text}]}


def _responses(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "input": text}


def _gemini(model: str, text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


GEMINI_SSE = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
WIRES = {
    # same protocol on both ends (passthrough)
    "anthropic": Wire("anthropic", "/v1/messages", "claude-sonnet-4-5", _anthropic),
    "openai_chat": Wire("openai_chat", "/v1/chat/completions", "gpt-4o", _chat),
    "openai_responses": Wire("openai_responses", "/v1/responses", "gpt-5", _responses),
    "gemini": Wire("gemini", GEMINI_SSE, "gemini-2.5-flash", _gemini),
    # translated
    "chat->anthropic": Wire("openai_chat", "/v1/chat/completions", "claude-sonnet-4-5", _chat),
    "anthropic->openai": Wire("anthropic", "/v1/messages", "gpt-4o", _anthropic),
    "responses->gemini": Wire("openai_responses", "/v1/responses", "gemini-2.5-flash", _responses),
    "gemini->anthropic": Wire(
        "gemini", GEMINI_SSE.replace("gemini-2.5-flash", "claude-sonnet-4-5"), "claude-sonnet-4-5", _gemini
    ),
}


@dataclass
class Seen:
    """What a client of the protocol made of the bytes it received."""

    text: str = ""
    errors: list[Any] = field(default_factory=list)
    completed: bool = False
    done_marker: bool = False  # OpenAI Chat's ``data: [DONE]``
    pings: int = 0  # keep-alives before the first content
    content_started: bool = False
    frames: int = 0


def read_stream(protocol: str, raw: bytes) -> Seen:
    seen = Seen()
    for line in raw.split(b"\n"):
        if line.startswith(b":") and not seen.content_started:
            seen.pings += 1  # an SSE comment
    decoder = SSEDecoder()
    frames = list(decoder.feed(raw)) + list(decoder.flush())
    for event, data in frames:
        seen.frames += 1
        if data == b"[DONE]":
            seen.done_marker = True
            continue
        obj = orjson.loads(data)
        if protocol == "anthropic":
            if event == "ping":
                seen.pings += not seen.content_started
            elif event == "error":
                seen.errors.append(obj)
            elif event == "content_block_delta" and obj["delta"].get("type") == "text_delta":
                seen.text += obj["delta"]["text"]
            elif event == "message_stop":
                seen.completed = True
            if event in ("message_start", "content_block_start"):
                seen.content_started = True
        elif protocol == "openai_chat":
            seen.content_started = True
            if "error" in obj:
                seen.errors.append(obj)
                continue
            for choice in obj.get("choices") or []:
                seen.text += (choice.get("delta") or {}).get("content") or ""
                seen.completed |= choice.get("finish_reason") is not None
        elif protocol == "openai_responses":
            seen.content_started = True
            kind = obj.get("type")
            if kind == "response.output_text.delta":
                seen.text += obj["delta"]
            elif kind in ("response.failed", "error"):
                seen.errors.append(obj)
            elif kind == "response.completed":
                seen.completed = True
        elif protocol == "gemini":
            seen.content_started = True
            if "error" in obj:
                seen.errors.append(obj)
                continue
            for cand in obj.get("candidates") or []:
                for part in (cand.get("content") or {}).get("parts") or []:
                    seen.text += part.get("text") or ""
                seen.completed |= "finishReason" in cand
    return seen


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "x-goog-api-key": key}


def quiet(gw: Any, upstream: Any) -> bool:
    rt = gw.rt
    return (
        not rt.traffic.inflight
        and all(a.inflight == 0 for a in rt.pool.accounts.values())
        and not any(rt.wallet.held.values())
        and not rt.wallet.holds
        and upstream.active_streams == 0
    )


async def assert_settled_once(gw: Any, upstream: Any) -> list[dict[str, Any]]:
    """Counters back to zero; each request has one row, one hold and exactly one settle or release."""
    assert await until(lambda: quiet(gw, upstream)), (
        f"still in flight: requests={list(gw.rt.traffic.inflight)} "
        f"accounts={ {a.label: a.inflight for a in gw.rt.pool.accounts.values() if a.inflight} } "
        f"held={dict(gw.rt.wallet.held)} upstream streams={upstream.active_streams}"
    )
    await gw.flush()

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, int]]:
        rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY started_at")]
        ledger = [dict(r) for r in conn.execute("SELECT * FROM ledger WHERE request_id IS NOT NULL")]
        sums = {
            r[0]: r[1]
            for r in conn.execute("SELECT tenant_id, SUM(amount_micro) FROM ledger GROUP BY tenant_id")
        }
        return rows, ledger, sums

    rows, ledger, sums = await gw.rt.read(read)
    for row in rows:
        mine = [e for e in ledger if e["request_id"] == row["id"]]
        kinds = sorted(e["kind"] for e in mine)
        assert kinds in (["hold", "settle"], ["hold", "release"]), (row["id"], kinds)
        assert sum(e["amount_micro"] for e in mine) == -row["cost_micro"]
        if kinds == ["hold", "release"]:
            assert row["cost_micro"] == 0
    assert {e["request_id"] for e in ledger} <= {r["id"] for r in rows}
    for tenant_id, total in sums.items():
        assert gw.rt.wallet.balance[tenant_id] == total
        assert gw.rt.wallet.available(tenant_id) == total
    return rows


def estimated_tokens(text: str) -> int:
    return (len(text) + 3) // 4


# ---------------------------------------------------------------- upstream dies or stalls mid-stream


@pytest.mark.parametrize(
    "fault", ["[cut:6 abort]", "[cut:6]", "[stall:6]"], ids=["dies", "ends-early", "stalls"]
)
@pytest.mark.parametrize("name", list(WIRES))
async def test_upstream_failure_mid_stream_is_an_error_event_billed_for_what_was_sent(
    make_gateway, upstream, name, fault
) -> None:
    wire = WIRES[name]
    gw = await make_gateway(server={"stream_idle_timeout": 0.3})
    key = await gw.mint()
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        full = await http.post(wire.path, json=wire.body(wire.model, WORDS), headers=auth(key))
        r = await http.post(wire.path, json=wire.body(wire.model, f"{WORDS} {fault}"), headers=auth(key))
    complete = read_stream(wire.protocol, full.content)
    assert complete.completed and not complete.errors
    assert r.status_code == 200
    seen = read_stream(wire.protocol, r.content)
    assert seen.text and complete.text.startswith(seen.text) and seen.text != complete.text
    assert len(seen.errors) == 1, r.text
    assert not seen.completed and not seen.done_marker
    if wire.protocol == "anthropic":
        assert b"event: error\n" in r.content and seen.errors[0]["type"] == "error"
    elif wire.protocol == "openai_responses":
        assert seen.errors[0]["type"] == "response.failed"
        created = [f for f in r.content.split(b"\n") if f == b"event: response.created"]
        assert len(created) == 1, (
            "the failure must end the response the client already has, not start another"
        )
    else:
        assert seen.errors[0]["error"]["message"]
    last = [f for f in SSEDecoder().feed(r.content)][-1]
    assert orjson.loads(last[1]) == seen.errors[0], "the error is the last thing sent"

    rows = await assert_settled_once(gw, upstream)
    ok, failed = rows
    assert ok["status"] == "ok" and failed["status"] == "error"
    assert ("stalled" in failed["error"]) if "stall" in fault else failed["error"]
    assert failed["output_tokens"] == max(1, estimated_tokens(seen.text)) or failed[
        "output_tokens"
    ] == estimated_tokens(seen.text)
    assert 0 < failed["cost_micro"] < ok["cost_micro"]


# ---------------------------------------------------------------- client goes away


PHASES = ["commit-window", "keepalive", "mid-stream"]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize(
    "name", ["anthropic", "openai_chat", "openai_responses", "gemini", "chat->anthropic"]
)
async def test_client_disconnect_cancels_upstream_and_settles_once(
    make_gateway, upstream, name, phase
) -> None:
    wire = WIRES[name]
    keepalive = 30.0 if phase == "commit-window" else 0.05
    gw = await make_gateway(server={"keepalive_interval": keepalive})
    key = await gw.mint()
    text = f"{WORDS} [stall:0]" if phase != "mid-stream" else f"{WORDS} [chunks:200] [pace:20]"
    got = bytearray()
    headers_seen = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
            async with http.stream(
                "POST", wire.path, json=wire.body(wire.model, text), headers=auth(key)
            ) as r:
                assert r.status_code == 200
                headers_seen.set()
                async for chunk in r.aiter_raw():
                    got.extend(chunk)

    task = asyncio.create_task(client())
    try:
        assert await until(lambda: upstream.active_streams == 1)
        if phase == "keepalive":
            await asyncio.wait_for(headers_seen.wait(), 5)
            if (
                wire.protocol != "gemini"
            ):  # Gemini clients get no keep-alives (its SDK parses only data frames)
                assert await until(lambda: read_stream(wire.protocol, bytes(got)).pings >= 2)
        elif phase == "mid-stream":
            assert await until(lambda: len(read_stream(wire.protocol, bytes(got)).text) > 20)
        assert upstream.cancelled_streams == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await until(lambda: upstream.cancelled_streams == 1), "the upstream request was not cancelled"
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "cancelled" and row["http_status"] == 499
    seen = read_stream(wire.protocol, bytes(got))
    if phase == "mid-stream":
        assert not seen.completed
        assert row["output_tokens"] >= estimated_tokens(seen.text) > 0  # at least what the client was sent
        assert row["cost_micro"] > 0
    else:
        assert not seen.text and row["cost_micro"] == 0 and row["output_tokens"] == 0


# ---------------------------------------------------------------- 200 that is really a failure


def _error_first(wire: str) -> bytes:
    if wire == "anthropic":
        return b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    if wire == "openai_responses":
        return b'event: error\ndata: {"type":"error","sequence_number":0,"code":"server_error","message":"boom","param":null}\n\n'
    if wire == "gemini":
        return b'data: {"error":{"code":500,"message":"boom","status":"INTERNAL"}}\r\n\r\n'
    return b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n'


def _with_spares(base_url: str) -> list[dict[str, Any]]:
    """The default accounts at a higher priority, and a second account of each provider behind them."""
    first = [{**a, "priority": 10} for a in default_accounts(base_url)]
    spare = [
        {**a, "label": a["label"].replace("-1", "-2"), "api_key": a["api_key"].replace("-1", "-2")}
        for a in default_accounts(base_url)
    ]
    return first + spare


@pytest.mark.parametrize("body", ["error-event", "empty"])
@pytest.mark.parametrize(
    "name", ["anthropic", "openai_chat", "openai_responses", "gemini", "chat->anthropic"]
)
async def test_200_with_error_first_or_empty_stream_fails_over(make_gateway, upstream, name, body) -> None:
    wire = WIRES[name]
    gw = await make_gateway(accounts=_with_spares(upstream.base_url))
    provider = {
        "claude-sonnet-4-5": "anthropic",
        "gpt-4o": "openai",
        "gpt-5": "openai",
        "gemini-2.5-flash": "gemini",
    }[wire.model]
    upstream_wire = {"anthropic": "anthropic", "openai": "openai_chat", "gemini": "gemini"}[provider]
    if wire.model == "gpt-5":
        upstream_wire = "openai_responses"
    payload = _error_first(upstream_wire) if body == "error-event" else b""
    upstream.fail_key(
        f"key-{provider}-1", status=200, times=1, body=payload, headers={"content-type": "text/event-stream"}
    )
    key = await gw.mint()
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.post(wire.path, json=wire.body(wire.model, WORDS), headers=auth(key))
    assert r.status_code == 200
    seen = read_stream(wire.protocol, r.content)
    assert seen.completed and not seen.errors and seen.text.startswith("Hello from the fake upstream")
    used = [
        req.headers.get("x-api-key")
        or req.headers.get("x-goog-api-key")
        or req.headers.get("authorization", "")
        for req in upstream.requests
    ]
    assert len(used) == 2 and f"key-{provider}-1" in used[0] and f"key-{provider}-2" in used[1]
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "ok" and row["attempts"] == 2 and row["cost_micro"] > 0
    first = gw.rt.pool.find(f"{provider}-1")
    assert first.failures >= 1 or first.last_error


# ---------------------------------------------------------------- long streams and keep-alives


async def test_stream_outlives_quarts_response_timeout(make_gateway, upstream, monkeypatch) -> None:
    apps: list[Any] = []

    def tiny_timeout(rt: Any) -> Any:
        app = real_create_app(rt)
        app.config["RESPONSE_TIMEOUT"] = 0.2  # any response not overriding it is cut after 0.2 s
        apps.append(app)
        return app

    real_create_app = host.create_app
    monkeypatch.setattr(host, "create_app", tiny_timeout)
    gw = await make_gateway()
    assert apps and apps[0].config["RESPONSE_TIMEOUT"] == 0.2
    key = await gw.mint()
    wire = WIRES["anthropic"]
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        started = loop.time()
        r = await http.post(
            wire.path, json=wire.body(wire.model, f"{WORDS} [chunks:30] [pace:30]"), headers=auth(key)
        )
        lasted = loop.time() - started
    seen = read_stream("anthropic", r.content)
    assert lasted > 0.2  # true by construction (30 frames 30 ms apart): the stream did outlive the timeout
    assert seen.completed and not seen.errors
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "ok"


@pytest.mark.parametrize("name", ["anthropic", "openai_chat", "openai_responses", "chat->anthropic"])
async def test_keepalive_pings_while_waiting_for_the_first_token(make_gateway, upstream, name) -> None:
    wire = WIRES[name]
    gw = await make_gateway(server={"keepalive_interval": 0.05})
    key = await gw.mint()
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.post(wire.path, json=wire.body(wire.model, f"{WORDS} [sleep:400]"), headers=auth(key))
    assert r.status_code == 200
    seen = read_stream(wire.protocol, r.content)
    assert seen.pings >= 2, r.text[:300]
    assert seen.completed and not seen.errors
    first = r.content.split(b"\n\n", 1)[0]
    if wire.protocol == "anthropic":
        assert first == b'event: ping\ndata: {"type":"ping"}'
    else:
        assert first.startswith(b":"), "keep-alives are SSE comments, which OpenAI clients skip"
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "ok"


@pytest.mark.parametrize(
    "fault", ["[cut:4 abort]", "[cut:4]", "[stall:4]"], ids=["dies", "ends-early", "stalls"]
)
@pytest.mark.parametrize(
    "model", ["gemini-2.5-flash", "claude-sonnet-4-5"], ids=["passthrough", "translated"]
)
async def test_gemini_json_array_stream_stays_valid_json_when_upstream_fails(
    make_gateway, upstream, model, fault
) -> None:
    gw = await make_gateway(server={"stream_idle_timeout": 0.3})
    key = await gw.mint()
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.post(
            f"/v1beta/models/{model}:streamGenerateContent",
            json=_gemini(model, f"{WORDS} {fault}"),
            headers={"x-goog-api-key": key},
        )
    assert r.status_code == 200
    items = orjson.loads(r.content)  # a client parses the whole body as one JSON array
    assert isinstance(items, list) and len(items) >= 2
    assert "error" in items[-1] and all("error" not in item for item in items[:-1])
    text = "".join(
        p.get("text", "")
        for item in items[:-1]
        for c in item.get("candidates", [])
        for p in c.get("content", {}).get("parts", [])
    )
    assert text.startswith("Hello")
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "error" and row["output_tokens"] == estimated_tokens(text)


@pytest.mark.parametrize("name", ["anthropic", "openai_chat", "openai_responses", "gemini", "gemini-array"])
async def test_passthrough_stream_keeps_the_upstreams_own_ending(make_gateway, upstream, name) -> None:
    """Frames after the one that completes the message ([DONE], a closing "]") still reach the client."""
    gw = await make_gateway()
    key = await gw.mint()
    wire = WIRES["gemini" if name == "gemini-array" else name]
    path = wire.path.replace("?alt=sse", "") if name == "gemini-array" else wire.path
    body = wire.body(wire.model, f"{WORDS} [pace:20]")
    if wire.protocol == "openai_chat":
        body["stream_options"] = {"include_usage": True}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.post(path, json=body, headers=auth(key))
    assert r.status_code == 200
    if name == "gemini-array":
        items = orjson.loads(r.content)
        assert items[-1]["candidates"][0]["finishReason"] == "STOP"
    else:
        seen = read_stream(wire.protocol, r.content)
        assert seen.completed and not seen.errors
        if wire.protocol == "openai_chat":
            assert r.content.endswith(b"data: [DONE]\n\n")
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "ok" and row["output_tokens"] > 0
    assert upstream.completed_streams == 1, "the upstream stream was read to its end"


@pytest.mark.parametrize("directive", ["", "[sleep:300]"], ids=["answered", "still-waiting"])
async def test_stream_whose_body_never_starts_still_settles(make_gateway, upstream, directive) -> None:
    """The client can vanish after the handler returned its streaming response but before the server started
    sending it: the body never runs (so neither does its cleanup). The handler task's end must settle it."""
    from gatewaytui.server import relay
    from gatewaytui.server.protocols import new_request_id

    gw = await make_gateway(server={"keepalive_interval": 0.1})
    secret = await gw.mint()
    key = gw.rt.keyring.authenticate(secret)
    body = WIRES["anthropic"].body("claude-sonnet-4-5", f"{WORDS} [pace:20] {directive}")
    handler = asyncio.create_task(
        relay.handle(gw.rt, "anthropic", "v1", key, body, 200, {}, new_request_id())
    )
    reply = await handler  # the handler's task ends here; nobody will ever iterate reply.body
    assert reply.status == 200 and reply.content_type == "text/event-stream"
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "cancelled" and row["cost_micro"] == 0
    assert upstream.completed_streams == 0


async def test_headers_wait_for_the_first_token_when_it_follows_the_block_start(
    make_gateway, upstream
) -> None:
    """The stream commits once content flows, not at a block's start: the client's first body bytes carry the
    first text delta (one write instead of two; a block start alone is not worth a round trip)."""
    gw = await make_gateway(server={"keepalive_interval": 5.0})
    key = await gw.mint()
    body = WIRES["anthropic"].body("claude-sonnet-4-5", f"{WORDS} [pace:150]")
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        async with http.stream("POST", "/v1/messages", json=body, headers={"x-api-key": key}) as r:
            assert r.status_code == 200
            first = b""
            async for chunk in r.aiter_raw():
                first = chunk
                break
    assert b"message_start" in first and b"content_block_start" in first and b"text_delta" in first
    await assert_settled_once(gw, upstream)


class _Burst:
    """An upstream answer whose whole stream arrives in one read (a fast upstream, a busy gateway)."""

    def __init__(self, resp: Any, data: bytes) -> None:
        self._resp, self._data = resp, data
        self.status_code, self.headers = resp.status_code, resp.headers
        self.chunks: Any = None

    def stream(self) -> Any:
        async def one() -> Any:
            yield self._data

        if self.chunks is None:
            self.chunks = one()
        return self.chunks

    async def aread(self) -> bytes:
        return self._data

    async def aclose(self) -> None:
        await self._resp.aclose()


@pytest.mark.parametrize("name", ["anthropic", "chat->anthropic", "openai_chat"])
async def test_first_token_goes_out_before_the_rest_of_a_burst_is_parsed(
    make_gateway, upstream, monkeypatch, name
) -> None:
    """A read that brings the whole answer at once: the relay parses it only until content flows and relays
    that piece first; the rest of the burst is parsed and relayed after. Nothing is lost or reordered."""
    from gatewaytui.server import relay
    from gatewaytui.server.protocols import new_request_id

    wire = WIRES[name]
    gw = await make_gateway()
    key = gw.rt.keyring.authenticate(await gw.mint())
    real = gw.rt.upstream.post
    sent: list[bytes] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> Any:
        resp = await real(url, body, headers)
        data = b"".join([chunk async for chunk in resp.stream()])
        sent.append(data)
        return _Burst(resp, data)

    monkeypatch.setattr(gw.rt.upstream, "post", post)
    body = wire.body(wire.model, WORDS)
    reply = await relay.handle(gw.rt, wire.protocol, "v1", key, body, 200, {}, new_request_id())
    assert reply.status == 200
    pieces = [piece async for piece in reply.body]  # type: ignore[union-attr]
    first, rest = pieces[0], b"".join(pieces[1:])
    ending = b"message_stop" if wire.protocol == "anthropic" else b"[DONE]"
    assert b"Hello" in first and ending not in first, first  # the first word, not the end of the burst
    assert ending in rest
    seen = read_stream(wire.protocol, b"".join(pieces))
    assert seen.completed and not seen.errors
    if wire.protocol == gw.rt.catalog.provider_module(gw.rt.catalog.resolve(wire.model)):
        assert b"".join(pieces) == sent[0]  # passthrough: the upstream's bytes, as sent
    (row,) = await assert_settled_once(gw, upstream)
    assert row["status"] == "ok" and row["output_tokens"] > 0
