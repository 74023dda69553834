"""A fast fake upstream for benchmarks: raw asyncio (uvloop) HTTP/1.1, no framework.

It must be far faster than anything it measures (the harness checks it serves at least 5x what the
gateway does and flags the figure otherwise), so every answer is prebuilt bytes chosen by a dict lookup.

Shapes (chosen by path):
    POST .../messages                          Anthropic Messages
    POST .../chat/completions                  OpenAI Chat Completions
    POST .../models/{m}:generateContent        Gemini (``:streamGenerateContent?alt=sse`` streams SSE)
    POST /const                                a constant JSON reply (no parsing at all)
    GET  /health                               ``ok``

Streaming is asked for the usual way (``"stream": true`` in the body, or Gemini's stream verb).
A directive anywhere in the body tunes one request (so it survives any gateway in between):

    [bench chunks=50 pace=0 idle=0 faults=0]

``chunks``  text deltas in a streamed answer (default 50; the non-streamed text has as many words)
``pace``    milliseconds between stream frames (default 0: each frame is still its own write)
``idle``    seconds to hold the stream open after the first text delta (idle open streams)
``delay``   milliseconds before answering at all (lets a client give up before the answer)
``faults``  percent of requests that fail, picked at random among: HTTP 500 and HTTP 429 (both with
            ``retry-after: 1``), and a connection cut half-way through the body

Run alone: ``python -m bench.upstream --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
from collections.abc import Callable

DEFAULT_CHUNKS = 50
DIRECTIVE = re.compile(rb"\[bench ([^\]]*)\]")
STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
INPUT_TOKENS = 12


# ------------------------------------------------------------------ prebuilt answers


def _json(s: str) -> bytes:
    return s.encode()


def words(n: int) -> list[str]:
    return [f"tok{i} " for i in range(n)]


def anthropic_unary(n: int) -> bytes:
    text = "".join(words(n))
    return _json(
        '{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model",'
        f'"content":[{{"type":"text","text":"{text}"}}],"stop_reason":"end_turn","stop_sequence":null,'
        f'"usage":{{"input_tokens":{INPUT_TOKENS},"output_tokens":{n}}}}}'
    )


def anthropic_frames(n: int) -> list[bytes]:
    def ev(name: str, data: str) -> bytes:
        return f"event: {name}\ndata: {data}\n\n".encode()

    frames = [
        ev(
            "message_start",
            '{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant",'
            '"model":"bench-model","content":[],"stop_reason":null,"stop_sequence":null,'
            f'"usage":{{"input_tokens":{INPUT_TOKENS},"output_tokens":1}}}}}}',
        ),
        ev(
            "content_block_start",
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
        ),
    ]
    for w in words(n):
        frames.append(
            ev(
                "content_block_delta",
                f'{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{w}"}}}}',
            )
        )
    frames += [
        ev("content_block_stop", '{"type":"content_block_stop","index":0}'),
        ev(
            "message_delta",
            '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
            f'"usage":{{"output_tokens":{n}}}}}',
        ),
        ev("message_stop", '{"type":"message_stop"}'),
    ]
    return frames


def openai_unary(n: int) -> bytes:
    text = "".join(words(n))
    return _json(
        '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model",'
        f'"choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"stop"}}],'
        f'"usage":{{"prompt_tokens":{INPUT_TOKENS},"completion_tokens":{n},"total_tokens":{INPUT_TOKENS + n}}}}}'
    )


def openai_frames(n: int) -> list[bytes]:
    head = (
        '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model",'
    )

    def data(s: str) -> bytes:
        return f"data: {s}\n\n".encode()

    frames = [
        data(head + '"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}')
    ]
    for w in words(n):
        frames.append(
            data(head + f'"choices":[{{"index":0,"delta":{{"content":"{w}"}},"finish_reason":null}}]}}')
        )
    frames.append(data(head + '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'))
    frames.append(
        data(
            head + '"choices":[],'
            f'"usage":{{"prompt_tokens":{INPUT_TOKENS},"completion_tokens":{n},"total_tokens":{INPUT_TOKENS + n}}}}}'
        )
    )
    frames.append(b"data: [DONE]\n\n")
    return frames


def _gemini_usage(n: int) -> str:
    return f'"usageMetadata":{{"promptTokenCount":{INPUT_TOKENS},"candidatesTokenCount":{n},"totalTokenCount":{INPUT_TOKENS + n}}}'


def gemini_unary(n: int) -> bytes:
    text = "".join(words(n))
    return _json(
        f'{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}],"role":"model"}},"finishReason":"STOP","index":0}}],'
        f'{_gemini_usage(n)},"modelVersion":"bench-model"}}'
    )


def gemini_frames(n: int) -> list[bytes]:
    frames = []
    ws = words(n)
    for i, w in enumerate(ws):
        last = i == len(ws) - 1
        finish = ',"finishReason":"STOP"' if last else ""
        usage = "," + _gemini_usage(n if last else i + 1)
        frames.append(
            f'data: {{"candidates":[{{"content":{{"parts":[{{"text":"{w}"}}],"role":"model"}}{finish},"index":0}}]'
            f'{usage},"modelVersion":"bench-model"}}\r\n\r\n'.encode()
        )
    return frames


CONST = b'{"ok":true,"text":"constant reply"}'
ERRORS = {
    "anthropic": b'{"type":"error","error":{"type":"api_error","message":"bench fault"}}',
    "openai": b'{"error":{"message":"bench fault","type":"server_error","code":null}}',
    "gemini": b'{"error":{"code":500,"message":"bench fault","status":"INTERNAL"}}',
}
BUILDERS: dict[str, tuple[Callable[[int], bytes], Callable[[int], list[bytes]]]] = {
    "anthropic": (anthropic_unary, anthropic_frames),
    "openai": (openai_unary, openai_frames),
    "gemini": (gemini_unary, gemini_frames),
}


def _response(status: int, body: bytes, ctype: bytes = b"application/json", extra: bytes = b"") -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 429: b"Too Many Requests", 500: b"Internal Server Error"}.get(
        status, b"X"
    )
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n"
        % (status, reason, ctype, len(body), extra)
        + body
    )


STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Answers:
    """Prebuilt bytes per (shape, chunks): the unary response, and the stream's chunked frames."""

    def __init__(self) -> None:
        self._unary: dict[tuple[str, int], bytes] = {}
        self._frames: dict[tuple[str, int], list[bytes]] = {}
        self._joined: dict[tuple[str, int], bytes] = {}

    def unary(self, shape: str, n: int) -> bytes:
        key = (shape, n)
        got = self._unary.get(key)
        if got is None:
            got = self._unary[key] = _response(200, BUILDERS[shape][0](n))
        return got

    def frames(self, shape: str, n: int) -> list[bytes]:
        key = (shape, n)
        got = self._frames.get(key)
        if got is None:
            got = self._frames[key] = [_chunk(f) for f in BUILDERS[shape][1](n)]
        return got


