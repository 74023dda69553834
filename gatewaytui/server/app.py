"""The Quart application: the client-protocol routes, discovery, health, and the blueprints."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..codec import dumps, loads_request
from ..model import GatewayError
from ..runtime import Runtime
from . import discovery, relay
from .auth import presented_key
from .protocols import error_response

log = logging.getLogger("gatewaytui.server")

TOOL_ROUTES = ("claudecode", "cline", "cursor", "roocode")
ROUTE_PREFIX = "/<any(claudecode, cline, cursor, roocode):route>"
MAX_HEADER_BYTES = 32 * 1024  # h11 bounds only an incomplete header block: up to ~128 KB complete ones get through


def protocol_for_path(path: str) -> str:
    if "/messages" in path:
        return "anthropic"
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
        return "gemini"
    if path.startswith("/v1/responses"):
        return "openai_responses"
    return "openai_chat"


def create_app(rt: Runtime) -> Quart:
    app = Quart("gatewaytui")
    app.config["MAX_CONTENT_LENGTH"] = int(rt.cfg.server.max_body_mb * 1024 * 1024)
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 120
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.extensions["gatewaytui"] = rt

    @app.before_request
    async def bounded_headers() -> None:
        if sum(len(k) + len(v) for k, v in request.headers.items()) > MAX_HEADER_BYTES:
            raise GatewayError("request_too_large", f"request headers exceed {MAX_HEADER_BYTES // 1024} KB", status=431)

    async def read_json() -> tuple[dict[str, Any], int]:
        data = await request.get_data(cache=False)
        assert isinstance(data, bytes)
        return loads_request(data), len(data)

    async def chat(protocol: str, route: str, *, model: str | None = None, stream: bool | None = None,
                   extras: dict[str, Any] | None = None, allow_query_key: bool = False) -> Response:
        request_id = relay.new_request_id()
        try:
            key = rt.keyring.authenticate(presented_key(request.headers, request.args if allow_query_key else None))
            if route == "v1" and key["kind"] == "subscription":
                raise GatewayError(
                    "permission",
                    "subscription keys may only call the tool routes (/claudecode, /cline, /cursor, /roocode); "
                    "use a pay-per-token key for this route",
                )
            rt.keyring.check_rpm(key)
            body, size = await read_json()
        except GatewayError as err:
            return error_response(protocol, err, request_id)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await relay.handle(rt, protocol, route, key, body, size, headers, request_id,
                                  model=model, stream=stream, extras=extras)

    @app.post("/v1/messages")
    async def messages() -> Response:
        return await chat("anthropic", "v1")

    @app.post(ROUTE_PREFIX + "/v1/messages")
    async def tool_messages(route: str) -> Response:
        return await chat("anthropic", route)

    @app.post("/v1/chat/completions")
    @app.post("/chat/completions")
    async def chat_completions() -> Response:
        return await chat("openai_chat", "v1")

    @app.post("/v1/responses")
    @app.post("/responses")
    async def responses() -> Response:
        return await chat("openai_responses", "v1")

    @app.post("/v1beta/models/<path:target>")
    @app.post("/v1/models/<path:target>")
    async def gemini(target: str) -> Response:
        model, _, verb = target.partition(":")
        if verb in ("generateContent", "streamGenerateContent"):
            stream = verb == "streamGenerateContent"
            extras = {"gemini_sse": request.args.get("alt") == "sse"}
            return await chat("gemini", "v1", model=model, stream=stream, extras=extras, allow_query_key=True)
        if verb == "countTokens":
            return await discovery.gemini_count_tokens(rt, model)
        err = GatewayError("not_found", f"unknown method {verb or target!r}; expected :generateContent, :streamGenerateContent or :countTokens")
        return error_response("gemini", err, relay.new_request_id())

    discovery.register(app, rt, ROUTE_PREFIX, read_json)
    _register_blueprints(app, rt)

    @app.errorhandler(GatewayError)
    async def gateway_error(err: GatewayError) -> Response:
        return error_response(protocol_for_path(request.path), err, relay.new_request_id())

    @app.errorhandler(RequestEntityTooLarge)
    async def too_large(_: Exception) -> Response:
        limit = rt.cfg.server.max_body_mb
        err = GatewayError("request_too_large", f"request body exceeds the {limit:g} MB limit")
        return error_response(protocol_for_path(request.path), err, relay.new_request_id())

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        kind = {404: "not_found", 405: "invalid_request", 413: "request_too_large"}.get(status, "invalid_request")
        message = {404: f"no route for {request.method} {request.path[:200]}", 405: f"method {request.method} not allowed on {request.path[:200]}"}.get(status, exc.description or "bad request")
        err = GatewayError(kind, message, status=status)
        return error_response(protocol_for_path(request.path), err, relay.new_request_id())

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        err = GatewayError("api_error", "internal gateway error; the request was not billed")
        return error_response(protocol_for_path(request.path), err, relay.new_request_id())

    return app


def _register_blueprints(app: Quart, rt: Runtime) -> None:
    """Admin, tenant, billing and event-stream APIs live in their own modules."""
    import importlib

    for name in ("admin", "tenant", "stripe_webhook", "events", "openapi"):
        try:
            module = importlib.import_module(f"gatewaytui.server.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gatewaytui.server.{name}":
                continue
            raise
        module.register(app, rt)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status=status, headers=headers or {}, content_type="application/json")
