"""The relay's upstream client (gatewaytui/upstream.py) against servers on loopback: proxies from the
environment, content-encodings, size limits, no POST sent twice; and the same behaviours through a
running gateway (the client's error in its protocol, the account untouched)."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import brotli
import httpx
import orjson
import pytest
from backports import zstd

from gatewaytui.upstream import Broken, ConnectFailed, TooLarge, Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    """A raw TCP server on loopback running ``handler`` per connection; yields its port."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 request: (request line, headers by lower-case name, body)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


def answer(body: bytes, *, status: int = 200, **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", "content-type: application/json"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answering(payload: bytes, seen: list[str] | None = None, **headers: str) -> Handler:
    """A keep-alive server answering every request with ``payload``; request lines go to ``seen``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line, _, _ = await read_request(reader)
            if seen is not None:
                seen.append(line)
            writer.write(answer(payload, **headers))
            await writer.drain()

    return handle


@pytest.fixture
async def client() -> AsyncIterator[Upstream]:
    up = Upstream(max_body=1 << 20)
    yield up
    await up.close()


async def post(up: Upstream, url: str) -> tuple[int, bytes]:
    response = await up.post(url, b'{"x":1}', {"content-type": "application/json"})
    try:
        return response.status_code, await response.aread()
    finally:
        await response.aclose()


# ---------------------------------------------------------------- proxies


async def test_http_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    async with server(answering(b'{"via":"proxy"}', seen)) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        up = Upstream()
        try:
            assert await post(up, "http://upstream.invalid/v1/messages") == (200, b'{"via":"proxy"}')
        finally:
            await up.close()
    assert seen == ["POST http://upstream.invalid/v1/messages HTTP/1.1"]  # the absolute form: a proxy request


async def test_https_proxy_from_the_environment_is_asked_to_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def refuse_tunnels(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await read_request(reader)
        seen.append(line)
        writer.write(answer(b"", status=403))
        await writer.drain()

    async with server(refuse_tunnels) as port:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        up = Upstream()
        try:
            with pytest.raises(ConnectFailed):  # the proxy refused: nothing reached the upstream
                await post(up, "https://upstream.invalid/v1/messages")
        finally:
            await up.close()
    assert seen == ["CONNECT upstream.invalid:443 HTTP/1.1"]


async def test_no_proxy_hosts_are_called_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    via_proxy: list[str] = []
    direct: list[str] = []
    async with (
        server(answering(b"{}", via_proxy)) as proxy_port,
        server(answering(b'"direct"', direct)) as port,
    ):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        up = Upstream()
        try:
            assert await post(up, f"http://127.0.0.1:{port}/v1/chat") == (200, b'"direct"')
        finally:
            await up.close()
    assert via_proxy == [] and direct == ["POST /v1/chat HTTP/1.1"]


# ---------------------------------------------------------------- content-encodings

BODY = orjson.dumps({"text": "hello " * 200})


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # deflate without the zlib wrapper, as some servers send
    return c.compress(data) + c.flush()


ENCODINGS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": raw_deflate,
    "br": brotli.compress,
    "zstd": zstd.compress,
}


@pytest.mark.parametrize("name", list(ENCODINGS))
async def test_compressed_answers_are_decoded(client: Upstream, name: str) -> None:
    header = "deflate" if name == "raw-deflate" else name
    async with server(answering(ENCODINGS[name](BODY), content_encoding=header)) as port:
        assert await post(client, f"http://127.0.0.1:{port}/") == (200, BODY)


# ---------------------------------------------------------------- size limits


async def test_a_declared_body_over_the_limit_is_refused_unread(client: Upstream) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5000000000\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(5)

    async with server(huge) as port:
        with pytest.raises(TooLarge, match="declared"):
            await post(client, f"http://127.0.0.1:{port}/")


async def test_a_chunked_body_over_the_limit_stops_at_the_limit(client: Upstream) -> None:
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        while sent < 64 << 20:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            await writer.drain()

    async with server(endless) as port:
        with pytest.raises(TooLarge):
            await post(client, f"http://127.0.0.1:{port}/")
    assert sent < 16 << 20  # the read stopped near the 1 MiB limit, not at the server's end


async def test_a_compression_bomb_stops_at_the_decoded_limit(client: Upstream) -> None:
    bomb = gzip.compress(b"\0" * (32 << 20))  # ~32 KB on the wire, 32 MiB decoded (the limit: 1 MiB)
    async with server(answering(bomb, content_encoding="gzip")) as port:
        with pytest.raises(TooLarge, match="exceeds"):
            await post(client, f"http://127.0.0.1:{port}/")


# ---------------------------------------------------------------- never sent twice


async def test_a_post_is_not_resent_when_a_pooled_connection_dies_under_it(client: Upstream) -> None:
    """The server reads the second request on a kept-alive connection, then closes it unanswered (the
    race of an idle timeout): the client reports a broken connection and does not send it again."""
    received: list[bytes] = []

    async def close_after_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(2):
            _, _, body = await read_request(reader)
            received.append(body)
            if n == 0:
                writer.write(answer(b'"first"'))
                await writer.drain()
        writer.transport.abort()

    async with server(close_after_first) as port:
        url = f"http://127.0.0.1:{port}/"
        assert await post(client, url) == (200, b'"first"')
        with pytest.raises(Broken):
            await post(client, url)
        await asyncio.sleep(0.1)
    assert len(received) == 2  # the second POST went out once


async def test_an_idle_connection_the_server_closed_is_not_reused(client: Upstream) -> None:
    connections = 0

    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b'"ok"'))
        await writer.drain()  # then the handler returns: the server closes the idle connection

    async with server(one_per_connection) as port:
        url = f"http://127.0.0.1:{port}/"
        assert await post(client, url) == (200, b'"ok"')
        await asyncio.sleep(0.2)  # the close reaches the client
        assert await post(client, url) == (200, b'"ok"')
    assert connections == 2


# ---------------------------------------------------------------- through the gateway

MESSAGE = orjson.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "decoded fine"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
)


def anthropic_accounts(port: int) -> list[dict[str, Any]]:
    return [
        {
            "label": f"a{i}",
            "provider": "anthropic",
            "base_url": f"http://127.0.0.1:{port}",
            "api_key": f"k{i}",
        }
        for i in range(2)
    ]


async def ask(gw: Any) -> httpx.Response:
    key = await gw.mint()
    async with httpx.AsyncClient(
        base_url=gw.base_url, headers={"x-api-key": key, "anthropic-version": "2023-06-01"}, timeout=30
    ) as http:
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
        return await http.post("/v1/messages", json=body)


@pytest.mark.parametrize("name", ["raw-deflate", "br"])
async def test_the_gateway_relays_compressed_answers(make_gateway: Any, name: str) -> None:
    header = "deflate" if name == "raw-deflate" else name
    async with server(answering(ENCODINGS[name](MESSAGE), content_encoding=header)) as port:
        gw = await make_gateway(accounts=anthropic_accounts(port))
        r = await ask(gw)
        assert r.status_code == 200 and r.json()["content"][0]["text"] == "decoded fine"
        assert all(a.health() == "healthy" and a.errors == 0 for a in gw.rt.pool)


async def test_an_answer_over_the_limit_is_the_clients_502_and_rests_no_account(make_gateway: Any) -> None:
    seen: list[str] = []
    big = orjson.dumps({**orjson.loads(MESSAGE), "pad": "x" * (2 << 20)})
    async with server(answering(big, seen)) as port:
        gw = await make_gateway(accounts=anthropic_accounts(port), server={"upstream_max_body_mb": 1})
        r = await ask(gw)
        assert r.status_code == 502
        assert r.json()["type"] == "error" and "too large" in r.json()["error"]["message"]
        assert len(seen) == 1  # not repeated on the other account
        assert all(a.health() == "healthy" and a.cause is None for a in gw.rt.pool)


async def test_a_broken_connection_is_not_resent_to_the_same_account(make_gateway: Any) -> None:
    received = 0

    async def close_unanswered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        await read_request(reader)
        received += 1
        writer.transport.abort()

    async with server(close_unanswered) as port:
        gw = await make_gateway(accounts=anthropic_accounts(port)[:1])
        r = await ask(gw)
        assert r.status_code == 503 and "connection" in r.json()["error"]["message"]
    assert received == 1


async def test_an_endless_sse_line_is_refused_at_the_cap(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gatewaytui.codec.MAX_SSE_FRAME", 64 << 10)
    seen: list[str] = []

    async def endless_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await read_request(reader)
        seen.append(line)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"event: message_start\ndata: " + b"x" * 8192
        while True:  # one line that never ends
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            chunk = b"x" * 8192

    async with server(endless_line) as port:
        gw = await make_gateway(accounts=anthropic_accounts(port))
        key = await gw.mint()
        async with httpx.AsyncClient(
            base_url=gw.base_url, headers={"x-api-key": key, "anthropic-version": "2023-06-01"}, timeout=30
        ) as http:
            body = {
                "model": "claude-sonnet-4-5",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
            r = await http.post("/v1/messages", json=body)
        assert r.status_code == 502 and "SSE line longer than 65536" in r.json()["error"]["message"]
        assert len(seen) == 1 and all(a.health() == "healthy" and a.cause is None for a in gw.rt.pool)
