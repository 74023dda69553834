"""The one path every chat request takes, whatever protocol it arrived in.

    authenticate -> decode -> resolve model -> admit (hold credit or check quota)
    -> attempt accounts (failover before the first byte) -> [fallback models] -> answer / stream -> settle

Streams: the relay waits a short commit window for the first upstream event. Failures inside the window
become proper HTTP errors (and fail over); after it, the client gets a 200 with keep-alives while the
relay keeps trying, and any later failure is reported in-band in the client's protocol. Content is never
retried once a byte of it reached the client. Settlement is synchronous bookkeeping (no await), so a
client disconnect that cancels the handler cannot skip or double it; an answer delivered whole (non-streamed,
or a stream to its end) marks its call settled at once and closes the books at the loop's next turn, after
its last bytes went to the server (``settlement.settle_soon``).

Fallbacks: when no account of the model can serve (all cooling or disabled, or every attempt failed before
the first byte), ``serve`` re-admits the request on the model's configured fallbacks in turn (its hold,
key budget and token rates resized to the fallback's worst case; a fallback the key may not use, or that
does not fit, is skipped) and tries that model's accounts: the provider module re-encodes the request for
it. Nothing reached the client yet, so this is still failover; the answer is billed at the model that
answered, and the usage row names both.

Here: admission, fallbacks and the answer's shape. ``attempts`` tries accounts (failover), ``stream`` relays and
meters a committed stream, ``settlement`` closes the books; ``call`` holds the records they share.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..billing import pricing, server_tools
from ..billing.limits import Ticket
from ..billing.wallet import Hold
from ..codec import dumps, loads_request
from ..config import ModelConfig
from ..model import (
    ChatRequest,
    GatewayError,
    Text,
)
from ..providers import registry
from ..runtime import Runtime
from ..store import bodies
from ..traffic import Flight
from .attempts import Unserved, connect, served
from .call import Attempt, Call
from .protocols import PROTOCOLS, Reply, error_reply
from .settlement import settle, settle_soon
from .stream import abandon, stream_body, stream_content_type

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


# a \u escape (it can spell any key), then each hostile key as it appears in JSON text
_HOSTILE_TEXT = (b"\\u", *(f'"{key}"'.encode() for key in sorted(HOSTILE_KEYS)))


def may_name_hostile(data: bytes) -> bool:
    """Whether a JSON body's text can hold a hostile key: plainly spelled, a key is in the text between
    quotes; spelled with a \\u escape, it can be anything. Most bodies hold none: their tree is not walked."""
    for text in _HOSTILE_TEXT:  # 8 substring searches: ~0.3 ms over 95 KB of text, its tree's walk ~1.2 ms
        if text in data:
            return True
    return False


def decode(
    proto: Any, body: dict[str, Any] | bytes, model: str | None, stream: bool | None, headers: dict[str, str]
) -> ChatRequest:
    """Parse (when given bytes), strip upstream-steering fields and decode into the model: CPU work that grows
    with the body, so ``handle`` runs it off the loop for large bodies."""
    if isinstance(body, bytes):
        text, body = body, loads_request(body)
        if may_name_hostile(text):
            strip_hostile(body)
    else:
        strip_hostile(body)
    return proto.decode_request(body, model=model, stream=stream, headers=headers)


def input_bound(raw_len: int, req: ChatRequest) -> int:
    """An upper bound on prompt tokens: a token is at least one byte of the request body."""
    return max(1, raw_len)


@dataclass(slots=True)
class Terms:
    """What admitting a request on one model means: its price and the worst case to hold."""

    model: ModelConfig
    price: pricing.Price
    max_tokens: int  # the output ceiling sent upstream
    worst: int  # micro-USD (0: a subscription key, no credit held)
    tokens: int  # the input bound plus the output ceiling (token-rate limits)


def terms(
    rt: Runtime,
    call_key: dict[str, Any],
    req: ChatRequest,
    model: ModelConfig,
    route: str,
    raw_len: int,
    asked_max_tokens: int | None,
    *,
    fallback: bool = False,
) -> Terms:
    """Check that the key may use ``model`` for this request (allow-list, quota, caps) and size its worst
    case. A fallback must be on the key's allow-list by its own name: the name the client asked for does
    not open another model."""
    allowed = call_key.get("models") or []
    if allowed and model.name not in allowed and (fallback or req.model not in allowed):
        raise GatewayError("permission", f"this key may not use model {model.name!r}")
    price = pricing.Price.of(model)
    max_tokens = asked_max_tokens if asked_max_tokens is not None else model.max_tokens
    subscription = call_key["kind"] == "subscription"
    tools = server_tools.bound(req, model)
    if subscription:
        rt.quota.check(call_key, model, route)
    preset_bytes = len(str(req.extras.get("preset_system") or "").encode("utf-8", "surrogatepass"))
    bound = input_bound(raw_len, req) + preset_bytes + pricing.url_media_tokens(req) + tools.input_tokens
    worst = 0 if subscription else pricing.worst_case(price, bound, max_tokens, tools.uses)
    if not subscription:
        rt.caps.check(call_key["tenant_id"], model, worst)
    return Terms(model, price, max_tokens, worst, bound + max_tokens)


def admit(
    rt: Runtime, call_key: dict[str, Any], req: ChatRequest, route: str, raw_len: int, request_id: str
) -> tuple[ModelConfig, Hold, pricing.Price, bool, Ticket]:
    model = rt.catalog.resolve(req.model)
    subscription = call_key["kind"] == "subscription"
    t = terms(rt, call_key, req, model, route, raw_len, req.max_tokens)
    if not subscription and req.max_tokens is None:
        req.max_tokens = t.max_tokens  # the hold's ceiling is sent upstream, so output cannot outgrow it
    ticket = rt.limits.admit(call_key, t.worst, t.tokens)  # key budget, token rates
    try:
        if subscription:
            hold = rt.wallet.free_hold(call_key["tenant_id"], request_id)
        else:
            hold = rt.wallet.hold(call_key["tenant_id"], t.worst, request_id)
    except GatewayError:
        rt.limits.close(ticket, None, 0)
        raise
    return model, hold, t.price, subscription, ticket


async def switch(call: Call, model: ModelConfig) -> None:
    """Re-admit the call on a fallback model: its key-budget and token-rate tickets, then its credit hold
    (in the shared store too), resized to the new worst case; then aim it there. Refused (GatewayError):
    the fallback is skipped and the call is never served on its earlier model again, so a ticket already
    resized stays so until the call settles or moves on (at most the larger worst case, never less)."""
    rt = call.rt
    t = terms(rt, call.key, call.req, model, call.route, call.raw_len, call.asked_max_tokens, fallback=True)
    call.ticket = rt.limits.admit(call.key, t.worst, t.tokens, replacing=call.ticket)
    await rt.wallet.resize(call.hold, t.worst, call.ticket)
    if not call.subscription and call.asked_max_tokens is None:
        call.req.max_tokens = t.max_tokens
    call.model, call.price = model, t.price
    call.provider = registry.get(rt.catalog.provider_module(model))
    call.flight.model, call.flight.upstream_model = model.name, model.upstream
    call.flight.hold_micro = call.hold.amount


async def serve(call: Call, *, stream: bool) -> Attempt:
    """Try the model's accounts; when none can serve, the model's fallbacks in order (nothing has reached
    the client yet). Raises the requested model's error when no fallback could serve either."""
    try:
        return await connect(call, stream=stream)
    except Unserved as err:
        first = err
    tried = []
    for model in call.rt.catalog.fallback_chain(call.asked_for):
        try:
            await switch(call, model)
        except GatewayError as refused:  # the key may not use it, or its worst case does not fit
            call.errors.append(f"fallback {model.name}: {refused.message}")
            continue
        tried.append(model.name)
        call.rt.bus.publish(
            "request.fallback", id=call.request_id, model=call.asked_for.name, fallback=model.name
        )
        try:
            return await connect(call, stream=stream)
        except Unserved:
            continue
    if tried:
        first.message += f"; its fallbacks could not serve it either ({', '.join(tried)})"
    raise first


