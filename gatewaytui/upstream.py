"""The relay's upstream HTTP client: one aiohttp session (one connection pool) for every upstream call.

``Upstream.post`` sends one POST and returns once the status and headers are in; the body is read from
the ``Response`` (``aread`` whole, bounded, or ``aiter_raw`` as it arrives). What it guarantees:

- Proxies: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (and ``.netrc`` proxy credentials) are
  honoured. They are read once per upstream host, when the client first calls it (aiohttp's own
  ``trust_env`` looks them up on a worker thread for every request, which the hot path cannot afford).
- Decoding: gzip, deflate (zlib-wrapped or raw), brotli and zstd answers are undone by aiohttp (brotli
  and zstd through the ``brotli`` and ``backports.zstd`` packages); a body that does not decode is
  ``Undecodable``.
- Size: a non-streamed body larger than ``max_body`` bytes — declared by ``content-length`` or counted
  as it decodes, so a compressed bomb stops at the limit too — is ``TooLarge``. Streams are bounded
  per event by the SSE decoder (``codec.SSEDecoder``), not in total.
- No silent re-send: aiohttp retries a request on a reused connection only for idempotent methods, and
  a POST is not one. A connection that fails before the request could be written is ``ConnectFailed``
  (nothing was sent: safe to try elsewhere); one that breaks after (a pooled connection the server
  closed as the request went out) is ``Broken``. The caller decides what to do with either.

httpx's API (probes, OAuth) runs over the same session through ``httpx_aiohttp`` (``httpx_client``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from httpx_aiohttp import AiohttpTransport
from yarl import URL

CONNECT_TIMEOUT = 10.0  # seconds to open a TCP (and TLS) connection
POOL_TIMEOUT = 30.0  # seconds httpx callers (probes, OAuth) wait for a free connection slot
MAX_CONNECTIONS = 2000
KEEPALIVE = 15.0  # idle seconds a pooled connection is kept (below most servers' own idle timeouts)
DEFAULT_MAX_BODY = 64 << 20


class TransportError(Exception):
    """The upstream could not be reached or its answer not read. ``cause`` is the ``UpstreamError`` cause."""

    cause = "connection"


class ConnectFailed(TransportError):
    """No connection (refused, unresolvable, TLS or proxy refused): the request was not sent."""


class ConnectTimeout(ConnectFailed):
    """The connection did not open in time: the request was not sent."""


class Broken(TransportError):
    """The connection broke after the request may have been sent, or the answer was cut or malformed."""


class Undecodable(TransportError):
    """The body is in a content-encoding that does not decode."""


class TooLarge(TransportError):
    """The body is larger than the configured limit (declared or decoded)."""

    cause = "too_large"


class Response:
    """One upstream answer: ``status_code``, ``headers`` (any case), the body read once."""

    __slots__ = ("_resp", "_max_body", "status_code", "headers", "chunks")

    def __init__(self, resp: aiohttp.ClientResponse, max_body: int) -> None:
        self._resp, self._max_body = resp, max_body
        self.status_code: int = resp.status
        self.headers: Mapping[str, str] = resp.headers
        self.chunks: AsyncIterator[bytes] | None = None  # the stream's iterator, once reading began

    async def aread(self) -> bytes:
        """The whole body, decoded; ``TooLarge`` past the limit (the connection is then closed)."""
        resp = self._resp
        declared = resp.content_length
        if declared is not None:
            if declared > self._max_body:
                resp.close()
                raise TooLarge(f"upstream declared a {declared}-byte body; the limit is {self._max_body}")
            if "content-encoding" not in resp.headers:  # the declared length is the decoded one: one read
                try:
                    return await resp.read()
                except aiohttp.ClientError as exc:
                    raise Broken(f"upstream body cut short: {type(exc).__name__}: {exc}") from None
        parts: list[bytes] = []
        size = 0
        async for chunk in self.aiter_raw():
            size += len(chunk)
            if size > self._max_body:
                self._resp.close()
                raise TooLarge(f"upstream body exceeds the {self._max_body}-byte limit")
            parts.append(chunk)
        return b"".join(parts)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes (decoded) as they arrive."""
        content = self._resp.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            if isinstance(exc.__cause__, aiohttp.http_exceptions.ContentEncodingError) or "encod" in str(exc):
                raise Undecodable(f"upstream body does not decode: {exc}") from None
            raise Broken(f"upstream body cut short: {exc}") from None
        except aiohttp.ClientError as exc:
            raise Broken(f"upstream connection broke: {type(exc).__name__}: {exc}") from None

    def stream(self) -> AsyncIterator[bytes]:
        """The body's one iterator (made on first use; ``aiter_raw`` may be called only once)."""
        if self.chunks is None:
            self.chunks = self.aiter_raw().__aiter__()
        return self.chunks

    async def aclose(self) -> None:
        """Back to the pool if the body was read to the end, else the connection is closed."""
        self._resp.release()


class Upstream:
    """Keep-alive connections to every upstream, and the one way the relay calls them."""

    def __init__(self, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str | None], URL | None] = {}
        # no per-request timer: the relay's own deadlines bound a request; only a connection attempt is timed
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=CONNECT_TIMEOUT, sock_read=None
        )
        self._urls: dict[str, URL] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session, made on first use (it must be made inside the running loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                trust_env=False,  # proxies are looked up once per host by ``proxy_for``
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),  # an upstream's cookies never cross requests
            )
        return self._session

    def proxy_for(self, url: URL) -> URL | None:
        """The proxy ``HTTP(S)_PROXY`` / ``NO_PROXY`` name for this URL's host (looked up once per host)."""
        key = (url.scheme, url.host)
        if key not in self._proxies:
            try:
                proxy, auth = get_env_proxy_for_url(url)
            except LookupError:
                proxy = None
            else:
                if auth is not None and proxy is not None:
                    proxy = proxy.with_user(auth.login).with_password(auth.password)
            self._proxies[key] = proxy
        return self._proxies[key]

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST; return once the status and headers are in (the body is read from the result)."""
        target = self._urls.get(url)
        if target is None:  # an account's URLs repeat: parse each once (bounded: accounts x models)
            if len(self._urls) > 4096:
                self._urls.clear()
            target = self._urls[url] = URL(url, encoded=True)
        try:
            resp = await self.session.post(
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self.proxy_for(target),
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectTimeout(f"timed out connecting: {exc}") from None
        except (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError) as exc:
            # DNS, refused, TLS, the proxy refused to tunnel: nothing was sent
            raise ConnectFailed(f"cannot connect: {exc}") from None
        except (aiohttp.InvalidURL, ValueError) as exc:
            raise ConnectFailed(f"invalid upstream URL: {exc}") from None
        except aiohttp.ServerDisconnectedError:
            raise Broken("upstream closed the connection without answering") from None
        except aiohttp.ClientError as exc:
            raise Broken(f"upstream connection broke: {type(exc).__name__}: {exc}") from None
        return Response(resp, self.max_body)

    def httpx_client(self) -> httpx.AsyncClient:
        """httpx's API over this pool, for callers off the hot path (probes, OAuth)."""
        return httpx.AsyncClient(
            transport=AiohttpTransport(client=lambda: self.session),
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT, read=None, write=30.0, pool=POOL_TIMEOUT),
            trust_env=True,
        )

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        await asyncio.sleep(0)  # let the connector's transports finish closing
