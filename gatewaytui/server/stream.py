"""A committed stream's body: relay the upstream's events in the client's protocol, meter them, report a
failure in-band, and settle exactly once whatever happens (its cleanup runs even when the client left)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from .. import tokens
from ..codec import FrameTooLarge
from ..deadline import within
from ..model import (
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Usage,
)
from ..runtime import Runtime
from ..upstream import TransportError
from .attempts import scrub_events, served
from .call import Attempt, Call
from .settlement import settle, settle_estimated, settle_soon

log = logging.getLogger("gatewaytui.relay")


def stream_content_type(call: Call) -> str:
    """Gemini without ``alt=sse`` streams a JSON array; everything else is SSE."""
    if call.protocol.NAME == "gemini" and not call.req.extras.get("gemini_sse", True):
        return getattr(call.protocol, "ARRAY_CONTENT_TYPE", "application/json")
    return call.protocol.STREAM_CONTENT_TYPE


async def abandon(rt: Runtime, task: asyncio.Task[Attempt]) -> None:
    """Stop an upstream try nobody will read; if it connected anyway, free its account slot and response."""
    task.cancel()
    try:
        at = await task
    except BaseException:  # noqa: BLE001 - cancelled or failed: attempt() cleaned up after itself
        return
    rt.pool.end(at.account)
    await at.response.aclose()


async def stream_body(call: Call, task: asyncio.Task[Attempt]) -> AsyncIterator[bytes]:
    rt = call.rt
    encoder = call.protocol.StreamEncoder(call.req, call.request_id)
    meter = Meter(call)
    at: Attempt | None = None
    outcome = "cancelled"
    error: str | None = None
    try:
        while not task.done():  # still failing over: keep the client's connection warm
            done, _ = await asyncio.wait({task}, timeout=rt.cfg.server.keepalive_interval)
            if not done:
                ping = encoder.keepalive()
                if ping:
                    yield ping
        exc = task.exception()
        if exc is not None:
            err = exc if isinstance(exc, GatewayError) else GatewayError("api_error", "upstream failed")
            outcome, error = "error", err.message
            yield encoder.encode(StreamError(err.kind, err.message, err.status)) + encoder.finish()
            return
        at = task.result()
        # the account's health and quota facts once the first chunk is out (two turns on: the connection
        # writes what a turn gathered at its end)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, served, rt, at.account, call.provider, at.response.headers)
        passthrough = at.upstream.passthrough and call.protocol.NAME == call.provider.WIRE
        call.flight.state = "streaming"
        call.flight.first_token = time.time()
        buffered = scrub_events(at.events, at.account, b"".join(at.buffered))
        out = meter.feed(at.events)
        injected = False  # passthrough: the gateway had to add an event of its own (an error)
        if passthrough:
            for e in out:  # the encoder follows the message, so an error it must add continues this one
                encoder.encode(e)
            yield buffered
        else:
            yield b"".join(encoder.encode(e) for e in out)
        buffered, out = b"", []  # delivered: an idle open stream keeps none of its first chunk
        at.buffered.clear()
        at.events.clear()
        if not at.ended:
            it = at.response.stream()
            idle = rt.cfg.server.stream_idle_timeout
            pending, at.rest = at.rest, b""  # the rest of the pre-read's burst comes first
            while not meter.finished:
                chunk = b""  # waiting (maybe long, on an idle stream), it holds no bytes already relayed
                events = []
                if pending:
                    chunk, pending = pending, b""
                else:
                    try:
                        chunk = await within(idle, it.__anext__())
                    except StopAsyncIteration:
                        events = meter.feed(at.parser.finish())
                        if (
                            passthrough
                        ):  # no upstream bytes carry what the parser concludes at the end (a cut)
                            events = [e for e in events if isinstance(e, StreamError)]
                            injected = injected or bool(events)
                        if events:
                            yield b"".join(encoder.encode(e) for e in events)
                        break
                    except (TimeoutError, TransportError) as exc:
                        reason = (
                            "upstream stalled"
                            if isinstance(exc, TimeoutError)
                            else "upstream connection broke"
                        )
                        meter.failed = f"{reason} mid-stream"
                        break
                try:
                    events = at.parser.feed(chunk)
                except FrameTooLarge as exc:
                    meter.failed = str(exc)
                    break
                chunk = scrub_events(events, at.account, chunk)
                meter.feed(events)
                if passthrough:
                    yield chunk
                elif events:
                    yield b"".join(encoder.encode(e) for e in events)
            while passthrough and meter.finished:  # the wire's own ending ([DONE], a closing "]") may follow
                try:
                    chunk = await within(min(idle, rt.cfg.server.keepalive_interval), it.__anext__())
                    events = at.parser.feed(chunk)
                except (StopAsyncIteration, TimeoutError, TransportError, FrameTooLarge):
                    break
                meter.feed(events)  # late usage still counts
                yield chunk
        if meter.failed and not meter.error_sent:
            meter.error_sent = injected = True
            yield encoder.encode(StreamError("api_error", meter.failed, 502))
        elif not meter.finished and not meter.failed:
            meter.failed = "upstream stream ended before completion"
            injected = True
            yield encoder.encode(StreamError("api_error", meter.failed, 502))
        tail = encoder.finish() if not passthrough or injected else b""  # passthrough: the upstream's own end
        if tail:
            yield tail
        outcome = "ok" if meter.finished and not meter.failed else "error"
        error = meter.failed
    finally:
        if at is None:  # never took the attempt over (client gone while failing over): cancel or release it
            rt.track(abandon(rt, task))
        usage = meter.usage() if at is not None else None
        if outcome == "cancelled":
            error = "client disconnected"
        http_status = 200 if outcome == "ok" else (499 if outcome == "cancelled" else 502)
        if usage is not None and meter.input_unreported():  # count the prompt off the loop, then settle
            settle_estimated(
                call, usage, estimate_input(call), status=outcome, http_status=http_status, error=error
            )
        elif outcome == "cancelled":
            settle(call, usage, status=outcome, http_status=http_status, error=error)
        else:  # the stream's end goes to the client first: the books close at the loop's next turn
            settle_soon(call, usage, status=outcome, http_status=http_status, error=error)
        if at is not None:
            rt.pool.end(at.account)
            rt.track(at.response.aclose())


class Meter:
    """Watches internal events: tokens so far, usage, completion, failures."""

    __slots__ = ("call", "usage_seen", "chars", "finished", "failed", "error_sent", "started")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.usage_seen = Usage()
        self.chars = 0
        self.finished = False
        self.failed: str | None = None
        self.error_sent = False
        self.started = False

    def feed(self, events: list[Event]) -> list[Event]:
        flight = self.call.flight
        for e in events:
            if isinstance(e, (TextDelta, ThinkingDelta)):
                self.chars += len(e.text)
            elif isinstance(e, ToolArgsDelta):
                self.chars += len(e.partial_json)
            elif isinstance(e, MessageStart):
                self.started = True
                self.usage_seen.merge(e.usage)
                flight.input_tokens = self.usage_seen.prompt_tokens
            elif isinstance(e, MessageDelta):
                self.usage_seen.merge(e.usage)
            elif isinstance(e, MessageStop):
                self.finished = True
            elif isinstance(e, StreamError):
                self.failed = e.message
                self.error_sent = True
        flight.output_tokens = (
            self.usage_seen.output_tokens
            if self.finished
            else max(self.usage_seen.output_tokens, (self.chars + 3) // 4)
        )
        flight.chunks += 1
        return events

    def usage(self) -> Usage:
        """Usage to bill: the upstream's report; for a cut stream, what was generated (estimated from text).
        A cut stream whose input was never reported (OpenAI reports it last) needs ``estimate_input`` too."""
        u = self.usage_seen.copy()
        if not self.finished or not u.output_tokens:  # a stream that ended without usage is estimated alike
            u.output_tokens = max(u.output_tokens, (self.chars + 3) // 4)
        return u

    def input_unreported(self) -> bool:
        """The upstream never reported the prompt (cut before OpenAI's last chunk, or a server without usage)."""
        return not self.usage_seen.prompt_tokens and not self.usage_seen.invalid


async def estimate_input(call: Call) -> int:
    """Prompt tokens the upstream consumed, counted with the model's tokenizer in ``rt.counting``'s threads
    (never on the loop); by the body's size (a byte is at most a token; 4 bytes a token is the estimate)
    when no tokenizer loads, the text is too large to count or the counting threads are saturated."""
    provider = call.rt.catalog.provider_module(call.model)
    try:
        encoding = tokens.encoding_for(provider, call.model.upstream)
        return await call.rt.counting.run(tokens.count_request, call.req, encoding)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the charge must not be lost
        log.warning("cannot count a cut stream's input on %s (%s): billing it by size", call.model.name, exc)
        return max(1, call.raw_len // 4)
