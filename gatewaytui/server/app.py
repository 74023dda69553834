"""The Quart application: discovery, counting, health and the blueprints; the chat routes ride the lane
in front of it (lane.py)."""

from __future__ import annotations

import logging

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..model import GatewayError
from ..runtime import Runtime
from . import admin, discovery, events, limits, metrics_route, openapi, stripe_webhook, tenant
from .lane import ChatLane
from .protocols import TOOL_ROUTES, error_response, new_request_id, protocol_for_path

log = logging.getLogger("gatewaytui.server")

ROUTE_PREFIX = "/<any(" + ", ".join(TOOL_ROUTES) + "):route>"


def create_app(rt: Runtime) -> Quart:
    app = Quart("gatewaytui", static_folder=None)  # no /static route: the gateway serves no files
    app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes(rt.cfg.server)
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = limits.BODY_TIMEOUT
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.extensions["gatewaytui"] = rt

    @app.before_request
    async def bounded_headers() -> None:
        limits.check_header_size(sum(len(k) + len(v) for k, v in request.headers.items()))

    @app.post("/v1beta/models/<path:target>")
    @app.post("/v1/models/<path:target>")
    async def gemini(target: str) -> Response:  # :generateContent and :streamGenerateContent are the lane's
        model, _, verb = target.partition(":")
        if verb == "countTokens" and model:
            return await discovery.gemini_count_tokens(rt, model)
        expected = "expected /v1beta/models/{model}:generateContent, :streamGenerateContent or :countTokens"
        if not verb:  # the model itself: it can be read (GET), not posted to
            err = GatewayError(
                "invalid_request", f"no method after the model {target[:200]!r}; {expected}", status=405
            )
            return error_response("gemini", err, new_request_id(), {"allow": "GET"})
        if not model:
            err = GatewayError("not_found", f"the path names no model before :{verb[:60]}; {expected}")
        else:
            err = GatewayError("not_found", f"unknown method {verb[:60]!r}; {expected}")
        return error_response("gemini", err, new_request_id())

    discovery.register(app, rt, ROUTE_PREFIX)
    _register_blueprints(app, rt)
    # the chat routes skip Quart's router. Quart types asgi_app (a method) with TypedDict ASGI messages, the
    # lane with the plain dicts the server really passes: the same protocol, so mypy's objections don't apply
    app.asgi_app = ChatLane(app.asgi_app, rt)  # type: ignore[method-assign, assignment, arg-type]

    @app.errorhandler(GatewayError)
    async def gateway_error(err: GatewayError) -> Response:
        return error_response(protocol_for_path(request.path), err, new_request_id())

    @app.errorhandler(RequestEntityTooLarge)
    async def too_large(_: Exception) -> Response:
        return error_response(
            protocol_for_path(request.path), limits.body_too_large(rt.cfg.server), new_request_id()
        )

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        kind = {404: "not_found", 405: "invalid_request", 413: "request_too_large"}.get(
            status, "invalid_request"
        )
        message = {
            404: f"no route for {request.method} {request.path[:200]}",
            405: f"method {request.method} not allowed on {request.path[:200]}",
        }.get(status, exc.description or "bad request")
        err = GatewayError(kind, message, status=status)
        return error_response(protocol_for_path(request.path), err, new_request_id())

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(protocol_for_path(request.path), limits.internal_error(), new_request_id())

    return app


def _register_blueprints(app: Quart, rt: Runtime) -> None:
    """Admin, tenant, billing and event-stream APIs live in their own modules."""
    for module in (admin, tenant, stripe_webhook, events, openapi, metrics_route):
        module.register(app, rt)
