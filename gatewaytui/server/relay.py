"""The one path every chat request takes, whatever protocol it arrived in.

    authenticate -> decode -> resolve model -> admit (hold credit or check quota)
    -> attempt accounts (failover before the first byte) -> answer / stream -> settle

Streams: the relay waits a short commit window for the first upstream event. Failures inside the window
become proper HTTP errors (and fail over); after it, the client gets a 200 with keep-alives while the
relay keeps trying, and any later failure is reported in-band in the client's protocol. Content is never
retried once a byte of it reached the client. Settlement is synchronous bookkeeping (no await), so a
client disconnect that cancels the handler cannot skip or double it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import httpx
import orjson

from .. import tokens
from ..billing import pricing
from ..billing.wallet import Hold
from ..codec import dumps
from ..config import ModelConfig
from ..model import (
    BlockStart,
    ChatRequest,
    ChatResponse,
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    Text,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    Usage,
)
from ..pool.account import Account
from ..pool.affinity import affinity
from ..providers import registry
from ..providers.base import UpstreamError, UpstreamRequest
from ..runtime import Runtime
from ..store import ledger as ledger_store
from ..store import requests as request_store
from ..traffic import Flight
from .protocols import PROTOCOLS, Reply, error_reply

log = logging.getLogger("gatewaytui.relay")

HOSTILE_KEYS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "azure_endpoint",
        "organization",
        "custom_llm_provider",
    }
)
SCHEMA_KEYS = frozenset({"properties", "input", "args", "arguments", "input_schema", "parameters", "schema"})
CONTENT_EVENTS = (BlockStart, MessageDelta, MessageStop)
OPENING_EVENTS = (MessageStart, BlockStart)  # what precedes the first token


@dataclass(slots=True)
class Call:
    """One client request in flight through the relay."""

    rt: Runtime
    protocol: ModuleType
    route: str
    request_id: str
    key: dict[str, Any]
    req: ChatRequest
    model: ModelConfig
    provider: ModuleType
    hold: Hold
    flight: Flight
    price: pricing.Price
    subscription: bool = False
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    settled: bool = False
    upstream: asyncio.Task[Attempt] | None = None  # a stream's upstream try (connect), once started
    raw_len: int = 0  # the request body's size in bytes


@dataclass(slots=True)
class Attempt:
    """An upstream that answered 200: its response, and for streams what was read before committing."""

    account: Account
    response: httpx.Response
    upstream: UpstreamRequest
    parser: Any = None
    buffered: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    ended: bool = False
    result: ChatResponse | None = None
    raw_body: bytes | None = None


def strip_hostile(node: Any, depth: int = 0) -> Any:
    """Remove upstream-steering fields (api_base, api_key, ...) at any depth, outside schemas and tool inputs."""
    if depth > 64:
        return node
    if isinstance(node, dict):
        for key in [k for k in node if k in HOSTILE_KEYS]:
            del node[key]
        for key, value in node.items():
            # a top-level "input" is the Responses conversation, not a tool's input: it is searched too
            if (depth == 0 or key not in SCHEMA_KEYS) and isinstance(value, (dict, list)):
                strip_hostile(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                strip_hostile(item, depth + 1)
    return node


def input_bound(raw_len: int, req: ChatRequest) -> int:
    """An upper bound on prompt tokens: a token is at least one byte of the request body."""
    return max(1, raw_len)


def admit(
    rt: Runtime, call_key: dict[str, Any], req: ChatRequest, route: str, raw_len: int, request_id: str
) -> tuple[ModelConfig, Hold, pricing.Price, bool]:
    model = rt.catalog.resolve(req.model)
    allowed = call_key.get("models") or []
    if allowed and model.name not in allowed and req.model not in allowed:
        raise GatewayError("permission", f"this key may not use model {model.name!r}")
    price = pricing.Price.of(model)
    max_tokens = req.max_tokens if req.max_tokens is not None else model.max_tokens
    subscription = call_key["kind"] == "subscription"
    quota = getattr(rt, "quota", None)
    if subscription:
        if quota is not None:
            quota.check(call_key, model, route)
        return model, rt.wallet.free_hold(call_key["tenant_id"], request_id), price, True
    if req.max_tokens is None:
        req.max_tokens = max_tokens  # the hold's ceiling is sent upstream, so output cannot outgrow it
    if req.thinking is not None and req.thinking.budget_tokens:
        max_tokens = max(
            max_tokens, req.thinking.budget_tokens + 1024
        )  # encoders may raise max_tokens past the budget
    preset_bytes = len(str(req.extras.get("preset_system") or "").encode("utf-8", "surrogatepass"))
    bound = input_bound(raw_len, req) + preset_bytes + pricing.url_media_tokens(req)
    worst = pricing.worst_case(price, bound, max_tokens)
    caps = getattr(rt, "caps", None)
    if caps is not None:
        caps.check(call_key["tenant_id"], model, worst)
    return model, rt.wallet.hold(call_key["tenant_id"], worst, request_id), price, False


async def handle(
    rt: Runtime,
    protocol_name: str,
    route: str,
    key: dict[str, Any],
    body: dict[str, Any],
    raw_len: int,
    headers: dict[str, str],
    request_id: str,
    *,
    model: str | None = None,
    stream: bool | None = None,
    extras: dict[str, Any] | None = None,
) -> Reply:
    """Serve one chat request; every error comes back in the client's protocol."""
    proto = PROTOCOLS[protocol_name]
    try:
        strip_hostile(body)
        req = proto.decode_request(body, model=model, stream=stream, headers=headers)
        if extras:
            req.extras.update(extras)
        apply_preset(rt, route, req)
        model_cfg, hold, price, subscription = admit(rt, key, req, route, raw_len, request_id)
    except GatewayError as err:
        return error_reply(protocol_name, err, request_id)
    provider = registry.get(rt.catalog.provider_module(model_cfg))
    flight = rt.traffic.open(
        Flight(
            id=request_id,
            route=route,
            protocol=protocol_name,
            tenant=key.get("tenant") or "",
            tenant_id=key["tenant_id"],
            key_id=key["id"],
            key_label=key.get("label"),
            model=model_cfg.name,
            upstream_model=model_cfg.upstream,
            stream=req.stream,
            hold_micro=hold.amount,
            headers=headers,
        )
    )
    rt.bus.publish(
        "request.started",
        id=request_id,
        tenant=flight.tenant,
        model=model_cfg.name,
        route=route,
        stream=req.stream,
    )
    call = Call(
        rt,
        proto,
        route,
        request_id,
        key,
        req,
        model_cfg,
        provider,
        hold,
        flight,
        price,
        subscription,
        raw_len=raw_len,
    )
    task = asyncio.current_task()
    if task is not None:  # the handler's task also sends the stream: cancelling it cuts the request cleanly
        rt.request_tasks[request_id] = task
        task.add_done_callback(lambda _: _orphaned(call))
    try:
        if req.stream:
            return await stream_response(call)
        return await unary_response(call)
    except BaseException:
        if not call.settled:  # cancelled or crashed before an answer: nothing was delivered
            settle(
                call, None, status="cancelled", http_status=499, error="client went away before the answer"
            )
        raise