ANSWERS = Answers()
CONST_RESPONSE = _response(200, CONST)
HEALTH_RESPONSE = _response(200, b"ok", b"text/plain")
NOT_FOUND = _response(404, b'{"error":"no such route"}')


def parse_directive(body: bytes) -> dict[str, float]:
    m = DIRECTIVE.search(body)
    if m is None:
        return {}
    out: dict[str, float] = {}
    for part in m.group(1).split():
        name, _, value = part.partition(b"=")
        try:
            out[name.decode()] = float(value)
        except ValueError:
            pass
    return out


def shape_of(path: bytes) -> str | None:
    if b"/messages" in path:
        return "anthropic"
    if b"/chat/completions" in path:
        return "openai"
    if b":generateContent" in path or b":streamGenerateContent" in path:
        return "gemini"
    return None


# ------------------------------------------------------------------ the server


class Upstream(asyncio.Protocol):
    """One connection: a minimal HTTP/1.1 keep-alive server (Content-Length or chunked request bodies)."""

    __slots__ = ("transport", "buf", "busy", "rng", "server")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False  # a streamed answer is being written; later pipelined requests wait

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.server.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while self.transport is not None and not self.busy:
            req = self._take()
            if req is None:
                return
            self._serve(*req)

    def _take(self) -> tuple[bytes, bytes, bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = buf[:end]
        line_end = head.find(b"\r\n")
        request_line = head[:line_end] if line_end >= 0 else head
        lower = head.lower()
        start = end + 4
        i = lower.find(b"\r\ncontent-length:")
        if i >= 0:
            j = lower.find(b"\r\n", i + 2)
            length = int(head[i + 17 : j if j >= 0 else len(head)].strip())
            if len(buf) < start + length:
                return None
            body = buf[start : start + length]
            self.buf = buf[start + length :]
        elif b"\r\ntransfer-encoding: chunked" in lower:
            parts: list[bytes] = []
            pos = start
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(buf[pos:nl].split(b";")[0], 16)
                if len(buf) < nl + 2 + size + 2:
                    return None
                parts.append(buf[nl + 2 : nl + 2 + size])
                pos = nl + 2 + size + 2
                if size == 0:
                    break
            body = b"".join(parts)
            self.buf = buf[pos:]
        else:
            body = b""
            self.buf = buf[start:]
        method, _, rest = request_line.partition(b" ")
        path = rest.rpartition(b" ")[0]
        return method, path, body

    def _serve(self, method: bytes, path: bytes, body: bytes) -> None:
        t = self.transport
        assert t is not None
        self.server.requests += 1
        if path == b"/const":
            t.write(CONST_RESPONSE)
            return
        if path == b"/health":
            t.write(HEALTH_RESPONSE)
            return
        shape = shape_of(path)
        if shape is None:
            t.write(NOT_FOUND)
            return
        d = parse_directive(body) if b"[bench " in body else {}
        n = int(d.get("chunks", DEFAULT_CHUNKS))
        stream = (
            b":streamGenerateContent" in path if shape == "gemini" else STREAM_TRUE.search(body) is not None
        )
        fault = None
        faults = d.get("faults", 0.0)
        if faults and self.server.rng.random() * 100 < faults:
            fault = self.server.rng.choice(("500", "429", "cut"))
            self.server.faults += 1
        delay = d.get("delay", 0.0) / 1000
        if delay:
            self.busy = True
            asyncio.get_running_loop().call_later(delay, self._after_delay, shape, stream, n, d, fault)
            return
        self._answer(shape, stream, n, d, fault)

    def _after_delay(self, shape: str, stream: bool, n: int, d: dict[str, float], fault: str | None) -> None:
        self.busy = False
        if self.transport is None:
            return
        self._answer(shape, stream, n, d, fault)
        if self.transport is not None and not self.busy and self.buf:
            self._drain()

    def _answer(self, shape: str, stream: bool, n: int, d: dict[str, float], fault: str | None) -> None:
        t = self.transport
        assert t is not None
        if fault == "500":
            t.write(_response(500, ERRORS[shape], extra=b"retry-after: 1\r\n"))
            return
        if fault == "429":
            t.write(_response(429, ERRORS[shape], extra=b"retry-after: 1\r\n"))
            return
        if not stream:
            answer = ANSWERS.unary(shape, n)
            if fault == "cut":
                t.write(answer[: len(answer) - len(answer) // 3])
                t.close()
                return
            t.write(answer)
            return
        frames = ANSWERS.frames(shape, n)
        pace = d.get("pace", 0.0) / 1000
        idle = d.get("idle", 0.0)
        if not pace and not idle and fault is None:
            t.write(STREAM_HEAD)
            for f in frames:  # one write per frame, as a real upstream flushes each event
                t.write(f)
            t.write(b"0\r\n\r\n")
            return
        self.busy = True
        asyncio.get_running_loop().create_task(self._paced(shape, frames, pace, idle, fault == "cut"))

    async def _paced(self, shape: str, frames: list[bytes], pace: float, idle: float, cut: bool) -> None:
        t = self.transport
        if t is None:
            self.busy = False
            return
        self.server.streams += 1
        try:
            t.write(STREAM_HEAD)
            first_text = 2 if shape == "anthropic" else 1
            stop_at = len(frames) // 2 if cut else -1
            for i, f in enumerate(frames):
                if self.transport is None:
                    return
                if i == stop_at:
                    t.abort()
                    return
                t.write(f)
                if idle and i == first_text:
                    self.server.idle += 1
                    try:
                        await asyncio.sleep(idle)
                    finally:
                        self.server.idle -= 1
                elif pace:
                    await asyncio.sleep(pace)
            if self.transport is not None:
                t.write(b"0\r\n\r\n")
        finally:
            self.server.streams -= 1
            self.busy = False
            if self.transport is not None and self.buf:
                self._drain()


class Server:
    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.requests = 0
        self.connections = 0
        self.streams = 0
        self.idle = 0
        self.faults = 0


async def serve(host: str, port: int, ready: Callable[[int], None] | None = None) -> None:
    loop = asyncio.get_running_loop()
    state = Server()
    server = await loop.create_server(lambda: Upstream(state), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="fast fake LLM upstream for benchmarks")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    args = p.parse_args(argv)
    try:
        import uvloop

    except ImportError:  # pragma: no cover
        uvloop = None

    def ready(port: int) -> None:
        print(f"READY {port} pid={os.getpid()}", flush=True)

    if uvloop is not None:
        uvloop.run(serve(args.host, args.port, ready))
    else:  # pragma: no cover
        asyncio.run(serve(args.host, args.port, ready))


if __name__ == "__main__":
    main()
