"""The chat lane: the chat routes served over ASGI in front of Quart keep what Quart gave them (limits,
timeouts, methods, disconnects)."""

from __future__ import annotations

import asyncio
import itertools
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewaytui.server import lane, limits, protocols

BODY = b'{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/messages", protocols.Route("anthropic")),
        ("/messages", protocols.Route("anthropic")),
        ("/claudecode/v1/messages", protocols.Route("anthropic", "claudecode")),
        ("/roocode/v1/messages", protocols.Route("anthropic", "roocode")),
        ("/cline/messages", protocols.Route("anthropic", "cline")),  # Cline with base URL .../cline
        ("/v1/chat/completions", protocols.Route("openai_chat")),
        ("/chat/completions", protocols.Route("openai_chat")),
        ("/v1/responses", protocols.Route("openai_responses")),
        ("/responses", protocols.Route("openai_responses")),
        ("/cline/chat/completions", None),  # the tool routes are Anthropic routes
        ("/cline/v1/messages/count_tokens", None),  # Quart's
        (
            "/v1beta/models/gemini-2.5-pro:generateContent",
            protocols.Route("gemini", "v1", "gemini-2.5-pro", False),
        ),
        (
            "/v1/models/gemini-2.5-pro:streamGenerateContent",
            protocols.Route("gemini", "v1", "gemini-2.5-pro", True),
        ),
        ("/v1beta/models/gemini-2.5-pro:countTokens", None),  # Quart's
        ("/v1beta/models/:generateContent", None),
        ("/v1/models", None),
        ("/unknown/v1/messages", None),
        ("/v1/messages/count_tokens", None),
        ("/health", None),
    ],
)
def test_chat_route(path: str, expected: protocols.Route | None) -> None:
    assert protocols.chat_route(path) == expected


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/v1/messages/count_tokens", "anthropic"),
        ("/messages/count_tokens", "anthropic"),
        ("/cline/messages/count_tokens", "anthropic"),
        ("/v1beta/models/gemini-2.5-pro:countTokens", "gemini"),
        ("/v1/models/gemini-2.5-pro:nope", "gemini"),
        ("/v1/responses/resp_1", "openai_responses"),
        ("/unknown/v1/messages", "anthropic"),
        ("/unknown/messages", "anthropic"),
        ("/v1/models", "openai_chat"),
        ("/nowhere", "openai_chat"),
    ],
)
def test_every_other_path_answers_errors_in_its_protocol(path: str, protocol: str) -> None:
    assert protocols.protocol_for_path(path) == protocol


def assert_shape(protocol: str, r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    if protocol == "anthropic":
        assert body["type"] == "error" and body["error"]["type"]
    elif protocol == "gemini":
        assert body["error"]["code"] == status and body["error"]["status"]
    else:
        assert body["error"]["message"] and "type" in body["error"]


ROUTES = {
    "anthropic": "/v1/messages",
    "openai_chat": "/v1/chat/completions",
    "openai_responses": "/v1/responses",
    "gemini": "/v1beta/models/claude-sonnet-4-5:generateContent",
}


@pytest.mark.parametrize("protocol", list(ROUTES))
async def test_chunked_body_past_the_limit_is_413_in_the_callers_shape(make_gateway, protocol) -> None:
    gw = await make_gateway(server={"max_body_mb": 0.01})
    key = await gw.mint()

    async def chunks() -> Any:  # no content-length: the limit must hold while reading
        for _ in range(20):
            yield b" " * 1024

    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.post(
            ROUTES[protocol],
            content=chunks(),
            headers={"authorization": f"Bearer {key}", "x-goog-api-key": key},
        )
    assert_shape(protocol, r, 413)
    assert not gw.rt.traffic.inflight and not gw.rt.wallet.held


async def test_slow_body_is_408_in_the_callers_shape(make_gateway, monkeypatch) -> None:
    monkeypatch.setattr(limits, "BODY_TIMEOUT", 0.3)
    gw = await make_gateway()
    key = await gw.mint()
    host, port = gw.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n"
        f"content-length: {len(BODY)}\r\n\r\n".encode()
        + BODY[:10]
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 408"), head
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
    )
    r = httpx.Response(408, content=await reader.readexactly(length))
    assert_shape("openai_chat", r, 408)
    writer.close()
    assert not gw.rt.traffic.inflight and not gw.rt.wallet.held