def _orphaned(call: Call) -> None:
    """The handler's task ended. A stream's body settles in its own cleanup, in this same task; if it is still
    unsettled, the body never started (the client left between the handler's return and the first byte)."""
    if call.settled:
        return
    settle(call, None, status="cancelled", http_status=499, error="client went away before the answer")
    if call.upstream is not None:
        call.rt.track(_abandon(call.rt, call.upstream))


def apply_preset(rt: Runtime, route: str, req: ChatRequest) -> None:
    preset = rt.presets.get(route) if route != "v1" else None
    if not preset:
        return
    system = preset.get("system") or ""
    if system:
        req.extras["preset_system"] = system
        req.system.insert(0, Text(system))
    defaults = preset.get("defaults") or {}
    req.extras["preset_defaults"] = defaults
    if req.max_tokens is None and isinstance(defaults.get("max_tokens"), int):
        req.max_tokens = defaults["max_tokens"]
    if req.temperature is None and isinstance(defaults.get("temperature"), (int, float)):
        req.temperature = float(defaults["temperature"])


# ---------------------------------------------------------------- attempts and failover


async def connect(call: Call, *, stream: bool) -> Attempt:
    """Try accounts in order until one answers; raise a client-facing GatewayError if none can."""
    rt = call.rt
    deadline = time.monotonic() + rt.cfg.server.failover_deadline
    provider_name = rt.catalog.provider_module(call.model)
    tried: set[str] = set()
    last: UpstreamError | None = None
    causes: list[str] = []
    aff = affinity(call.req, call.flight.headers)
    sticky, session = (aff.key, aff.session) if aff else (None, None)
    for _ in range(max(1, rt.cfg.routing.max_attempts)):
        candidates = [
            a
            for a in rt.pool.candidates(
                provider_name, call.model.upstream, call.model.name, sticky, session=session
            )
            if a.id not in tried
        ]
        if not candidates:
            break
        acc = candidates[0]
        tried.add(acc.id)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        rt.pool.claim(call.request_id, session, acc.id)
        call.attempts += 1
        call.flight.attempts = call.attempts
        call.flight.account, call.flight.account_id, call.flight.state = acc.label, acc.id, "waiting"
        try:
            async with asyncio.timeout(
                min(remaining, rt.cfg.server.first_byte_timeout)
            ):  # no extra task, unlike wait_for
                return await attempt(call, acc, stream=stream)
        except UpstreamError as err:
            last = err
        except TimeoutError:
            last = UpstreamError(504, "timeout", f"upstream account {acc.label} did not answer in time")
            rt.pool.failure(acc, last, call.model.upstream)
        call.errors.append(f"{acc.label}: {last.status} {last.cause}")
        causes.append(last.cause)
        if not last.retryable:
            raise last.to_gateway_error()
    if last is not None and not last.retryable:
        raise last.to_gateway_error()
    if last is not None and causes and all(c == "model_not_found" for c in causes):
        others = [
            a
            for a in rt.pool.serving(provider_name, call.model.upstream, call.model.name)
            if a.id not in tried and a.enabled
        ]
        if not others:  # every account lacks the model: the client's 404, not an outage
            raise last.to_gateway_error()
    retry = rt.pool.earliest_recovery(provider_name, call.model.upstream, call.model.name)
    detail = f" (last error: {last.status} {last.cause}: {last.message})" if last else ""
    raise GatewayError(
        "unavailable",
        f"no healthy upstream account for model {call.model.name}{detail}",
        retry_after=retry or 30.0,
    )


