"""upstream_http: the relay's lean HTTP/1.1 client, against raw HTTP/1.1 servers on loopback."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewaytui import config as configmod
from gatewaytui.runtime import LeanUpstreamClient, UpstreamClient, make_http_client
from gatewaytui.upstream_http import UpstreamHTTP

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class Server:
    """A raw HTTP/1.1 server on loopback: ``handler`` speaks for each connection; accepts are counted."""

    def __init__(
        self, handler: Handler, ssl_ctx: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.handler, self.ssl_ctx, self.host = handler, ssl_ctx, host
        self.accepts = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.closed = asyncio.Event()  # a connection saw the client close

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._on, self.host, 0, ssl=self.ssl_ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()
        for writer in self.writers:  # handlers still reading see the end and return
            writer.transport.abort()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 5)

    def url(self, path: str = "/v1/messages?beta=true", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def _on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request's head and body, or None once the client has closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


def answering(*answers: bytes, then_close: bool = False) -> Handler:
    """Each request on a connection gets the next answer (the last one repeats)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while await read_request(reader) is not None:
            writer.write(answers[min(n, len(answers) - 1)])
            await writer.drain()
            n += 1
            if then_close:
                return

    return handler


def lean(ssl_context: ssl.SSLContext | None = None, **limits: Any) -> UpstreamHTTP:
    kw = {"max_connections": 100, "max_keepalive_connections": 10, "keepalive_expiry": 30, **limits}
    return UpstreamHTTP(
        httpx.Limits(**kw), httpx.Timeout(connect=0.5, read=None, write=5, pool=0.3), ssl_context=ssl_context
    )


async def post(client: UpstreamHTTP, url: str, body: bytes = b'{"x":1}') -> tuple[int, bytes]:
    resp = await client.post(url, body, {"content-type": "application/json", "x-api-key": "k"})
    return resp.status_code, await resp.aread()


async def accepts_after(handler: Handler, expect: tuple[int, bytes], times: int = 2) -> int:
    """POST ``times`` in a row, each answered ``expect``; how many connections the server accepted."""
    async with Server(handler) as srv:
        client = lean()
        for _ in range(times):
            assert await post(client, srv.url()) == expect
        client.close()
    return srv.accepts


# ------------------------------------------------------------------ framing


async def test_content_length_body_request_shape_and_headers() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = await read_request(reader)
        assert got is not None
        seen.append(got[0] + got[1])
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nRetry-After: 7\r\nX-Many: a\r\nx-many: b\r\n\r\nhello"
        )

    async with Server(handler) as srv:
        client = lean()
        resp = await client.post(
            srv.url(), b'{"x":1}', {"content-type": "application/json", "x-api-key": "k"}
        )
        assert resp.status_code == 201 and await resp.aread() == b"hello"
        assert resp.headers.get("retry-after") == "7" and resp.headers.get("RETRY-AFTER") == "7"
        assert (
            "Retry-After" in resp.headers and "nope" not in resp.headers and resp.headers["X-MANY"] == "a, b"
        )
        assert dict(resp.headers.items())["content-length"] == "5"
        assert resp.extensions == {}
        client.close()
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/messages?beta=true HTTP/1.1" and body == b'{"x":1}'
    assert (
        f"host: 127.0.0.1:{srv.port}".encode() in lines
        and b"content-length: 7" in lines
        and b"x-api-key: k" in lines
    )
    assert not any(line.lower().startswith(b"accept-encoding") for line in lines)


async def test_chunked_body_with_extensions_and_trailers_then_reuse() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\nhello\r\n1\r\n,\r\n6 ; x="y"\r\n world\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n'
    )
    assert await accepts_after(answering(answer), (200, b"hello, world")) == 1


async def test_close_delimited_body_is_read_to_the_close_and_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    assert await accepts_after(answering(answer, then_close=True), (200, b"until the end")) == 2


