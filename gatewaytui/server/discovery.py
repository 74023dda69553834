"""Discovery and counting: models lists in each protocol's shape, count_tokens, health."""

from __future__ import annotations

import time
from typing import Any

from quart import Quart, Response, request

from .. import tokens
from ..billing.pricing import Price
from ..codec import dumps, loads_request
from ..config import ModelConfig
from ..model import GatewayError
from ..protocols import anthropic
from ..runtime import Runtime
from . import limits
from .auth import presented_key, require_route
from .protocols import GEMINI_METHODS, PROTOCOLS, error_response, new_request_id
from .relay import apply_preset

CREATED = 1_700_000_000


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status=status, content_type="application/json")


def _pricing(m: ModelConfig) -> dict[str, Any]:
    p = Price.of(m)
    return {"currency": "USD", "unit": "per_million_tokens", **p.usd_per_mtok()}


def openai_models(rt: Runtime) -> dict[str, Any]:
    data = []
    for name, m in rt.catalog.names():
        entry: dict[str, Any] = {
            "id": name,
            "object": "model",
            "created": CREATED,
            "owned_by": m.provider,
            "pricing": _pricing(m),
        }
        if name != m.name:
            entry["alias_of"] = m.name
        data.append(entry)
    return {"object": "list", "data": data}


def anthropic_model(name: str, m: ModelConfig) -> dict[str, Any]:
    return {
        "type": "model",
        "id": name,
        "display_name": m.display_name or name,
        "created_at": "2025-01-01T00:00:00Z",
        "max_input_tokens": m.context_window,
        "max_tokens": m.max_tokens,
    }


def gemini_model(name: str, m: ModelConfig) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": m.display_name or name,
        "description": f"{m.name} via gatewaytui ({m.provider})",
        "inputTokenLimit": m.context_window,
        "outputTokenLimit": m.max_tokens,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    }


def _gemini_method(model_id: str) -> bool:
    """A model path that ends in one of Gemini's methods (``gemini-2.5-flash:generateContent``)."""
    _, colon, method = model_id.rpartition(":")
    return bool(colon) and method in GEMINI_METHODS


def _post_only() -> Response:
    err = limits.method_not_allowed(request.method, request.path, ": Gemini's methods take POST")
    return error_response("gemini", err, new_request_id(), {"allow": "OPTIONS, POST"})