async def attempt(call: Call, acc: Account, *, stream: bool) -> Attempt:
    """One upstream try. Returns only when the answer is known good enough to commit to."""
    rt = call.rt
    assert rt.http is not None
    if acc.oauth and rt.oauth is not None:
        await rt.oauth.ensure_fresh(acc)  # refreshes an expiring token (one refresh per account at a time)
    try:
        up = call.provider.build_request(call.req, call.model.upstream, acc.credentials())
    except (
        orjson.JSONEncodeError
    ) as exc:  # a value the upstream's JSON cannot carry (an integer past 64 bits)
        raise GatewayError(
            "invalid_request", f"the request has a value the upstream cannot accept: {exc}"
        ) from None
    rt.pool.begin(acc)
    response: httpx.Response | None = None
    ok = False
    try:
        try:
            opener = getattr(
                rt.http, "open_upstream", None
            )  # runtime.UpstreamClient: past httpx, onto the transport
            if opener is not None:
                response = await opener(up.url, up.body, up.headers)
            else:
                request = rt.http.build_request("POST", up.url, content=up.body, headers=up.headers)
                response = await rt.http.send(request, stream=True)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
        ) as exc:  # httpx-aiohttp reports refusals as ConnectTimeout
            raise _fail(
                rt,
                acc,
                call,
                UpstreamError(502, "connection", f"cannot reach upstream {acc.label}: {type(exc).__name__}"),
            ) from None
        except httpx.TimeoutException as exc:
            raise _fail(
                rt, acc, call, UpstreamError(504, "timeout", f"upstream timed out: {type(exc).__name__}")
            ) from None
        except httpx.HTTPError as exc:
            raise _fail(
                rt,
                acc,
                call,
                UpstreamError(502, "connection", f"cannot reach upstream {acc.label}: {type(exc).__name__}"),
            ) from None
        up.body = b""  # sent; a long stream need not keep it (an orjson result holds a ~4 KB buffer)
        if response.status_code != 200:
            body = await _read_all(response)
            err = call.provider.classify_error(response.status_code, response.headers, body)
            raise _fail(rt, acc, call, err, call.provider.read_quota(response.headers))
        result = Attempt(acc, response, up)
        if stream:
            result.parser = call.provider.StreamParser(call.req)
            await _preread(call, result)
        else:
            body = await _read_all(response)
            try:
                result.result = call.provider.parse_response(body, call.req)
            except GatewayError:
                raise
            except UpstreamError as err:  # e.g. an error envelope delivered with HTTP 200
                raise _fail(rt, acc, call, err) from None
            except Exception:
                raise _fail(
                    rt, acc, call, UpstreamError(502, "server", "upstream returned an unreadable response")
                ) from None
            result.raw_body = body
        ok = True
        return result
    finally:
        if not ok:
            rt.pool.end(acc)
            if response is not None:
                await response.aclose()