async def handle(
    rt: Runtime,
    protocol_name: str,
    route: str,
    key: dict[str, Any],
    body: dict[str, Any] | bytes,
    raw_len: int,
    headers: dict[str, str],
    request_id: str,
    *,
    model: str | None = None,
    stream: bool | None = None,
    extras: dict[str, Any] | None = None,
) -> Reply:
    """Serve one chat request (``body``: the JSON bytes, or already parsed); every error comes back in the
    client's protocol."""
    proto = PROTOCOLS[protocol_name]
    received = time.time()
    try:
        # one huge body must not stall every other request on the loop
        req = await rt.decoding.sized(raw_len, decode, proto, body, model, stream, headers)
        if extras:
            req.extras.update(extras)
        apply_preset(rt, route, req)
        asked_max_tokens = req.max_tokens
        model_cfg, hold, price, subscription, ticket = admit(rt, key, req, route, raw_len, request_id)
        if getattr(rt, "shared", False):  # a PostgreSQL store: the cluster-wide reservation (shared_wallet)
            await rt.wallet.secure(hold, ticket)  # with the key's budget and token rates
    except GatewayError as err:
        rt.telemetry.rejected(protocol_name, route, request_id, err, key, received)
        return error_reply(protocol_name, err, request_id)
    provider = registry.get(rt.catalog.provider_module(model_cfg))
    flight = rt.traffic.open(
        Flight(
            id=request_id,
            received=received,
            route=route,
            protocol=protocol_name,
            tenant=key.get("tenant") or "",
            tenant_id=key["tenant_id"],
            key_id=key["id"],
            key_label=key.get("label"),
            model=model_cfg.name,
            upstream_model=model_cfg.upstream,
            requested_model=model_cfg.name,
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
        ticket=ticket,
        requested=model_cfg,
        asked_max_tokens=asked_max_tokens,
    )
    call.capture = bodies.Capture.begin(rt.cfg.console, body)  # None unless [console] store_bodies
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
        call.rt.track(abandon(call.rt, call.upstream))


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


# ---------------------------------------------------------------- answers


def _response_headers(call: Call) -> dict[str, str]:
    return {"request-id": call.request_id, "x-request-id": call.request_id}


async def unary_response(call: Call) -> Reply:
    try:
        at = await serve(call, stream=False)
    except GatewayError as err:
        settle(call, None, status="error", http_status=err.status, error=err.message)
        return error_reply(call.protocol.NAME, err, call.request_id)
    rt = call.rt
    try:
        assert at.result is not None
        # the account's health and quota facts after the answer is out (the loop's next turn, before any
        # other request is read): the client does not wait for them
        asyncio.get_running_loop().call_soon(served, rt, at.account, call.provider, at.response.headers)
        call.flight.first_token = time.time()
        passthrough = at.upstream.passthrough and call.protocol.NAME == call.provider.WIRE
        if passthrough and at.raw_body is not None:
            payload = at.raw_body
        else:
            if call.fell_back:  # a fallback answered: say which model did
                at.result.model = call.model.name
            elif not at.result.model or at.result.model == call.model.upstream:
                at.result.model = call.req.model or call.model.name
            payload = dumps(call.protocol.encode_response(at.result, call.req))
        if call.capture is not None:
            call.capture.respond(payload)
        settle_soon(call, at.result.usage, status="ok", http_status=200)  # after the bytes are handed over
        return Reply(200, payload, headers=_response_headers(call))
    finally:
        rt.pool.end(at.account)


async def stream_response(call: Call) -> Reply:
    """The stream's answer once its upstream committed (or failed), or after ``keepalive_interval`` with the
    upstream still failing over: the client then gets the headers and keep-alive pings meanwhile."""
    rt = call.rt
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()  # opened by the upstream try's end or by the timer
    task = call.upstream = loop.create_task(_serve_then_open(call, gate))
    timer = loop.call_later(rt.cfg.server.keepalive_interval, _open, gate)
    try:
        await gate
    except BaseException:  # the client went away inside the commit window: the upstream try goes too
        rt.track(abandon(rt, task))
        raise
    finally:
        timer.cancel()
    if task.done():
        exc = task.exception()
        if isinstance(exc, GatewayError):
            settle(call, None, status="error", http_status=exc.status, error=exc.message)
            return error_reply(call.protocol.NAME, exc, call.request_id)
        if exc is not None:
            raise exc
    headers = {**_response_headers(call), "cache-control": "no-cache", "x-accel-buffering": "no"}
    body = stream_body(call, task)
    if call.capture is not None:
        body = call.capture.tee(body)
    return Reply(200, body, stream_content_type(call), headers, ready=task.done())


async def _serve_then_open(call: Call, gate: asyncio.Future[None]) -> Attempt:
    """``serve`` for a stream, opening ``gate`` as it ends: the handler waiting on the gate resumes at the
    loop's next turn, where ``asyncio.wait`` on the task would take two (its callback, then its waiter)."""
    try:
        return await serve(call, stream=True)
    finally:
        _open(gate)


def _open(gate: asyncio.Future[None]) -> None:
    if not gate.done():  # done: already opened, or cancelled with the handler
        gate.set_result(None)
