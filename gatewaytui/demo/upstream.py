"""A fake upstream that speaks the Anthropic, OpenAI (Chat and Responses) and Gemini wire formats.

It backs the test suite, ``gatewaytui --demo`` and the console screenshots. Run it alone with
``python -m gatewaytui.demo.upstream --port 9000``.

Endpoints
    POST /v1/messages, /v1/messages/count_tokens            Anthropic (``?beta=true`` is ignored)
    POST /v1/chat/completions, /api/v1/chat/completions     OpenAI Chat (OpenAI-compatible, OpenRouter)
    POST /v1/responses                                      OpenAI Responses
    POST /v1beta/models/{model}:generateContent | :streamGenerateContent | :countTokens   Gemini
         (also under /v1/models/...; ``?alt=sse`` gives ``data:`` frames, without it a JSON array)
    GET  /v1/models[/{id}]   OpenAI list shape, or Anthropic's when an ``anthropic-version`` header is sent
    GET  /api/v1/models, /v1beta/models[/{id}]

Credentials: ``x-api-key``, ``x-goog-api-key``, ``api-key``, ``?key=`` or ``Authorization: Bearer``. A request
without one is refused as the provider would (Gemini: 403). With ``accepted_keys`` set, any other key is
refused: 401 in Anthropic/OpenAI shape; Gemini answers 400 ``API_KEY_INVALID`` for an API key and 401 for a
bearer token, as the real API does.

Deterministic default answer (so tests can compute expected numbers)
    * snippet = the first 60 characters of the last user text, directives removed, whitespace collapsed.
      "Last user text" is the text of the most recent user message that has any text.
    * reply text = ``"Hello from the fake upstream! You said: <snippet>"``; with images in the request,
      ``"Hello from the fake upstream! I see N image(s). You said: <snippet>"``.
    * When the final turn carries tool results: ``"The tool returned: <r1>; <r2>"``.
    * Tool calls: when tools are offered, the final turn is not a tool result, tool_choice is not
      "none", and the last user text contains "tool" (or tool_choice forces a call): call the tool whose
      name appears in the text (else the first offered), text ``"I will call <name>."`` first. "two tools"
      or "parallel" in the text gives two calls (unless parallel calls are disabled). Arguments follow
      the tool's JSON schema: strings "Paris" (or the first enum value), numbers 1, booleans true, arrays
      of one item; an object gets its required properties, or all of them when none are required.
      Streams split the arguments JSON into at least 3 fragments; Gemini sends each call whole.
    * Thinking (Anthropic ``thinking`` enabled/adaptive, Chat ``reasoning_effort`` other than "none",
      Responses ``reasoning``, Gemini ``thinkingConfig`` or a gemini-3 model): thinking text
      ``"The user wrote: <snippet>. I should answer politely."`` comes first, as an Anthropic thinking
      block with a fake base64 signature, Chat ``reasoning_content``, a Responses reasoning item (summary
      only when ``reasoning.summary`` is set, ``encrypted_content`` only when ``include`` asks for it), or a
      Gemini ``thought`` part (only with ``includeThoughts``). With thinking on, Gemini puts a base64
      ``thoughtSignature`` on the thought part and on the first functionCall part.
    * input tokens = max(1, ceil(C / 4)), C = the characters (``len``) of all system/instructions text,
      message text parts (not thinking) and tool-result text, directives included. Tool definitions,
      tool-call arguments and media do not count. count_tokens/countTokens return the same number.
    * output tokens = max(1, words(reply text) + words(thinking text) + 10 per tool call), where words
      = whitespace-separated words; reasoning tokens = words(thinking text).
    * If output tokens exceed the request's max tokens M, the answer is truncated: no tool calls, text cut
      to M - reasoning words, output tokens = M, stop reason max_tokens / length / incomplete / MAX_TOKENS.
    * Usage in each wire (in=input, cr=cache_read, cw=cache_write (5 min), cw1h=cache_write_1h):
      Anthropic input_tokens=in, cache_read_input_tokens=cr, cache_creation_input_tokens=cw+cw1h,
      cache_creation.ephemeral_5m/1h=cw/cw1h. OpenAI prompt_tokens=in+cr+cw+cw1h, cached_tokens=cr,
      cache_write_tokens=cw+cw1h (only when non-zero). Gemini promptTokenCount=in+cr+cw+cw1h,
      cachedContentTokenCount=cr, candidatesTokenCount=out-reasoning, thoughtsTokenCount=reasoning.
    * Text deltas: one per word (each keeps its trailing space).

Directives in the last user text (never echoed; a malformed one gives 400):
    [fault:STATUS retry-after=S retry-after-ms=MS quota times=N]   fail with STATUS in the wire's envelope
        (``quota``: OpenAI insufficient_quota, Anthropic unified-status rejected; ``times=N``: only the
        first N requests carrying this same text fail). Gemini reports retry-after as RetryInfo.
    [cut:N] / [cut:N abort]   200, then only N stream frames and the body ends (``abort``: the connection
        breaks off mid-body). Non-streaming: half the JSON body.
    [stall:N]        N frames, then nothing until the client goes away (non-streaming: no answer at all)
    [pace:MS]        MS milliseconds between stream frames
    [chunks:N]       the reply text in exactly N deltas (padded with " more" when shorter than N chars)
    [error-event] / [error-event:N]   (streams) 200 whose frame N (default 0) is the wire's in-band error,
        then the end: Anthropic ``event: error`` overloaded_error; Chat ``data: {"error":..}`` server_error;
        Responses an ``error`` event at frame 0, else ``response.failed``; Gemini ``{"error":{..INTERNAL}}``
    [empty]          200 with an empty body / stream
    [usage in=100 out=20 cache_read=50 cache_write=30 cache_write_1h=10 reasoning=5]   exact usage
    [sleep:MS]       wait MS milliseconds before answering
A "frame" is one SSE event (Anthropic pings included) or one element of a Gemini JSON-array stream.

Requests the real APIs refuse get the same 400 here (so translation bugs show): Anthropic without
max_tokens, empty text blocks, tool_use without tool_result in the next message, more than 4 cache_control
breakpoints, thinking budget < 1024 or >= max_tokens, thinking with a forced tool_choice; Chat
stream_options without stream, tool_calls not answered by tool messages; Responses function_call_output
without its call; Gemini unknown schema keywords in ``parameters`` (additionalProperties, $schema, ...),
function response count != call count, non-base64 thoughtSignature, and (gemini-3 models) a functionCall of
the current turn without thoughtSignature.

Headers: Anthropic ``request-id: req_...`` and ``anthropic-ratelimit-*`` (per-minute limits plus the unified
5h/7d utilisation, on every answer); OpenAI ``x-request-id`` and ``x-ratelimit-*``. Ids are derived from the
request number, so a fresh upstream gives the same ids every run.

Programmatic control: ``fail_key`` / ``clear_faults``, ``accepted_keys``, ``set_quota``, ``requests``
(every request received), ``active_streams`` / ``cancelled_streams`` / ``completed_streams``, ``wait_until``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, cast
from urllib.parse import parse_qsl

import orjson

from . import fake_anthropic, fake_gemini
from .fake_routes import credential, guess_wire, models_reply, route, stream_type
from .fake_script import (
    Abort,
    Env,
    Ids,
    Invalid,
    Reply,
    input_tokens,
    parse_directives,
    plan_reply,
    shape_stream,
)

__all__ = ["FakeUpstream", "RecordedRequest", "Reply", "ThreadedUpstream", "serve", "main"]

log = logging.getLogger("gatewaytui.demo.upstream")


class _QuietAbort(logging.Filter):
    """``[cut:N abort]`` breaks a response off by raising ``Abort``; that deserves no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], Abort))