def _fail(
    rt: Runtime, acc: Account, call: Call, err: UpstreamError, quota: dict[str, Any] | None = None
) -> UpstreamError:
    err.message = scrub(err.message, acc)  # before it reaches the client, the log, the database or the bus
    rt.pool.failure(acc, err, call.model.upstream, quota)
    rt.bus.publish(
        "request.attempt_failed", id=call.request_id, account=acc.label, status=err.status, cause=err.cause
    )
    return err


def _secrets(acc: Account) -> list[str]:
    return acc.secrets()


def scrub(text: str, acc: Account) -> str:
    """Upstreams sometimes repeat the credential they were sent in an error message: never pass it on."""
    return acc.scrub(text)


def _scrub_events(events: list[Event], acc: Account, raw: bytes = b"") -> bytes:
    """Scrub in-band upstream errors in place; returns ``raw`` (passthrough bytes) scrubbed alike."""
    for e in events:
        if isinstance(e, StreamError):
            e.message = scrub(e.message, acc)
            for secret in _secrets(acc):
                raw = raw.replace(secret.encode(), b"[redacted]")
    return raw


async def _read_all(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.HTTPError:
        return b""


async def _preread(call: Call, at: Attempt) -> None:
    """Read until the first content event; an error or an empty stream first is a failure (fail over)."""
    it = at.response.aiter_raw().__aiter__()
    at.response.extensions["gatewaytui_iter"] = it
    while True:
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            at.events.extend(at.parser.finish())
            at.ended = True
            break
        except httpx.HTTPError:
            raise _fail(
                call.rt,
                at.account,
                call,
                UpstreamError(502, "connection", "upstream stream broke before the first event"),
            ) from None
        at.buffered.append(chunk)
        at.events.extend(at.parser.feed(chunk))
        if _committable(at.events):
            break
    first_error = next((e for e in at.events if isinstance(e, StreamError)), None)
    has_content = any(isinstance(e, CONTENT_EVENTS) for e in at.events)
    if first_error is not None and not _has_content_before(at.events):
        cause = "overloaded" if first_error.kind == "overloaded" else "server"
        raise _fail(
            call.rt,
            at.account,
            call,
            UpstreamError(
                first_error.status if first_error.status >= 500 else 502, cause, first_error.message
            ),
        )
    if not has_content:
        raise _fail(call.rt, at.account, call, UpstreamError(502, "server", "upstream sent an empty stream"))


def _committable(events: list[Event]) -> bool:
    """An error, or content that has begun to flow: a block's start alone is usually followed at once by its
    first delta, and waiting for it sends headers and first token in one go."""
    if not any(isinstance(e, CONTENT_EVENTS) for e in events):
        return any(isinstance(e, StreamError) for e in events)
    return not all(isinstance(e, OPENING_EVENTS) for e in events)


def _has_content_before(events: list[Event]) -> bool:
    for e in events:
        if isinstance(e, StreamError):
            return False
        if isinstance(e, CONTENT_EVENTS):
            return True
    return False


# ---------------------------------------------------------------- answers


def _response_headers(call: Call, at: Attempt | None = None) -> dict[str, str]:
    return {"request-id": call.request_id, "x-request-id": call.request_id}


async def unary_response(call: Call) -> Reply:
    try:
        at = await connect(call, stream=False)
    except GatewayError as err:
        settle(call, None, status="error", http_status=err.status, error=err.message)
        return error_reply(call.protocol.NAME, err, call.request_id)
    rt = call.rt
    try:
        assert at.result is not None
        rt.pool.success(at.account, call.provider.read_quota(at.response.headers))
        call.flight.first_token = time.time()
        passthrough = at.upstream.passthrough and call.protocol.NAME == call.provider.WIRE
        if passthrough and at.raw_body is not None:
            payload = at.raw_body
        else:
            if not at.result.model or at.result.model == call.model.upstream:
                at.result.model = call.req.model or call.model.name
            payload = dumps(call.protocol.encode_response(at.result, call.req))
        settle(call, at.result.usage, status="ok", http_status=200)
        return Reply(200, payload, headers=_response_headers(call, at))
    finally:
        rt.pool.end(at.account)


async def stream_response(call: Call) -> Reply:
    rt = call.rt
    task = call.upstream = asyncio.create_task(connect(call, stream=True))
    try:
        done, _ = await asyncio.wait({task}, timeout=rt.cfg.server.keepalive_interval)
    except BaseException:  # the client went away inside the commit window: the upstream try goes too
        rt.track(_abandon(rt, task))
        raise
    if task in done:
        exc = task.exception()
        if isinstance(exc, GatewayError):
            settle(call, None, status="error", http_status=exc.status, error=exc.message)
            return error_reply(call.protocol.NAME, exc, call.request_id)
        if exc is not None:
            raise exc
    headers = {**_response_headers(call), "cache-control": "no-cache", "x-accel-buffering": "no"}
    return Reply(200, _stream_body(call, task), stream_content_type(call), headers, ready=task in done)


def stream_content_type(call: Call) -> str:
    """Gemini without ``alt=sse`` streams a JSON array; everything else is SSE."""
    if call.protocol.NAME == "gemini" and not call.req.extras.get("gemini_sse", True):
        return getattr(call.protocol, "ARRAY_CONTENT_TYPE", "application/json")
    return call.protocol.STREAM_CONTENT_TYPE


async def _abandon(rt: Runtime, task: asyncio.Task[Attempt]) -> None:
    """Stop an upstream try nobody will read; if it connected anyway, free its account slot and response."""
    task.cancel()
    try:
        at = await task
    except BaseException:  # noqa: BLE001 - cancelled or failed: attempt() cleaned up after itself
        return
    rt.pool.end(at.account)
    await at.response.aclose()


async def _stream_body(call: Call, task: asyncio.Task[Attempt]) -> AsyncIterator[bytes]:
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
        rt.pool.success(at.account, call.provider.read_quota(at.response.headers))
        passthrough = at.upstream.passthrough and call.protocol.NAME == call.provider.WIRE
        call.flight.state = "streaming"
        call.flight.first_token = time.time()
        buffered = _scrub_events(at.events, at.account, b"".join(at.buffered))
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
            it = at.response.extensions["gatewaytui_iter"]
            idle = rt.cfg.server.stream_idle_timeout
            while not meter.finished:
                try:
                    async with asyncio.timeout(idle):
                        chunk = await it.__anext__()
                except StopAsyncIteration:
                    events = meter.feed(at.parser.finish())
                    if (
                        passthrough
                    ):  # no upstream bytes carry what the parser concludes at the end (a cut stream)
                        events = [e for e in events if isinstance(e, StreamError)]
                        injected = injected or bool(events)
                    if events:
                        yield b"".join(encoder.encode(e) for e in events)
                    break
                except (TimeoutError, httpx.HTTPError) as exc:
                    reason = (
                        "upstream stalled" if isinstance(exc, TimeoutError) else "upstream connection broke"
                    )
                    meter.failed = f"{reason} mid-stream"
                    break
                events = at.parser.feed(chunk)
                chunk = _scrub_events(events, at.account, chunk)
                meter.feed(events)
                if passthrough:
                    yield chunk
                elif events:
                    yield b"".join(encoder.encode(e) for e in events)
            while passthrough and meter.finished:  # the wire's own ending ([DONE], a closing "]") may follow
                try:
                    async with asyncio.timeout(min(idle, rt.cfg.server.keepalive_interval)):
                        chunk = await it.__anext__()
                except (StopAsyncIteration, TimeoutError, httpx.HTTPError):
                    break
                meter.feed(at.parser.feed(chunk))  # late usage still counts
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
            rt.track(_abandon(rt, task))
        usage = meter.usage() if at is not None else None
        if outcome == "cancelled":
            error = "client disconnected"
        settle(
            call,
            usage,
            status=outcome,
            http_status=200 if outcome == "ok" else (499 if outcome == "cancelled" else 502),
            error=error,
        )
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
        """Usage to bill: the upstream's report; for a cut stream, what was generated (estimated from text)."""
        u = Usage(**{f: getattr(self.usage_seen, f) for f in Usage.__dataclass_fields__})
        if not self.finished:
            u.output_tokens = max(u.output_tokens, (self.chars + 3) // 4)
            if not u.prompt_tokens:  # cut before the upstream reported usage (OpenAI reports it last)
                u.input_tokens = estimate_input(self.call)
        return u


def estimate_input(call: Call) -> int:
    """Prompt tokens the upstream consumed, counted with the model's tokenizer (a byte bound if none loads)."""
    provider = call.rt.catalog.provider_module(call.model)
    try:
        return tokens.count_request(call.req, tokens.encoding_for(provider, call.model.upstream))
    except Exception:  # noqa: BLE001 - a tokenizer that cannot load must not lose the charge
        log.warning("no tokenizer for %s: billing a cut stream's input by its size", call.model.name)
        return max(1, call.raw_len // 4)


# ---------------------------------------------------------------- settlement


def settle(
    call: Call, usage: Usage | None, *, status: str, http_status: int, error: str | None = None
) -> None:
    """Exactly once per request: close the hold, journal hold+settlement with the usage row, publish."""
    if call.settled:
        return
    call.settled = True
    rt = call.rt
    flight = call.flight
    billable = usage is not None and (
        usage.output_tokens or usage.input_tokens or usage.cache_read_tokens or usage.cache_write_tokens
    )
    cost = pricing.cost(usage, call.price) if billable and usage is not None else None
    entries = rt.wallet.close(call.hold, cost.total_micro if cost is not None else None)
    now = time.time()
    flight.ended = now
    flight.state = {"ok": "done", "cancelled": "cancelled"}.get(status, "error")
    flight.status = http_status
    flight.error = error
    if cost is not None and usage is not None:
        flight.cost_micro = cost.total_micro
        flight.output_tokens = usage.output_tokens
        flight.input_tokens = usage.prompt_tokens
        flight.line_items = cost.items
    u = usage or Usage()
    row = {
        "id": call.request_id,
        "tenant_id": call.key["tenant_id"],
        "key_id": call.key["id"],
        "route": call.route,
        "protocol": call.protocol.NAME,
        "model": call.model.name,
        "upstream_model": call.model.upstream,
        "account_id": flight.account_id or None,
        "stream": int(call.req.stream),
        "status": status,
        "http_status": http_status,
        "input_tokens": u.input_tokens if cost else 0,
        "output_tokens": u.output_tokens if cost else 0,
        "cache_read_tokens": u.cache_read_tokens if cost else 0,
        "cache_write_5m_tokens": u.cache_write_5m_tokens if cost else 0,
        "cache_write_1h_tokens": u.cache_write_1h_tokens if cost else 0,
        "reasoning_tokens": u.reasoning_tokens if cost else 0,
        "cost_micro": cost.total_micro if cost else 0,
        "hold_micro": call.hold.amount,
        "line_items": cost.items if cost else None,
        "price": call.price.json,
        "error": error,
        "attempts": call.attempts,
        "started_at": flight.started,
        "ttft_ms": (flight.first_token - flight.started) * 1000 if flight.first_token else None,
        "duration_ms": (now - flight.started) * 1000,
        "day": time.strftime("%Y-%m-%d", time.gmtime(flight.started)),
    }
    tenant_id, request_id, origin = call.key["tenant_id"], call.request_id, rt.wallet.origin
    journal = [(request_store.INSERT, request_store.values(row))]
    journal += [
        (
            ledger_store.INSERT,
            ledger_store.entry(tenant_id, kind, amount, idem, request_id=request_id, origin=origin),
        )
        for kind, amount, idem in entries
    ]
    rt.writer.insert(journal)  # the usage row and its ledger entries, in one go
    if (
        getattr(rt, "quota", None) is not None
        and call.subscription
        and cost is not None
        and usage is not None
    ):
        rt.quota.record(call.key["tenant_id"], usage)
    rt.traffic.close(flight)
    rt.request_tasks.pop(call.request_id, None)
    rt.bus.publish(
        "request.finished",
        id=call.request_id,
        tenant=flight.tenant,
        tenant_id=tenant_id,
        model=call.model.name,
        status=status,
        http_status=http_status,
        cost_micro=row["cost_micro"],
        account=flight.account,
        balance_micro=rt.wallet.balance[tenant_id],
    )
