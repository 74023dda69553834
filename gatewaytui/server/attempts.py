"""Upstream attempts and failover: try accounts in order until one answers; for a stream, read until content
flows (an error or an empty stream first is a failure, so failover can still happen)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..codec import FrameTooLarge
from ..deadline import within
from ..model import (
    BlockStart,
    Event,
    GatewayError,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
)
from ..pool.account import Account
from ..pool.affinity import session_of, sticky_key
from ..providers.base import ProviderModule, UpstreamError
from ..runtime import Runtime
from ..upstream import ConnectFailed, Response, TooLarge, TransportError
from .call import Attempt, Call

log = logging.getLogger("gatewaytui.server")

CONTENT_EVENTS = (BlockStart, MessageDelta, MessageStop)


class Unserved(GatewayError):
    """No account of the model could serve the request (none healthy, or every one failed before the first
    byte for a reason of its own): the relay may try the model's fallbacks."""


OPENING_EVENTS = (MessageStart, BlockStart)  # what precedes the first token


async def connect(call: Call, *, stream: bool) -> Attempt:
    """Try accounts in order until one answers; raise a client-facing GatewayError if none can."""
    rt = call.rt
    deadline = time.monotonic() + rt.cfg.server.failover_deadline
    provider_name = rt.catalog.provider_module(call.model)
    tried: set[str] = set()
    last: UpstreamError | None = None
    causes: list[str] = []
    session = session_of(call.req, call.flight.headers)
    keyed: list[str | None] = []

    def sticky() -> str | None:  # hashed only when the model has accounts to choose between
        if not keyed:
            keyed.append(sticky_key(call.req, session))
        return keyed[0]

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
        try:  # the attempt's own deadline, without an extra task (unlike wait_for)
            return await within(
                min(remaining, rt.cfg.server.first_byte_timeout), attempt(call, acc, stream=stream)
            )
        except UpstreamError as err:
            last = err
        except (
            TimeoutError
        ):  # the request's own deadline: maybe the request (a long answer), maybe the account
            last = UpstreamError(504, "timeout", f"upstream account {acc.label} did not answer in time")
            rt.pool.failure(acc, last, call.model.upstream, tenant=call.key["tenant_id"])
        call.errors.append(f"{acc.label}: {last.status} {last.cause}")
        rt.telemetry.attempt_failed(call, acc, last)
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
            missing = last.to_gateway_error()
            raise Unserved(
                missing.kind,
                missing.message,
                status=missing.status,
                retry_after=missing.retry_after,
                code=missing.code,
            )
    retry = rt.pool.earliest_recovery(provider_name, call.model.upstream, call.model.name)
    detail = f" (last error: {last.status} {last.cause}: {last.message})" if last else ""
    raise Unserved(
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
        up = await rt.decoding.sized(  # encoding a huge request is CPU work: off the loop
            call.raw_len, call.provider.build_request, call.req, call.model.upstream, acc.credentials()
        )
    except (
        orjson.JSONEncodeError
    ) as exc:  # a value the upstream's JSON cannot carry (an integer past 64 bits)
        raise GatewayError(
            "invalid_request", f"the request has a value the upstream cannot accept: {exc}"
        ) from None
    rt.pool.begin(acc)
    assert rt.upstream is not None
    response: Response | None = None
    ok = False
    try:
        try:
            rt.backlog.soon()  # earlier answers' bookkeeping runs while this one's upstream answers
            response = await rt.upstream.post(up.url, up.body, up.headers)
        except TransportError as exc:  # nothing answered: never re-sent on this account, failover decides
            what = "cannot reach" if isinstance(exc, ConnectFailed) else "lost the connection to"
            raise _fail(
                rt, acc, call, UpstreamError(502, "connection", f"{what} upstream {acc.label}: {exc}")
            ) from None
        up.body = b""  # sent; a long stream need not keep it (an orjson result holds a ~4 KB buffer)
        if response.status_code != 200:
            body = await _read_error(response)
            err = call.provider.classify_error(response.status_code, response.headers, body)
            raise _fail(rt, acc, call, err, call.provider.read_quota(response.headers))
        result = Attempt(acc, response, up)
        if stream:
            result.parser = call.provider.StreamParser(call.req)
            await _preread(call, result)
        else:
            try:
                body = await response.aread()
            except TransportError as exc:
                raise _fail(rt, acc, call, _read_failure(exc)) from None
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


def served(rt: Runtime, account: Account, provider: ProviderModule, headers: Mapping[str, str]) -> None:
    """Record that ``account`` answered (its health, its quota headers): called once the answer is out, so
    the client does not wait for it."""
    try:
        rt.pool.success(account, provider.read_quota(headers))
    except Exception:  # noqa: BLE001 - the answer is out; the fault is the gateway's to report
        log.exception("recording an answer of account %s failed", account.label)


def _fail(
    rt: Runtime, acc: Account, call: Call, err: UpstreamError, quota: dict[str, Any] | None = None
) -> UpstreamError:
    err.message = scrub(err.message, acc)  # before it reaches the client, the log, the database or the bus
    rt.pool.failure(acc, err, call.model.upstream, quota, tenant=call.key["tenant_id"])
    rt.bus.publish(
        "request.attempt_failed", id=call.request_id, account=acc.label, status=err.status, cause=err.cause
    )
    return err


def _secrets(acc: Account) -> list[str]:
    return acc.secrets()


def scrub(text: str, acc: Account) -> str:
    """Upstreams sometimes repeat the credential they were sent in an error message: never pass it on."""
    return acc.scrub(text)


def scrub_events(events: list[Event], acc: Account, raw: bytes = b"") -> bytes:
    """Scrub in-band upstream errors in place; returns ``raw`` (passthrough bytes) scrubbed alike."""
    for e in events:
        if isinstance(e, StreamError):
            e.message = scrub(e.message, acc)
            for secret in _secrets(acc):
                raw = raw.replace(secret.encode(), b"[redacted]")
    return raw


async def _read_error(response: Response) -> bytes:
    """An error answer's body (empty if it cannot be read: the status still tells what happened)."""
    try:
        return await response.aread()
    except TransportError:
        return b""


def _read_failure(exc: TransportError) -> UpstreamError:
    if isinstance(exc, TooLarge):  # the request asked for it: the client's error, no other account tried
        return UpstreamError(502, "too_large", f"the upstream's answer is too large for the gateway: {exc}")
    return UpstreamError(502, "connection", f"upstream answer cut short: {exc}")


async def _preread(call: Call, at: Attempt) -> None:
    """Read until the first content event; an error or an empty stream first is a failure (fail over).

    A read often brings a burst (a fast upstream's whole answer at once): it is parsed an SSE event at a time
    only until content flows, and the rest is left in ``at.rest`` unparsed, so the first token goes out
    before the rest of the burst is parsed and encoded."""
    it = at.response.stream()
    while True:
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            at.events.extend(at.parser.finish())
            at.ended = True
            break
        except TransportError as exc:
            raise _fail(
                call.rt,
                at.account,
                call,
                UpstreamError(502, "connection", f"upstream stream broke before the first event: {exc}"),
            ) from None
        while chunk:
            end = chunk.find(b"\n\n") + 2  # the end of its first event (an incremental parser takes any cut)
            piece, chunk = (chunk[:end], chunk[end:]) if end > 1 else (chunk, b"")
            at.buffered.append(piece)
            try:
                at.events.extend(at.parser.feed(piece))
            except FrameTooLarge as exc:
                raise _fail(call.rt, at.account, call, UpstreamError(502, "too_large", str(exc))) from None
            if _committable(at.events):
                at.rest = chunk
                break
        if at.rest or _committable(at.events):
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