async def test_keep_alive_reuses_one_connection() -> None:
    assert await accepts_after(answering(OK), (200, b"hello"), times=3) == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",  # HTTP/1.0 without keep-alive
    ],
)
async def test_connection_close_is_honoured(answer: bytes) -> None:
    assert await accepts_after(answering(answer), (200, b"hello")) == 2  # the server would have kept it open


async def test_interim_1xx_answers_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK
    assert await accepts_after(answering(answer), (200, b"hello")) == 1


async def test_no_body_statuses_and_empty_bodies() -> None:
    async with Server(
        answering(b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    ) as srv:
        client = lean()
        assert await post(client, srv.url()) == (204, b"")
        assert await post(client, srv.url()) == (200, b"")
        assert srv.accepts == 1
        client.close()


async def test_gzip_is_decoded_and_an_unknown_encoding_fails_clearly() -> None:
    packed = gzip.compress(b"squeezed " * 100)
    gz = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    br = b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc"
    async with Server(answering(gz, br)) as srv:
        client = lean()
        assert await post(client, srv.url()) == (200, b"squeezed " * 100)
        with pytest.raises(httpx.DecodingError, match="br"):
            await post(client, srv.url())
        client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"SPDY/3 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
async def test_malformed_answers_are_protocol_errors(answer: bytes) -> None:
    async with Server(answering(answer)) as srv:
        client = lean()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, srv.url())
        client.close()


async def test_a_header_with_a_line_break_is_refused() -> None:
    client = lean()
    with pytest.raises(httpx.LocalProtocolError):
        await client.post("http://127.0.0.1:9/x", b"", {"x-evil": "a\r\nx-injected: b"})


# ------------------------------------------------------------------ streams as they come, and cut


async def test_chunks_are_yielded_as_they_arrive() -> None:
    received = asyncio.Event()
    sent_at: list[float] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
        )
        for i in range(3):
            received.clear()
            sent_at.append(time.perf_counter())
            writer.write(b"%x\r\n%s\r\n" % (len(f"data: {i}\n\n"), f"data: {i}\n\n".encode()))
            await writer.drain()
            await received.wait()  # the next event is sent only once the client has this one
        writer.write(b"0\r\n\r\n")

    async with Server(handler) as srv:
        client = lean()
        resp = await client.post(srv.url(), b"{}", {})
        got, got_at = [], []
        async with asyncio.timeout(5):  # a client that buffered would wait here for ever
            async for chunk in resp.aiter_raw():
                got.append(chunk)
                got_at.append(time.perf_counter())
                received.set()
        assert got == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
        assert all(got_at[i] < sent_at[i + 1] for i in range(2))  # each one in hand before the next was sent
        client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial...",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\npartial...\r\n64\r\nmore",
    ],
)
async def test_a_body_cut_midway_is_a_read_error(answer: bytes) -> None:
    async with Server(answering(answer, then_close=True)) as srv:
        client = lean()
        resp = await client.post(srv.url(), b"{}", {})
        chunks = []
        with pytest.raises(httpx.ReadError):
            async for chunk in resp.aiter_raw():
                chunks.append(chunk)
        assert b"".join(chunks).startswith(b"partial...")
        with pytest.raises(httpx.ReadError):
            await post(client, srv.url())
        await resp.aclose()
        client.close()


async def test_cancelling_a_read_closes_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part")
            await writer.drain()
            if await reader.read(1) == b"":  # the client went away mid-body
                srv.closed.set()
                return

    async with Server(handler) as srv:
        client = lean()
        resp = await client.post(srv.url(), b"{}", {})
        it = resp.aiter_raw().__aiter__()
        assert await it.__anext__() == b"first part"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):  # as the relay's stall timeout does
                await it.__anext__()
        async with asyncio.timeout(5):
            await srv.closed.wait()
        await resp.aclose()
        resp = await client.post(srv.url(), b"{}", {})
        assert srv.accepts == 2  # not reused
        await resp.aclose()  # unread: closed, not pooled
        resp = await client.post(srv.url(), b"{}", {})
        assert srv.accepts == 3
        await resp.aclose()
        client.close()


# ------------------------------------------------------------------ pooled connections going stale