def register(app: Quart, rt: Runtime, route_prefix: str) -> None:
    def authed(protocol: str) -> GatewayError | None:
        try:
            rt.keyring.authenticate(
                presented_key(request.headers, request.args if protocol == "gemini" else None)
            )
        except GatewayError as err:
            return err
        return None

    def gemini_client() -> bool:  # google-genai 3.x lists models at /v1/models
        return (
            "x-goog-api-key" in request.headers
            or "x-goog-api-client" in request.headers
            or "key" in request.args
        )

    @app.get("/v1/models")
    @app.get("/models")
    async def list_models() -> Response:
        if gemini_client():
            return await gemini_models()
        anthropic_style = "anthropic-version" in request.headers
        err = authed("anthropic" if anthropic_style else "openai_chat")
        if err:
            return error_response("anthropic" if anthropic_style else "openai_chat", err, new_request_id())
        if anthropic_style:
            data = [anthropic_model(n, m) for n, m in rt.catalog.names()]
            return _json(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )
        return _json(openai_models(rt))

    @app.get("/v1/models/<path:model_id>")
    async def get_model(model_id: str) -> Response:
        if _gemini_method(model_id):
            return _post_only()
        anthropic_style = "anthropic-version" in request.headers
        protocol = (
            "anthropic"
            if anthropic_style
            else ("gemini" if model_id.startswith("models/") or gemini_client() else "openai_chat")
        )
        err = authed(protocol)
        try:
            if err:
                raise err
            name = model_id.removeprefix("models/")
            m = rt.catalog.resolve(name)
        except GatewayError as exc:
            return error_response(protocol, exc, new_request_id())
        if anthropic_style:
            return _json(anthropic_model(name, m))
        if protocol == "gemini":
            return _json(gemini_model(name, m))
        return _json(
            {
                "id": name,
                "object": "model",
                "created": CREATED,
                "owned_by": m.provider,
                "pricing": _pricing(m),
            }
        )

    @app.get("/v1beta/models")
    async def gemini_models() -> Response:
        err = authed("gemini")
        if err:
            return error_response("gemini", err, new_request_id())
        return _json({"models": [gemini_model(n, m) for n, m in rt.catalog.names()]})

    @app.get("/v1beta/models/<path:model_id>")
    async def gemini_get_model(model_id: str) -> Response:
        if _gemini_method(model_id):
            return _post_only()
        err = authed("gemini")
        try:
            if err:
                raise err
            m = rt.catalog.resolve(model_id)
        except GatewayError as exc:
            return error_response("gemini", exc, new_request_id())
        return _json(gemini_model(model_id, m))

    async def count_tokens(route: str) -> Response:
        try:
            require_route(rt.keyring.authenticate(presented_key(request.headers)), route)
            data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
            return _json({"input_tokens": await rt.counting.run(_count_messages, rt, route, data)})
        except GatewayError as err:
            return error_response("anthropic", err, new_request_id())

    @app.post("/v1/messages/count_tokens")
    @app.post("/messages/count_tokens")
    async def count_v1() -> Response:
        return await count_tokens("v1")

    @app.post(route_prefix + "/v1/messages/count_tokens")
    @app.post(route_prefix + "/messages/count_tokens")
    async def count_route(route: str) -> Response:
        return await count_tokens(route)

    @app.get("/health")
    async def health() -> Response:
        accounts = rt.pool.snapshot()
        healthy = sum(1 for a in accounts if a["health"] == "healthy")
        status = "ok" if healthy else ("degraded" if accounts else "no_accounts")
        slim = [
            {
                k: a[k]
                for k in (
                    "id",
                    "label",
                    "provider",
                    "health",
                    "enabled",
                    "inflight",
                    "cooldown",
                    "disabled_reason",
                )
            }
            for a in accounts
        ]
        return _json(
            {
                "status": "draining" if rt.draining else status,
                "uptime_s": round(time.time() - rt.started_at, 1),
                "inflight": len(rt.traffic.inflight),
                "writes_pending": rt.writer.pending,  # queued usage/ledger writes: should stay near zero
                "accounts": slim,
                "models": [m.name for m in rt.catalog.models.values()],
            }
        )


def count_for(rt: Runtime, req: Any) -> int:
    """A decoded request's prompt tokens (CPU work: runs in ``rt.counting``'s threads, never on the loop)."""
    m = rt.catalog.resolve(req.model)
    try:
        return tokens.count_request(req, tokens.encoding_for(rt.catalog.provider_module(m), m.upstream))
    except tokens.TokenizerUnavailable as exc:
        raise GatewayError("not_found", f"cannot count tokens for model {req.model!r}: {exc}") from None


def _count_messages(rt: Runtime, route: str, data: bytes) -> int:
    """Anthropic count_tokens: parse, decode and count, all off the loop."""
    req = anthropic.decode_request(loads_request(data), count_only=True)
    apply_preset(rt, route, req)  # the route's preset system prompt is sent too: it counts
    return count_for(rt, req)


def _count_gemini(rt: Runtime, model: str, data: bytes) -> int:
    """Gemini countTokens (a bare request or one wrapped in ``generateContentRequest``), off the loop."""
    body = loads_request(data)
    inner = body.get("generateContentRequest")
    req = PROTOCOLS["gemini"].decode_request(
        inner if isinstance(inner, dict) else body, model=model, stream=False
    )
    return count_for(rt, req)


async def gemini_count_tokens(rt: Runtime, model: str) -> Response:
    try:
        rt.keyring.authenticate(presented_key(request.headers, request.args))
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)  # the bytes overload
        return _json({"totalTokens": await rt.counting.run(_count_gemini, rt, model, data)})
    except GatewayError as err:
        return error_response("gemini", err, new_request_id())
