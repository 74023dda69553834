"""The chat lane: the chat routes served over ASGI in front of Quart keep what Quart gave them (limits,
timeouts, methods, disconnects)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest

from gatewaytui.server import lane, limits

BODY = b'{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/messages", lane.Route("anthropic")),
        ("/claudecode/v1/messages", lane.Route("anthropic", "claudecode")),
        ("/roocode/v1/messages", lane.Route("anthropic", "roocode")),
        ("/v1/chat/completions", lane.Route("openai_chat")),
        ("/chat/completions", lane.Route("openai_chat")),
        ("/v1/responses", lane.Route("openai_responses")),
        (
            "/v1beta/models/gemini-2.5-pro:generateContent",
            lane.Route("gemini", "v1", "gemini-2.5-pro", False),
        ),
        (
            "/v1/models/gemini-2.5-pro:streamGenerateContent",
            lane.Route("gemini", "v1", "gemini-2.5-pro", True),
        ),
        ("/v1beta/models/gemini-2.5-pro:countTokens", None),  # Quart's
        ("/v1beta/models/:generateContent", None),
        ("/v1/models", None),
        ("/unknown/v1/messages", None),
        ("/v1/messages/count_tokens", None),
        ("/health", None),
    ],
)
def test_match(path: str, expected: lane.Route | None) -> None:
    assert lane.match(path) == expected


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


async def test_a_served_chat_request_still_works_after_a_disconnect(gateway) -> None:
    """The lane's disconnect watcher ends only its own request."""
    key = await gateway.mint()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.post(
            "/v1/messages", content=BODY, headers={"x-api-key": key, "content-type": "application/json"}
        )
        assert r.status_code == 200 and r.headers["content-length"] == str(len(r.content))
        assert r.json()["type"] == "message"
