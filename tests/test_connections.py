"""The gateway's client connections: small writes go out at once (no Nagle delay), idle keep-alive
connections are closed after the keep-alive timeout (gatewaytui/connection.py) and at once when the
gateway stops, and a connection in use stays open."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import httpx
import hypercorn.asyncio.run as hypercorn_run

from gatewaytui import connection, host

REQUEST = b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n"


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One /health request on a kept-alive connection, its answer read to the end."""
    writer.write(REQUEST)
    await writer.drain()
    await _answer(reader)


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """A 200 answer with a content-length, read to its end: head and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head, await reader.readexactly(length)


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_idle_connections_close_after_the_keep_alive_timeout(
    make_gateway: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(host, "KEEP_ALIVE", 0.5)
    gw = await make_gateway()
    assert connection.installed() and hypercorn_run.TCPServer is connection.Connection
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        await _ask(reader, writer)
        await _ask(reader, writer)  # kept alive between requests
        assert await _closed_by_server(reader, within=10.0), "an idle connection was never closed"
    finally:
        writer.close()
    # a connection that never sent a request is idle from the start
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        assert await _closed_by_server(reader, within=10.0)
    finally:
        writer.close()


async def test_a_connection_in_use_outlives_the_keep_alive_timeout(
    make_gateway: Any, monkeypatch: Any
) -> None:
    """Each request stops the idle timer: requests 0.1 s apart over 2.5 s keep a 1 s timeout from firing."""
    monkeypatch.setattr(host, "KEEP_ALIVE", 1.0)
    gw = await make_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        for _ in range(25):
            await _ask(reader, writer)
            await asyncio.sleep(0.1)
        await _ask(reader, writer)
    finally:
        writer.close()


async def test_a_request_longer_than_the_keep_alive_timeout_is_not_cut(
    make_gateway: Any, monkeypatch: Any
) -> None:
    """The idle timer stops while a request runs: a 1.5 s stream under a 0.5 s keep-alive timeout is
    relayed whole, and the connection then serves another request."""
    monkeypatch.setattr(host, "KEEP_ALIVE", 0.5)
    gw = await make_gateway()
    secret = await gw.mint()
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "a slow story [chunks:15] [pace:100]"}],
        }
    ).encode()
    head = (
        "POST /v1/messages HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        f"x-api-key: {secret}\r\nanthropic-version: 2023-06-01\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        writer.write(head + body)
        await writer.drain()
        streamed = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 20.0)
        assert streamed.startswith(b"HTTP/1.1 200")
        assert b"event: message_stop" in streamed
        await _ask(reader, writer)  # the same connection, still open
    finally:
        writer.close()


async def test_stopping_closes_idle_connections_at_once(make_gateway: Any) -> None:
    """Stop does not wait out the keep-alive timeout (20 s) or the grace period (5 s here) for idle
    connections: the server's termination closes them."""
    gw = await make_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    await _ask(reader, writer)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await gw.gateway.stop()
        assert loop.time() - started < 4.0, "stop waited for an idle connection"
        assert await _closed_by_server(reader, within=2.0)
    finally:
        writer.close()


async def test_accepted_connections_send_small_writes_at_once(gateway: Any) -> None:
    """Nagle's algorithm is off on every client connection, on the stock asyncio loop too (these tests run
    on it; the CLI prefers uvloop, which turns it off itself). asyncio turns it off only for sockets whose
    proto says TCP; the listening socket was made with proto 0, the accepted ones inherited it, and a
    response's body waited for the client's delayed ACK of its head: ~40 ms on every non-streamed answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.gateway.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        client_port = writer.get_extra_info("sockname")[1]
        served = []
        for name in os.listdir("/proc/self/fd"):
            try:
                probe = socket.socket(fileno=os.dup(int(name)))
            except OSError:
                continue
            with probe:
                if probe.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                try:
                    ends = probe.getsockname(), probe.getpeername()
                except OSError:
                    continue
                if ends[0][1] == gateway.gateway.port and ends[1][1] == client_port:
                    served.append(probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        assert served, "the gateway's side of the connection was not found"
        assert all(served), "Nagle's algorithm is on for the client connection"
    finally:
        writer.close()


async def test_responses_carry_the_date_and_do_not_name_the_server(gateway: Any) -> None:
    """``date`` (formatted once a second by the gateway, not per response) is current on every answer;
    no ``server`` header names the software behind the gateway."""
    import email.utils
    import time

    async with httpx.AsyncClient(base_url=gateway.base_url) as client:
        for _ in range(3):
            before = int(time.time())
            resp = await client.get("/health")
            after = time.time()
            stamp = email.utils.parsedate_to_datetime(resp.headers["date"]).timestamp()
            assert before <= stamp <= after
            assert "server" not in resp.headers
            await asyncio.sleep(0.6)


async def _spied(make_gateway: Any, monkeypatch: Any) -> tuple[Any, str, list[bytes]]:
    """A gateway, a key, and what the gateway writes to its clients' sockets, one item per write (the fake
    upstream of these tests runs on Hypercorn in this process too: its writes are left out)."""
    writes: list[bytes] = []
    flush = connection.Connection.flush
    gw = await make_gateway()

    def spy(self: connection.Connection) -> bool:
        if self.pending and self.writer.get_extra_info("sockname")[1] == gw.gateway.port:
            writes.append(b"".join(self.pending))
        return flush(self)

    monkeypatch.setattr(connection.Connection, "flush", spy)
    return gw, await gw.mint(), writes


def _chat(secret: str, content: str, *, stream: bool, max_tokens: int = 64) -> bytes:
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": max_tokens,
            "stream": stream,
            "messages": [{"role": "user", "content": content}],
        }
    ).encode()
    return (
        "POST /v1/messages HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        f"x-api-key: {secret}\r\nanthropic-version: 2023-06-01\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_a_whole_answer_goes_out_in_one_write(make_gateway: Any, monkeypatch: Any) -> None:
    """Head and body of a non-streamed answer leave in one write (Hypercorn wrote each on its own: two
    system calls, and the client woken twice); a Quart route's answer too."""
    gw, secret, writes = await _spied(make_gateway, monkeypatch)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        for _ in range(3):
            writes.clear()
            writer.write(_chat(secret, "hello", stream=False))
            await writer.drain()
            head, body = await _answer(reader)
            assert json.loads(body)["type"] == "message"
            assert writes == [head + body]
        writes.clear()
        await _ask(reader, writer)
        assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(b"}")
    finally:
        writer.close()