async def test_a_stale_pooled_connection_is_retried_once_on_a_new_one() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        if first:  # the next request on this connection finds it closed (as if it raced an idle close)
            await read_request(reader)
            return
        while await read_request(reader) is not None:
            writer.write(OK)

    assert await accepts_after(handler, (200, b"hello"), times=3) == 2


async def test_a_new_connection_closed_without_an_answer_is_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with Server(handler) as srv:
        client = lean()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(client, srv.url())
        assert srv.accepts == 1
        client.close()


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async with Server(answering(OK, then_close=True)) as srv:  # closes after answering, without saying so
        client = lean()
        assert await post(client, srv.url()) == (200, b"hello")
        await asyncio.sleep(0.05)
        assert await post(client, srv.url()) == (200, b"hello")
        assert srv.accepts == 2
        client.close()


async def test_idle_connections_expire_and_are_bounded() -> None:
    async with Server(answering(OK)) as srv:
        client = lean(keepalive_expiry=0.01)
        assert await post(client, srv.url()) == (200, b"hello")
        await asyncio.sleep(0.03)
        assert await post(client, srv.url()) == (200, b"hello")
        assert srv.accepts == 2
        client.close()
        client = lean(max_keepalive_connections=1)
        a, b = await client.post(srv.url(), b"", {}), await client.post(srv.url(), b"", {})
        await a.aread()
        await b.aread()  # the second finished finds the idle pool full: closed
        for _ in range(2):
            await post(client, srv.url())
        assert srv.accepts == 2 + 2  # both reused the one kept
        client.close()


async def test_max_connections_bounds_requests_in_flight() -> None:
    async with Server(answering(OK)) as srv:
        client = lean(max_connections=1)
        first = await client.post(srv.url(), b"", {})
        with pytest.raises(httpx.PoolTimeout):
            await client.post(srv.url(), b"", {})
        waiting = asyncio.ensure_future(post(client, srv.url()))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert await first.aread() == b"hello"  # read to the end: the slot is free
        assert await waiting == (200, b"hello")
        client.close()


# ------------------------------------------------------------------ connecting


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await post(lean(), f"http://127.0.0.1:{port}/x")


async def test_connect_timeout() -> None:
    """A listener whose accept queue is full: Linux drops further SYNs, so connecting hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        try:
            client = UpstreamHTTP(
                httpx.Limits(), httpx.Timeout(connect=0.2, read=None, write=None, pool=None)
            )
            try:
                await post(client, f"http://127.0.0.1:{port}/x")
            except httpx.ConnectTimeout:
                pass
            else:
                pytest.skip("this kernel accepted past a full backlog: no connect timeout to observe")
        finally:
            for s in fillers:
                s.close()


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("cert_name", ["localhost", "elsewhere.test"])
async def test_https_checks_the_certificate_and_host(tmp_path: Path, cert_name: str) -> None:
    cert, key = self_signed(tmp_path, cert_name)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    async with Server(answering(OK), ssl_ctx=server_ctx) as srv:
        client = lean(ssl_context=client_ctx)
        url = srv.url(scheme="https", host="localhost")
        if cert_name == "localhost":
            assert await post(client, url) == (200, b"hello")
            assert await post(client, url) == (200, b"hello")
            assert srv.accepts == 1
        else:
            with pytest.raises(httpx.ConnectError):
                await post(client, url)
        client.close()


# ------------------------------------------------------------------ wiring


async def test_lean_is_the_default_transport_and_aiohttp_stays_selectable(tmp_path: Path) -> None:
    assert configmod.ServerConfig().upstream_transport == "lean"
    for transport, kind in (
        ("lean", LeanUpstreamClient),
        ("aiohttp", UpstreamClient),
        ("httpx", httpx.AsyncClient),
    ):
        client = make_http_client(transport)
        assert type(client) is kind
        await client.aclose()
    path = tmp_path / "c.toml"
    path.write_text('[server]\nupstream_transport = "h2"\n')
    with pytest.raises(configmod.ConfigError, match="lean"):
        configmod.load(path)
