"""The relay's upstream HTTP/1.1 client: one POST at a time per connection, over a keep-alive pool.

The relay's one call — POST, await the status and headers, read the body as it arrives — needs little
of a general client, and aiohttp's generality cost ~90 µs a request on the bench's fake upstream. Here
the request is written in one ``transport.write`` and the answer parsed with ``bytes.find`` straight
from an ``asyncio.Protocol``'s buffer; no task is created per request.

``Response`` offers what relay.py uses of ``httpx.Response``: ``status_code``, ``headers`` (looked up
without regard to case), ``extensions``, ``aread()``, ``aiter_raw()`` (each chunk as it arrives) and
``aclose()``. Errors are httpx's: ``ConnectError`` / ``ConnectTimeout`` while connecting, ``ReadError``
for a body cut short, ``RemoteProtocolError`` for a malformed answer, ``DecodingError`` for a body in
an encoding it cannot undo (it asks for none: gzip and deflate are still undone if sent).

A connection goes back to the pool only when its response was read to the end and neither side asked
to close it; a body left unread, a read cancelled or failed, closes it. A pooled connection the server
dropped while it sat idle (closed before any byte of the answer) is retried once on a new connection.
``limits.max_connections`` bounds the requests in flight (more wait up to ``timeout.pool``),
``max_keepalive_connections`` the idle connections, ``keepalive_expiry`` how long one stays idle.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_HEAD = 64 * 1024  # longest status line + headers, and longest chunk-size or trailer line
HIGH_WATER = 1 << 20  # unread bytes buffered before the socket stops being read
Key = tuple[str, str, int]  # (scheme, host, port)


class Headers(dict[str, str]):
    """Response headers by lower-case name (repeats joined with ", "); ``get``, ``[]`` and ``in`` ignore case."""

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class _Stale(Exception):
    """The connection closed before any byte of the answer."""


class _Connection(asyncio.Protocol):
    """One socket: the bytes received and not yet parsed, and a future to wake the one reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: Key) -> None:
        self.loop, self.key = loop, key
        self.transport: Any = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False  # the peer closed its side, or the connection is gone
        self.error: BaseException | None = None
        self.paused = False
        self.idle_since = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof, self.error = True, exc
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Wait until more bytes arrive or the peer closes."""
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self.waiter = self.loop.create_future()
        await self.waiter

    def cut(self, why: str) -> httpx.ReadError:
        return httpx.ReadError(f"upstream {why}" + (f": {self.error}" if self.error else ""))


class UpstreamHTTP:
    """Keep-alive connections per (scheme, host, port); ``post`` sends one request on one of them."""

    def __init__(
        self, limits: httpx.Limits, timeout: httpx.Timeout, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._idle: dict[Key, list[_Connection]] = {}
        self._n_idle = 0
        self._max_idle = (
            limits.max_keepalive_connections if limits.max_keepalive_connections is not None else 1 << 30
        )
        self._expiry = limits.keepalive_expiry if limits.keepalive_expiry is not None else float("inf")
        self._next_sweep = 0.0
        self._max_active = limits.max_connections or 1 << 30
        self._active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._connect_timeout, self._pool_timeout = timeout.connect, timeout.pool
        self._ssl = ssl_context
        self._closed = False

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """Send the request; return once the status and headers are in (the body is read from the result)."""
        key, host, target = _split(url)
        lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
        head = f"POST {target} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {len(body)}\r\n{lines}\r\n"
        if head.count("\n") != len(headers) + 4 or head.count("\r") != len(headers) + 4:
            raise httpx.LocalProtocolError("a request header holds a line break")
        request = head.encode() + body
        await self._acquire()
        conn: _Connection | None = None
        try:
            for fresh in (False, True):
                conn = None if fresh else self._take(key)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(key)
                conn.transport.write(request)
                try:
                    return await _answer(self, conn)
                except _Stale:
                    conn.transport.abort()
                    conn = None
                    if not reused:
                        raise httpx.RemoteProtocolError(
                            "upstream closed the connection without answering"
                        ) from None
            raise AssertionError("unreachable")
        except BaseException:
            if conn is not None:
                conn.transport.abort()
            self._release()
            raise

    async def _connect(self, key: Key) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        ctx = None
        if scheme == "https":
            ctx = self._ssl = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: _Connection(loop, key), host, port, ssl=ctx, server_hostname=host if ctx else None
                )
        except TimeoutError:  # before OSError: it is one
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:  # refused, unresolvable, unreachable, TLS refused (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        with contextlib.suppress(AttributeError, OSError):  # asyncio and uvloop set it too; be sure
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _take(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the likeliest to be alive
            self._n_idle -= 1
            if conn.eof or conn.buf or conn.transport.is_closing() or now - conn.idle_since > self._expiry:
                conn.transport.close()
                continue
            return conn
        return None

    def _put(self, conn: _Connection) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        if self._closed or self._n_idle >= self._max_idle:
            conn.transport.close()
            return
        conn.idle_since = now
        self._idle.setdefault(conn.key, []).append(conn)
        self._n_idle += 1

    def _sweep(self, now: float) -> None:
        """Close connections idle past their expiry (each list is oldest first)."""
        self._next_sweep = now + min(self._expiry / 2, 5.0)
        for idle in self._idle.values():
            while idle and (idle[0].eof or now - idle[0].idle_since > self._expiry):
                idle.pop(0).transport.close()
                self._n_idle -= 1

    async def _acquire(self) -> None:
        if self._active < self._max_active:
            self._active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._pool_timeout):
                await waiter  # _release hands its slot over
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot but not taking it: pass it on
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("every upstream connection slot is busy") from None
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._active -= 1

    def _drop(self, conn: _Connection) -> None:
        conn.transport.abort()
        self._release()

    def close(self) -> None:
        """Close the idle connections; responses still open close theirs when done."""
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.transport.close()
        self._idle.clear()
        self._n_idle = 0


@lru_cache(maxsize=1024)
def _split(url: str) -> tuple[Key, str, str]:
    """``(key, host header, request target)`` of an upstream URL."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as exc:
        raise httpx.ConnectError(f"invalid upstream URL: {exc}") from None
    scheme, host = u.scheme.lower(), u.hostname
    if scheme not in ("http", "https") or not host:
        raise httpx.ConnectError(f"unsupported upstream URL {url[:80]!r}")
    default = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    if port and port != default:
        shown += f":{port}"
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if " " in target:
        raise httpx.ConnectError("upstream URL path holds a space")
    return (scheme, host, port or default), shown, target