async def test_a_stream_goes_out_as_it_is_made(make_gateway: Any, monkeypatch: Any) -> None:
    """A stream's pieces are not held for the rest of the answer: with the upstream 0.2 s between chunks,
    the client has its first events ~0.4 s before the last, and the chunks are written as they come."""
    gw, secret, writes = await _spied(make_gateway, monkeypatch)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        writer.write(_chat(secret, "a slow story [chunks:5] [pace:200]", stream=True))
        await writer.drain()
        loop = asyncio.get_running_loop()
        first = await asyncio.wait_for(reader.readuntil(b"event: message_start"), 10.0)
        assert first.startswith(b"HTTP/1.1 200")
        first_at = loop.time()
        streamed = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 20.0)
        assert b"event: message_stop" in streamed
        assert loop.time() - first_at > 0.3, "the stream's first events waited for its last"
        assert len(writes) >= 4, writes
    finally:
        writer.close()


async def test_a_client_gone_before_its_answer_is_written_is_no_error(
    make_gateway: Any, monkeypatch: Any, caplog: Any
) -> None:
    """The client closes its connection while the answer is being made: the gathered answer is dropped
    (the connection is closing), nothing is logged as an error, and the gateway serves the next client."""
    gw = await make_gateway()
    secret = await gw.mint()
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
        writer.write(_chat(secret, "hello [delay:50]", stream=False))
        await writer.drain()
        writer.transport.abort()
    await asyncio.sleep(0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        await _ask(reader, writer)
    finally:
        writer.close()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text


async def test_http2_clients_are_answered(make_gateway: Any) -> None:
    """HTTP/2 with prior knowledge over plain TCP (Hypercorn serves it): writes are gathered there too, and
    answers, a stream's included, arrive whole."""
    gw = await make_gateway()
    secret = await gw.mint()
    async with httpx.AsyncClient(base_url=gw.base_url, http1=False, http2=True) as client:
        health = await client.get("/health")
        assert health.http_version == "HTTP/2" and health.status_code == 200
        headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
        body = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        }
        answer = await client.post("/v1/messages", json=body, headers=headers)
        assert answer.status_code == 200 and answer.json()["type"] == "message"
        streamed = await client.post("/v1/messages", json={**body, "stream": True}, headers=headers)
        assert streamed.status_code == 200 and b"event: message_stop" in streamed.content


async def test_a_client_that_does_not_read_holds_the_stream_back(make_gateway: Any, monkeypatch: Any) -> None:
    """Backpressure: a stream whose client stops reading stops being relayed once the connection's write
    buffer is full (Hypercorn waited for the socket to drain after each write; gathered writes still do),
    instead of the gateway buffering the rest of a long answer in memory; the client then reads it whole.
    The socket buffers are made small on both ends, so the kernel cannot take the answer in their place, and
    no write is large enough to be written (and drained) at once for its size alone."""
    monkeypatch.setattr(connection, "FLUSH_AT", 1 << 40)
    buffered: list[int] = []
    flush = connection.Connection.flush
    gw = await make_gateway()

    def spy(self: connection.Connection) -> bool:
        if self.pending and self.writer.get_extra_info("sockname")[1] == gw.gateway.port:
            sock = self.writer.get_extra_info("socket")
            if not buffered:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
            buffered.append(self.writer.transport.get_write_buffer_size())
        return flush(self)

    monkeypatch.setattr(connection.Connection, "flush", spy)
    secret = await gw.mint()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gw.gateway.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 24)
    try:
        writer.write(_chat(secret, "a long story [chunks:20000]", stream=True, max_tokens=200_000))
        await writer.drain()
        await asyncio.sleep(1.5)  # not reading
        assert buffered and max(buffered) < 1 << 20, max(buffered)
        streamed = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 60.0)
        assert streamed.startswith(b"HTTP/1.1 200") and b"event: message_stop" in streamed
        assert len(streamed) > 2 << 20  # the answer was larger than what may wait in the gateway
    finally:
        writer.close()


async def test_expect_100_continue_is_answered_before_the_body(make_gateway: Any) -> None:
    """A client that sends ``Expect: 100-continue`` waits for the interim answer before its body (curl does
    for large bodies): the gathered writes send it at the end of that turn, and the answer follows."""
    gw = await make_gateway()
    secret = await gw.mint()
    request = _chat(secret, "hello", stream=False)
    head, body = request.split(b"\r\n\r\n", 1)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.port)
    try:
        writer.write(head + b"\r\nexpect: 100-continue\r\n\r\n")
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        writer.write(body)
        await writer.drain()
        _, answer = await _answer(reader)
        assert json.loads(answer)["type"] == "message"
    finally:
        writer.close()
