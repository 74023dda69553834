"""A small async HTTP/1.1 client for what wrk cannot measure: time to first token, and streams held open.

One keep-alive connection per ``Conn``; responses framed by Content-Length or chunked encoding. The
first token is the first body byte sequence containing ``marker`` (the fake upstream's words are
``tok0 tok1 ...``, and every protocol's encoder carries the text through unchanged).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


class HTTPError(Exception):
    pass


@dataclass
class Reply:
    status: int
    ttft: float | None  # seconds from the request's last byte written to the marker's arrival
    total: float
    body: bytes


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buf = b""

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def _more(self) -> None:
        assert self.reader is not None
        data = await self.reader.read(65536)
        if not data:
            raise HTTPError("connection closed")
        self.buf += data

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        assert self.writer is not None
        head = f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(head.encode() + b"\r\n" + body)

    async def request(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        *,
        marker: bytes = b"tok",
        keep: bool = True,
        stop_at_marker: bool = False,
    ) -> Reply:
        """Send one request and read its response; ``stop_at_marker`` returns as soon as the first token came."""
        t0 = time.perf_counter()
        self.send(path, body, headers)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            await self._more()
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        ttft: float | None = None
        out = bytearray()
        tail = b""

        def seen(data: bytes) -> None:
            nonlocal ttft, tail
            if ttft is None and marker in tail + data:
                ttft = time.perf_counter() - t0
            tail = data[-len(marker) :]
            out.extend(data)

        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                await self._more()
            seen(self.buf[:n])
            self.buf = self.buf[n:]
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                while (nl := self.buf.find(b"\r\n")) < 0:
                    await self._more()
                size = int(self.buf[:nl].split(b";")[0], 16)
                while len(self.buf) < nl + 2 + size + 2:
                    await self._more()
                chunk = self.buf[nl + 2 : nl + 2 + size]
                self.buf = self.buf[nl + 2 + size + 2 :]
                if size == 0:
                    break
                seen(chunk)
                if stop_at_marker and ttft is not None:
                    return Reply(status, ttft, time.perf_counter() - t0, bytes(out))
        else:  # read to close
            try:
                while True:
                    await self._more()
            except HTTPError:
                seen(self.buf)
                self.buf = b""
            keep = False
        if not keep or hdrs.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, ttft, time.perf_counter() - t0, bytes(out))


async def ttft_series(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str], count: int
) -> list[float]:
    """``count`` sequential streamed requests on one keep-alive connection (c=1); their TTFTs in seconds."""
    conn = await Conn(host, port).open()
    out: list[float] = []
    try:
        for _ in range(count):
            if conn.writer is None:
                await conn.open()
            r = await conn.request(path, body, headers)
            if r.status != 200 or r.ttft is None:
                raise HTTPError(f"{host}:{port}{path} answered {r.status}: {r.body[:200]!r}")
            out.append(r.ttft)
    finally:
        conn.close()
    return out


async def hold_streams(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    count: int,
    *,
    open_rate: int = 200,
    timeout: float = 60.0,
) -> list[Conn]:
    """Open ``count`` streams and return once each has delivered its first token (they stay open).

    Streams not delivering within ``timeout`` seconds are dropped; the caller sees how many opened.
    """
    sem = asyncio.Semaphore(open_rate)

    async def one() -> Conn:
        async with sem:
            c = await Conn(host, port).open()
            try:
                r = await c.request(path, body, headers, stop_at_marker=True)
            except BaseException:
                c.close()
                raise
            if r.status != 200 or r.ttft is None:
                c.close()
                raise HTTPError(f"idle stream answered {r.status}: {r.body[:200]!r}")
            return c

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [t.result() for t in done if not t.cancelled() and t.exception() is None]