async def _answer(client: UpstreamHTTP, conn: _Connection) -> Response:
    """Read the status line and headers (skipping 1xx interim answers) and frame the body."""
    buf = conn.buf
    interim = False
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise httpx.RemoteProtocolError("upstream response head too long")
            if conn.eof:
                if not buf and not interim:
                    raise _Stale
                raise httpx.RemoteProtocolError("upstream closed the connection in the response head")
            await conn.more()
            continue
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if (
            version not in ("HTTP/1.1", "HTTP/1.0")
            or not (code.isdigit() and code.isascii())
            or rest[3:4] not in ("", " ")
        ):
            raise httpx.RemoteProtocolError(f"malformed upstream status line {lines[0][:80]!r}")
        status = int(code)
        if status >= 200:
            break
        if status == 101:
            raise httpx.RemoteProtocolError("upstream switched protocols")
        interim = True
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1] in " \t" or name[0] in " \t":
            raise httpx.RemoteProtocolError(f"malformed upstream header line {line[:80]!r}")
        name, value = name.lower(), value.strip(" \t")
        old = dict.get(headers, name)
        dict.__setitem__(headers, name, value if old is None else f"{old}, {value}")
    return Response(client, conn, status, version, headers)


class Response:
    """One upstream answer; its body is read with ``aread`` or ``aiter_raw``, once."""

    __slots__ = (
        "status_code",
        "headers",
        "extensions",
        "_client",
        "_conn",
        "_keep",
        "_chunked",
        "_left",
        "_decoder",
    )

    def __init__(
        self, client: UpstreamHTTP, conn: _Connection, status: int, version: str, headers: Headers
    ) -> None:
        self.status_code, self.headers = status, headers
        self.extensions: dict[str, Any] = {}
        self._client, self._conn = client, None  # the connection is taken over once the head is known good
        token = headers.get("connection", "").lower()
        self._keep = "close" not in token if version == "HTTP/1.1" else "keep-alive" in token
        self._decoder: Any = None
        self._chunked = False
        self._left: int | None = None  # body bytes still to come (None: until the connection closes)
        te, cl = headers.get("transfer-encoding"), headers.get("content-length")
        if te is not None:
            if te.strip().lower() != "chunked":
                raise httpx.RemoteProtocolError(f"unsupported upstream transfer-encoding {te!r}")
            self._chunked, self._left = (
                True,
                -1,
            )  # chunked: -1 size line, -2 CRLF after data, -3 trailers, >0 data
        elif status in (204, 304):
            self._left = 0
        elif cl is not None:
            if not (cl.isascii() and cl.strip().isdigit()):  # repeats ("5, 5") included
                raise httpx.RemoteProtocolError(f"malformed upstream content-length {cl!r}")
            self._left = int(cl)
        else:
            self._keep = False  # delimited by the close
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip wrapper, detected
        elif encoding != "identity":
            raise httpx.DecodingError(
                f"upstream answered in content-encoding {encoding!r}, which is not supported"
            )
        self._conn = conn
        if self._left == 0:
            self._finish()

    async def aread(self) -> bytes:
        parts = []
        while self._conn is not None:
            parts.append(await self._next())
        return b"".join(parts)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        while self._conn is not None:
            data = await self._next()
            if data:
                yield data

    async def aclose(self) -> None:
        self._close()

    def _finish(self) -> None:
        """The body is complete: back to the pool if it may be reused."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._keep and not conn.buf and not conn.eof:
                self._client._put(conn)
            else:
                conn.transport.close()
            self._client._release()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._drop(conn)

    def __del__(self) -> None:  # dropped unread and unclosed: free the slot (on the loop's thread)
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                conn.loop.call_soon_threadsafe(self._client._drop, conn)

    async def _next(self) -> bytes:
        """The next body bytes, decoded (maybe none); ``_conn`` is None once the body is complete."""
        try:
            data = await (self._read_chunked() if self._chunked else self._read_plain())
            if self._decoder is not None:
                data = self._decoder.decompress(data) + (self._decoder.flush() if self._conn is None else b"")
            return data
        except BaseException as exc:  # cancelled, cut or malformed: the connection cannot be reused
            self._close()
            if isinstance(exc, zlib.error):
                raise httpx.DecodingError(f"upstream body does not decode: {exc}") from None
            raise

    async def _read_plain(self) -> bytes:
        conn = self._conn
        assert conn is not None
        buf = conn.buf
        while not buf:
            if conn.eof:
                if self._left is None and conn.error is None:
                    self._finish()
                    return b""
                raise conn.cut("closed the connection mid-body")
            await conn.more()
        left = self._left
        if left is None or len(buf) <= left:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:left])
            del buf[:left]
        if left is not None:
            self._left = left - len(data)
            if self._left == 0:
                self._finish()
        return data

    async def _read_chunked(self) -> bytes:
        conn = self._conn
        assert conn is not None and self._left is not None
        buf = conn.buf
        out: list[bytes] = []
        while True:
            left = self._left
            if left > 0:
                if buf:
                    n = min(left, len(buf))
                    out.append(bytes(buf[:n]))
                    del buf[:n]
                    self._left = left - n or -2
                    continue
            elif left == -2:
                if len(buf) >= 2:
                    if buf[:2] != b"\r\n":
                        raise httpx.RemoteProtocolError("malformed upstream chunk (no CRLF after the data)")
                    del buf[:2]
                    self._left = -1
                    continue
            else:
                i = buf.find(b"\r\n")
                if i >= 0:
                    line = bytes(buf[:i])
                    del buf[: i + 2]
                    if left == -3:  # a trailer, ignored; an empty line ends the body
                        if not line:
                            self._finish()
                            return b"".join(out)
                        continue
                    size = line.partition(b";")[0].strip()  # chunk extensions ignored
                    if not size or size.strip(b"0123456789abcdefABCDEF"):
                        raise httpx.RemoteProtocolError(f"malformed upstream chunk size {line[:40]!r}")
                    self._left = int(size, 16) or -3
                    continue
                if len(buf) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("upstream chunk-size or trailer line too long")
            if out:  # yield what has arrived; never wait to fill a size
                return b"".join(out)
            if conn.eof:
                raise conn.cut("closed the connection mid-body")
            await conn.more()