log.addFilter(_QuietAbort())

_NOT_JSON = object()


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # the parsed body (None when absent or not JSON)
    body: bytes = b""


@dataclass(slots=True)
class _KeyFault:
    status: int
    retry_after: float | None
    times: int | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeUpstream:
    """The fake provider. ``await handle(...)`` answers one request; ``asgi`` serves it over HTTP."""

    def __init__(
        self, *, accepted_keys: set[str] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.accepted_keys = accepted_keys
        self.clock = clock
        self.base_url: str | None = None  # set by ``serve`` while the upstream is being served
        self.requests: list[RecordedRequest] = []
        self.active_streams = 0
        self.cancelled_streams = 0  # streams that ended because the client went away
        self.completed_streams = 0
        self._faults: dict[str, _KeyFault] = {}
        self._quota: dict[str | None, dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self._key_requests: Counter[str | None] = Counter()
        self._directive_hits: Counter[str] = Counter()
        self._inflight: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------------------------ test controls

    def fail_key(
        self,
        key: str,
        status: int = 429,
        retry_after: float | None = None,
        times: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Fail requests made with credential ``key`` ("*" for any) with ``status`` in the wire's error
        envelope: ``times`` requests, or every one when None. ``body`` (dict, str or bytes) replaces the
        envelope; ``headers`` are added."""
        self._faults[key] = _KeyFault(status, retry_after, times, body, dict(headers or {}))

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_quota(
        self, key: str | None, *, five_hour: float, seven_day: float, status: str = "allowed"
    ) -> None:
        """Fix the unified 5h/7d utilisation (0..1) Anthropic headers report for ``key`` (None: every key).
        Otherwise they grow with the key's request count: 5h = 1% and 7d = 0.2% per request."""
        self._quota[key] = {"5h": five_hour, "7d": seven_day, "status": status}

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block (another thread runs the server) until ``predicate()`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """``wait_until`` for code running in the server's event loop."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    # ------------------------------------------------------------------------------------ the core

    async def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Reply:
        """Answer one request. A stream ``Reply`` must be iterated (or closed) by the caller."""
        headers = {k.lower(): v for k, v in headers.items()}
        path, _, raw_query = path.partition("?")
        query = {**dict(parse_qsl(raw_query, keep_blank_values=True)), **query}
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = _NOT_JSON
        self.requests.append(
            RecordedRequest(
                method.upper(), path, query, headers, None if parsed is _NOT_JSON else parsed, body
            )
        )
        seq = next(self._seq)
        found = route(method.upper(), path, headers)
        wire = found[0] if found else guess_wire(path, headers)
        key, bearer = credential(headers, query)
        self._key_requests[key] += 1
        ids = Ids(seq)
        env = Env(
            seq=seq,
            now=self.clock(),
            ids=ids,
            key=key,
            bearer=bearer,
            key_requests=self._key_requests[key],
            quota=self._quota_for(key),
            request_id=wire.make_request_id(ids),
        )
        if found is None:
            return wire.error_reply(404, env, reason="unknown_route")
        if key is None or (self.accepted_keys is not None and key not in self.accepted_keys):
            return wire.auth_error(env)
        fault = self._take_fault(key)
        if fault is not None:
            return _fault_reply(wire, env, fault)
        _, action, arg = found
        if action == "models":
            return models_reply(wire, arg, query, env)
        if not isinstance(parsed, dict):
            return wire.error_reply(
                400,
                env,
                "The request body is not valid JSON."
                if parsed is _NOT_JSON
                else "Expected a JSON object body.",
            )
        try:
            return await self._answer(wire, action, arg, parsed, query, env)
        except Invalid as exc:
            return wire.error_reply(exc.status, env, exc.message)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # a shape no reader foresaw
            return wire.error_reply(400, env, f"Invalid request: {type(exc).__name__}: {exc}")

    async def _answer(
        self,
        wire: ModuleType,
        action: str,
        model: str | None,
        body: dict[str, Any],
        query: dict[str, str],
        env: Env,
    ) -> Reply:
        if wire is fake_gemini:
            assert model is not None
            if action == "countTokens":
                return Reply.json(
                    200, fake_gemini.count_tokens(body, model), {"content-type": fake_gemini.CONTENT_TYPE}
                )
            conv = fake_gemini.read(
                body, model, stream=action == "streamGenerateContent", sse=query.get("alt") == "sse"
            )
        elif action == "count_tokens":
            return Reply.json(
                200,
                {"input_tokens": input_tokens(fake_anthropic.read(body, count_only=True))},
                {"request-id": env.request_id},
            )
        else:
            conv = wire.read(body)
        directives = parse_directives(conv.last_user_text)
        if directives.sleep_ms:
            await asyncio.sleep(directives.sleep_ms / 1000)
        fault = directives.fault
        if fault is not None:
            hits = self._directive_hits[conv.last_user_text] = self._directive_hits[conv.last_user_text] + 1
            if fault.times is None or hits <= fault.times:
                return wire.error_reply(
                    fault.status,
                    env,
                    quota=fault.quota,
                    retry_after=fault.retry_after,
                    retry_after_ms=fault.retry_after_ms,
                )
        plan = plan_reply(conv, directives)
        headers = wire.success_headers(plan, env)
        if conv.stream:
            headers.update({"content-type": stream_type(wire, conv.extra), "cache-control": "no-cache"})
            frames = wire.render_frames(plan, conv, env)
            chunks = shape_stream(frames, directives, lambda at: wire.error_frame(at, env, conv))
            return Reply(200, headers, stream=self._track(chunks))
        if directives.stall is not None:
            await asyncio.Event().wait()
        content_type = fake_gemini.CONTENT_TYPE if wire is fake_gemini else "application/json"
        data = b"" if directives.empty else orjson.dumps(wire.render_body(plan, conv, env))
        if directives.cut is not None:
            data = data[: len(data) // 2]
        return Reply(200, {**headers, "content-type": content_type}, data)

    async def _track(self, chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        self.active_streams += 1
        try:
            async for chunk in chunks:
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled_streams += 1
            raise
        else:
            self.completed_streams += 1
        finally:
            self.active_streams -= 1

    def _take_fault(self, key: str) -> _KeyFault | None:
        for name in (key, "*"):
            fault = self._faults.get(name)
            if fault is None:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(name, None)
            return fault
        return None

    def _quota_for(self, key: str | None) -> dict[str, Any]:
        fixed = self._quota.get(key) or self._quota.get(None)
        if fixed:
            return fixed
        n = self._key_requests[key]
        return {"5h": min(1.0, n / 100), "7d": min(1.0, n / 500), "status": "allowed"}

    # ------------------------------------------------------------------------------------ ASGI

    async def asgi(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        """A raw ASGI 3 application (HTTP and lifespan)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        respond = asyncio.ensure_future(
            self._respond(scope["method"], scope["path"], query, headers, bytes(body), send)
        )
        watch = asyncio.ensure_future(_until_disconnect(receive))
        self._inflight.add(respond)
        try:
            await asyncio.wait({respond, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            respond.cancel()
            watch.cancel()
            await asyncio.gather(respond, watch, return_exceptions=True)
            self._inflight.discard(respond)
        if not respond.cancelled() and respond.exception() is not None:
            raise respond.exception()  # type: ignore[misc]  # breaks the connection off ([cut:N abort])

    async def _respond(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        send: Callable[..., Any],
    ) -> None:
        reply = await self.handle(method, path, query, headers, body)
        out_headers = dict(reply.headers)
        if reply.stream is None:
            out_headers["content-length"] = str(len(reply.body))
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()],
            }
        )
        if reply.stream is None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        stream = reply.stream
        try:
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await stream.aclose()
        await send({"type": "http.response.body", "body": b""})

    async def cancel_inflight(self) -> None:
        """Stop every request being answered (server shutdown)."""
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fault_reply(wire: ModuleType, env: Env, fault: _KeyFault) -> Reply:
    reply: Reply = wire.error_reply(fault.status, env, retry_after=fault.retry_after)
    if fault.body is not None:
        if isinstance(fault.body, (dict, list)):
            reply.body = orjson.dumps(fault.body)
        else:
            reply.body = fault.body.encode() if isinstance(fault.body, str) else bytes(fault.body)
    reply.headers.update(fault.headers)
    return reply


async def _until_disconnect(receive: Callable[..., Any]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# ---------------------------------------------------------------------------------------------- serving


@asynccontextmanager
async def serve(upstream: FakeUpstream, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``upstream`` under Hypercorn in the running event loop; yields the base URL (``http://host:port``).

    The listening socket is bound before this yields, so port 0 picks a free port and clients may connect
    at once. On exit, requests still being answered (stalled streams) are cancelled and the server stops.
    """
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Config, Sockets
    from hypercorn.utils import wrap_app

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    config = Config()
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = 1.0
    stop = asyncio.Event()
    app = wrap_app(cast(Any, upstream.asgi), config.wsgi_max_body_size, "asgi")
    task = asyncio.ensure_future(
        worker_serve(app, config, sockets=Sockets([], [sock], []), shutdown_trigger=stop.wait)
    )
    await asyncio.sleep(0)
    if task.done():
        sock.close()
        task.result()
    bound = sock.getsockname()[1]
    upstream.base_url = f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    try:
        yield upstream.base_url
    finally:
        await upstream.cancel_inflight()
        stop.set()
        with suppress(asyncio.CancelledError):
            await task
        sock.close()


class ThreadedUpstream:
    """Runs a ``FakeUpstream`` on its own thread and event loop, for synchronous tests and the demo.

    ``with ThreadedUpstream() as up: up.base_url`` or ``start()`` / ``stop()``.
    """

    def __init__(self, upstream: FakeUpstream | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream or FakeUpstream()
        self.host, self.port = host, port
        self.base_url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> ThreadedUpstream:
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with serve(self.upstream, self.host, self.port) as url:
                self.base_url = url
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> ThreadedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gatewaytui.demo.upstream", description="Run the fake LLM upstream."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--key", action="append", dest="keys", help="accept only this key (repeatable)")
    args = parser.parse_args(argv)

    async def run() -> None:
        upstream = FakeUpstream(accepted_keys=set(args.keys) if args.keys else None)
        async with serve(upstream, args.host, args.port) as url:
            print(f"fake upstream listening on {url}", flush=True)
            await asyncio.Event().wait()

    with suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