async def test_other_methods_on_chat_routes(gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.options("/v1/messages")
        assert r.status_code == 200 and "POST" in r.headers["allow"]
        r = await http.head("/v1/chat/completions")
        assert r.status_code == 405 and r.content == b"" and "POST" in r.headers["allow"]
        r = await http.get("/v1/responses")
        assert_shape("openai_responses", r, 405)
        assert "POST" in r.headers["allow"]


async def test_gemini_paths_that_miss_a_part_say_which(gateway) -> None:
    key = await gateway.mint()
    auth = {"x-goog-api-key": key}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        for prefix in ("/v1beta/models/", "/v1/models/"):
            for verb in ("generateContent", "streamGenerateContent", "countTokens"):
                r = await http.get(f"{prefix}gemini-2.5-flash:{verb}", headers=auth)  # a method, not a model
                assert_shape("gemini", r, 405)
                assert "POST" in r.headers["allow"] and "take POST" in r.json()["error"]["message"]
            r = await http.post(f"{prefix}:generateContent", json=body, headers=auth)
            assert_shape("gemini", r, 404)
            assert "names no model" in r.json()["error"]["message"]
            r = await http.post(f"{prefix}gemini-2.5-flash", json=body, headers=auth)
            assert_shape("gemini", r, 405)
            assert r.headers["allow"] == "GET" and "no method after the model" in r.json()["error"]["message"]
            r = await http.post(f"{prefix}gemini-2.5-flash:embedStuff", json=body, headers=auth)
            assert_shape("gemini", r, 404)
            assert "unknown method 'embedStuff'" in r.json()["error"]["message"]
        r = await http.post("/v1beta/models/gemini-2.5-flash:generateContent", json=body)  # no key at all
        assert_shape("gemini", r, 401)
        assert "x-goog-api-key or ?key=" in r.json()["error"]["message"]  # how a Gemini client sends one
        r = await http.get("/v1beta/models/gemini-2.5-flash", headers=auth)  # the model itself still reads
        assert r.status_code == 200 and r.json()["name"].endswith("gemini-2.5-flash")
        r = await http.get("/v1/models/ft:gpt-4o:acme::x1", headers={"authorization": f"Bearer {key}"})
        assert_shape("openai_chat", r, 404)  # a colon in an OpenAI model id is no Gemini method


async def test_client_gone_while_sending_the_body_leaves_nothing_behind(gateway) -> None:
    key = await gateway.mint()
    host, port = gateway.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: {key}\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    )
    sock.sendall(head.encode() + BODY[:20])
    await asyncio.sleep(0.2)
    sock.close()
    await asyncio.sleep(0.3)
    assert not gateway.rt.traffic.inflight and not gateway.rt.wallet.held
    await gateway.flush()
    count = await gateway.rt.read(lambda conn: conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    assert count == 0


async def test_client_gone_while_sending_the_body_ends_the_handler_without_an_answer(gateway) -> None:
    """At the ASGI level: the body stops half-way with http.disconnect; the lane's handler must end at once,
    send nothing (nobody is there to read it) and leave nothing in flight or held."""
    key = await gateway.mint()
    script = [{"type": "http.request", "body": BODY[:20], "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        if script:
            return script.pop(0)
        await asyncio.Event().wait()  # a server sends nothing after http.disconnect
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def quart(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise AssertionError("a chat route is the lane's, not Quart's")

    headers = [
        (b"content-type", b"application/json"),
        (b"x-api-key", key.encode()),
        (b"content-length", str(len(BODY)).encode()),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/messages",
        "headers": headers,
        "query_string": b"",
    }
    await asyncio.wait_for(lane.ChatLane(quart, gateway.rt)(scope, receive, send), 5)
    assert not script, "the handler read up to the disconnect"
    assert sent == [], f"the handler answered a client that was gone: {sent[:1]}"
    assert not gateway.rt.traffic.inflight and not gateway.rt.wallet.held


async def test_a_served_chat_request_still_works_after_a_disconnect(gateway) -> None:
    """The lane's disconnect watcher ends only its own request."""
    key = await gateway.mint()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.post(
            "/v1/messages", content=BODY, headers={"x-api-key": key, "content-type": "application/json"}
        )
        assert r.status_code == 200 and r.headers["content-length"] == str(len(r.content))
        assert r.json()["type"] == "message"


README = Path(__file__).resolve().parent.parent / "README.md"
PROTOCOL_OF = {
    "Anthropic": {"anthropic"},
    "OpenAI Chat": {"openai_chat"},
    "OpenAI Responses": {"openai_responses"},
    "OpenAI Chat / Responses": {"openai_chat", "openai_responses"},
    "Gemini": {"gemini"},
}


def base_url_table() -> list[dict[str, str]]:
    text = README.read_text()
    section = text[text.index("### Base URL per tool") :]
    body = section[section.index("\n|") + 1 :]
    lines = list(itertools.takewhile(lambda ln: ln.startswith("|"), body.splitlines()))
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[2:]]


def test_readme_base_url_per_tool_names_served_chat_routes() -> None:
    rows = base_url_table()
    tools = {r["Tool"].split(" (")[0] for r in rows}
    assert {"Claude Code", "Cline", "Cursor", "Roo Code", "Codex", "Gemini CLI"} <= tools
    assert {"Anthropic SDK", "OpenAI SDK", "Gemini SDK"} <= tools
    for row in rows:
        base = row["Base URL"].strip("`").removeprefix("HOST")
        seen = set()
        for call in row["Calls"].split(", "):
            path = call.strip("`").replace("{model}", "claude-sonnet-4-5")
            assert path.startswith(base + "/"), (row["Tool"], path)
            route = protocols.chat_route(path)
            assert route is not None, f"{row['Tool']}: {path} is not served"
            seen.add(route.protocol)
        assert seen == PROTOCOL_OF[row["Protocol"]], row["Tool"]


@pytest.mark.parametrize("path", ["/cline/messages", "/messages", "/cline/v1/messages"])
async def test_anthropic_paths_without_v1_are_served(gateway, path: str) -> None:
    key = await gateway.mint()
    headers = {"x-api-key": key, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.post(path, content=BODY, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "message"
        r = await http.post(path + "/count_tokens", content=BODY, headers=headers)
        assert r.status_code == 200 and r.json()["input_tokens"] > 0, r.text


def _body_reader(max_body: int = 1 << 20) -> lane.ChatLane:
    reader = lane.ChatLane.__new__(lane.ChatLane)
    reader.max_body = max_body
    return reader


async def test_a_body_already_queued_is_read_whole_and_in_order() -> None:
    """Hypercorn queues a small body and its end before the app runs: the parts are taken straight from its
    queue (no body timer armed for them), in order, up to the end."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in (
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ):
        queue.put_nowait(message)
    assert await _body_reader().read_body({}, queue.get) == b'{"a":1}'


async def test_the_body_timeout_bounds_the_whole_body_not_each_part(monkeypatch) -> None:
    """A body that keeps dripping (each part well inside the timeout) is still cut at the timeout."""
    monkeypatch.setattr(limits, "BODY_TIMEOUT", 0.3)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def drip() -> None:
        while True:
            queue.put_nowait({"type": "http.request", "body": b" ", "more_body": True})
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    try:
        with pytest.raises(lane.GatewayError) as err:
            await asyncio.wait_for(_body_reader().read_body({}, queue.get), 30)
    finally:
        dripping.cancel()
    assert err.value.status == 408
