"""The OpenAPI 3 document for the gateway's HTTP API, served at ``GET /openapi.json``.

It describes every route the app serves: the four client protocols (request fields the gateway reads,
success bodies, and each protocol's own error envelope), discovery and health, the tenant API and Stripe
webhook, and the operator's admin and console APIs. Model names are listed from the running catalog, so
the document says which values succeed; any other name is a documented 404.

The test suite runs schemathesis over this document against a live gateway (``tests/test_openapi.py``):
the document is a contract, not decoration.
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Response

from ..codec import dumps
from ..config import PROVIDERS, ROUTES, STRATEGIES
from ..runtime import Runtime

JSON = "application/json"
SSE = "text/event-stream"
Schema = dict[str, Any]

STR: Schema = {"type": "string"}
SSE_EVENT: Schema = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    "description": "one server-sent event; data is the protocol's JSON (or [DONE])",
}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def arr(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def register(app: Quart, rt: Runtime) -> None:
    @app.get("/openapi.json")
    async def openapi_document() -> Response:
        return Response(dumps(document(rt)), content_type=JSON)


# ---------------------------------------------------------------------- the document


def document(rt: Runtime) -> dict[str, Any]:
    models = sorted({name for name, _ in rt.catalog.names()})
    paths: dict[str, Any] = {}
    paths.update(_protocol_paths(models))
    paths.update(_discovery_paths())
    paths.update(_tenant_paths())
    paths.update(_admin_paths())
    paths.update(_console_paths())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "gatewaytui",
            "version": "1",
            "description": "A self-hosted LLM API gateway: Anthropic Messages, OpenAI Chat Completions, OpenAI "
            "Responses and Gemini generateContent in front of a pool of upstream accounts, with tenant "
            "keys, prepaid credit and an operator API. Errors come back in the caller's protocol.",
        },
        "servers": [{"url": (rt.cfg.server.public_url or rt.base_url).rstrip("/")}],
        "paths": paths,
        "components": {"schemas": _schemas(models), "securitySchemes": SECURITY_SCHEMES},
    }


SECURITY_SCHEMES: dict[str, Any] = {
    "tenantBearer": {"type": "http", "scheme": "bearer", "description": "a tenant key (gw-...)"},
    "tenantApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "tenantGoogKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
    "tenantQueryKey": {"type": "apiKey", "in": "query", "name": "key"},
    "adminBearer": {"type": "http", "scheme": "bearer", "description": "the admin token (admin_token_env)"},
}
# OpenAPI security requirements: any one of the listed schemes (scheme name -> scopes) admits the caller
Security = list[dict[str, list[str]]]
TENANT: Security = [{"tenantBearer": []}, {"tenantApiKey": []}, {"tenantGoogKey": []}]
GEMINI_TENANT: Security = [*TENANT, {"tenantQueryKey": []}]
ADMIN: Security = [{"adminBearer": []}]

# Statuses every protocol route may answer with; upstream 4xx errors that cannot fail over pass through.
PROTOCOL_ERRORS = {
    "400": "invalid request (malformed JSON, wrong types, unsupported field values)",
    "401": "missing or unknown tenant key",
    "402": "not enough credit for the request's worst case",
    "403": "the key may not use this route or model",
    "404": "unknown model or route",
    "413": "request body too large",
    "429": "rate limited (the key's RPM, or every upstream account)",
    "431": "request headers too large",
    "500": "internal gateway error (never billed)",
    "502": "the upstream failed or answered with something unusable",
    "503": "no healthy upstream account",
    "504": "the upstream timed out",
    "529": "every upstream account is overloaded",
    "4XX": "an upstream client error passed through",
}


def _error_responses(schema: str, codes: dict[str, str]) -> dict[str, Any]:
    return {
        code: {"description": text, "content": {JSON: {"schema": ref(schema)}}}
        for code, text in codes.items()
    }


def _ok(
    schema: Schema, description: str = "OK", *, stream: bool = False, stream_json: bool = False
) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if stream:
        content[SSE] = {"schema": SSE_EVENT}
    if stream_json:  # Gemini's JSON-array stream shares application/json with the unary answer
        content[JSON] = {"schema": {"anyOf": [schema, arr(schema)]}}
    return {"description": description, "content": content}


def _body(schema: Schema, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _op(
    summary: str,
    *,
    tags: list[str],
    security: Security | None,
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
    parameters: list[Any] | None = None,
    op_id: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "operationId": op_id, "tags": tags, "responses": responses}
    out["security"] = security if security is not None else []
    if body is not None:
        out["requestBody"] = body
    if parameters:
        out["parameters"] = parameters
    return out


def _path_param(name: str, schema: Schema | None = None, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or STR, "description": description}


def _query(name: str, schema: Schema, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# ---------------------------------------------------------------------- client protocols


def _protocol_paths(models: list[str]) -> dict[str, Any]:
    anthropic_errors = _error_responses("AnthropicError", PROTOCOL_ERRORS)
    openai_errors = _error_responses("OpenAIError", PROTOCOL_ERRORS)
    gemini_errors = _error_responses("GeminiError", PROTOCOL_ERRORS)
    route = _path_param(
        "route", {"type": "string", "enum": list(ROUTES)}, "a tool-tuned route with its preset"
    )
    paths: dict[str, Any] = {}

    def messages(op_id: str, params: list[Any] | None = None) -> dict[str, Any]:
        return {
            "post": _op(
                "Anthropic Messages (streamed with stream: true)",
                tags=["anthropic"],
                security=TENANT,
                op_id=op_id,
                body=_body(ref("AnthropicRequest")),
                parameters=params,
                responses={"200": _ok(ref("AnthropicMessage"), stream=True), **anthropic_errors},
            )
        }

    def count(op_id: str, params: list[Any] | None = None) -> dict[str, Any]:
        return {
            "post": _op(
                "Count the input tokens of an Anthropic request",
                tags=["anthropic"],
                security=TENANT,
                op_id=op_id,
                body=_body(ref("AnthropicCountRequest")),
                parameters=params,
                responses={"200": _ok(obj({"input_tokens": INT}, ("input_tokens",))), **anthropic_errors},
            )
        }

    paths["/v1/messages"] = messages("messages")
    paths["/{route}/v1/messages"] = messages("tool_messages", [route])
    paths["/v1/messages/count_tokens"] = count("count_tokens")
    paths["/{route}/v1/messages/count_tokens"] = count("tool_count_tokens", [route])
    for prefix, suffix in (("", ""), ("/v1", "_v1")):
        paths[f"{prefix}/chat/completions"] = {
            "post": _op(
                "OpenAI Chat Completions (streamed with stream: true)",
                tags=["openai"],
                security=TENANT,
                op_id=f"chat_completions{suffix}",
                body=_body(ref("ChatRequest")),
                responses={"200": _ok(ref("ChatCompletion"), stream=True), **openai_errors},
            )
        }
        paths[f"{prefix}/responses"] = {
            "post": _op(
                "OpenAI Responses, stateless (streamed with stream: true)",
                tags=["openai"],
                security=TENANT,
                op_id=f"responses{suffix}",
                body=_body(ref("ResponsesRequest")),
                responses={"200": _ok(ref("ResponsesObject"), stream=True), **openai_errors},
            )
        }
    model = _path_param("model", {"type": "string", "enum": models}, "a model configured on this gateway")
    alt = _query(
        "alt", {"type": "string", "enum": ["sse"]}, "sse: server-sent events instead of a JSON array"
    )
    for base in ("/v1beta/models", "/v1/models"):
        tag = base.split("/")[1]
        paths[f"{base}/{{model}}:generateContent"] = {
            "post": _op(
                "Gemini generateContent",
                tags=["gemini"],
                security=GEMINI_TENANT,
                op_id=f"generate_content_{tag}",
                body=_body(ref("GeminiRequest")),
                parameters=[model],
                responses={"200": _ok(ref("GeminiResponse")), **gemini_errors},
            )
        }
        paths[f"{base}/{{model}}:streamGenerateContent"] = {
            "post": _op(
                "Gemini streamGenerateContent (a JSON array, or SSE with alt=sse)",
                tags=["gemini"],
                security=GEMINI_TENANT,
                op_id=f"stream_generate_content_{tag}",
                body=_body(ref("GeminiRequest")),
                parameters=[model, alt],
                responses={
                    "200": {
                        "description": "the stream",
                        "content": {JSON: {"schema": arr(ref("GeminiResponse"))}, SSE: {"schema": SSE_EVENT}},
                    },
                    **gemini_errors,
                },
            )
        }
        paths[f"{base}/{{model}}:countTokens"] = {
            "post": _op(
                "Gemini countTokens",
                tags=["gemini"],
                security=GEMINI_TENANT,
                op_id=f"count_tokens_{tag}",
                body=_body(ref("GeminiCountRequest")),
                parameters=[model],
                responses={"200": _ok(obj({"totalTokens": INT}, ("totalTokens",))), **gemini_errors},
            )
        }
    return paths


# ---------------------------------------------------------------------- discovery and health


def _discovery_paths() -> dict[str, Any]:
    any_error = {"anyOf": [ref("OpenAIError"), ref("AnthropicError"), ref("GeminiError")]}
    list_errors = {
        c: {"description": d, "content": {JSON: {"schema": any_error}}}
        for c, d in {"401": "unknown key", "403": "no key (Gemini)", "431": "headers too large"}.items()
    }
    version = {
        "name": "anthropic-version",
        "in": "header",
        "required": False,
        "schema": STR,
        "description": "present: Anthropic's list shape; a Gemini client (x-goog-api-key, ?key=): Gemini's; "
        "otherwise OpenAI's",
    }
    models_list = {
        "anyOf": [obj({"data": arr(ANY_OBJECT)}, ("data",)), obj({"models": arr(ANY_OBJECT)}, ("models",))]
    }
    one = _path_param("model_id", description="a model name (Gemini style: models/<name>)")
    gemini_errors = _error_responses(
        "GeminiError",
        {"401": "unknown key", "403": "no key", "404": "unknown model", "431": "request headers too large"},
    )
    out: dict[str, Any] = {}
    for path, op_id in (("/v1/models", "list_models"), ("/models", "list_models_short")):
        out[path] = {
            "get": _op(
                "List models (OpenAI or Anthropic shape)",
                tags=["discovery"],
                security=GEMINI_TENANT,
                op_id=op_id,
                parameters=[version],
                responses={"200": _ok(models_list), **list_errors},
            )
        }
    out["/v1/models/{model_id}"] = {
        "get": _op(
            "One model (OpenAI, Anthropic or Gemini shape)",
            tags=["discovery"],
            security=GEMINI_TENANT,
            op_id="get_model",
            parameters=[one, version],
            responses={
                "200": _ok(ANY_OBJECT),
                **{
                    c: {
                        "description": d,
                        "content": {
                            JSON: {
                                "schema": {
                                    "anyOf": [ref("OpenAIError"), ref("AnthropicError"), ref("GeminiError")]
                                }
                            }
                        },
                    }
                    for c, d in {
                        "401": "unknown key",
                        "403": "no key",
                        "404": "unknown model",
                        "431": "headers too large",
                    }.items()
                },
            },
        )
    }
    out["/v1beta/models"] = {
        "get": _op(
            "List models (Gemini shape)",
            tags=["discovery"],
            security=GEMINI_TENANT,
            op_id="gemini_list_models",
            responses={"200": _ok(obj({"models": arr(ANY_OBJECT)}, ("models",))), **gemini_errors},
        )
    }
    out["/v1beta/models/{model_id}"] = {
        "get": _op(
            "One model (Gemini shape)",
            tags=["discovery"],
            security=GEMINI_TENANT,
            op_id="gemini_get_model",
            parameters=[one],
            responses={"200": _ok(ANY_OBJECT), **gemini_errors},
        )
    }
    out["/health"] = {
        "get": _op(
            "Liveness and account health (no secrets)",
            tags=["discovery"],
            security=[],
            op_id="health",
            responses={
                "200": _ok(
                    obj(
                        {
                            "status": {
                                "type": "string",
                                "enum": ["ok", "degraded", "no_accounts", "draining"],
                            },
                            "uptime_s": NUM,
                            "inflight": INT,
                            "writes_pending": INT,
                            "accounts": arr(ANY_OBJECT),
                            "models": arr(STR),
                        },
                        ("status", "accounts", "models"),
                    )
                ),
                **_error_responses("OpenAIError", {"431": "request headers too large"}),
            },
        )
    }
    out["/openapi.json"] = {
        "get": _op(
            "This document",
            tags=["discovery"],
            security=[],
            op_id="openapi",
            responses={
                "200": _ok(obj({"openapi": STR, "paths": ANY_OBJECT}, ("openapi", "paths"))),
                **_error_responses("OpenAIError", {"431": "request headers too large"}),
            },
        )
    }
    return out


# ---------------------------------------------------------------------- tenant API and Stripe


def _tenant_paths() -> dict[str, Any]:
    errors = _error_responses(
        "OpenAIError",
        {
            "400": "invalid request",
            "401": "missing or unknown tenant key",
            "403": "not allowed for this key",
            "404": "not found (or not this tenant's)",
            "413": "body too large",
            "431": "headers too large",
        },
    )
    stripe_errors = _error_responses(
        "OpenAIError", {"502": "Stripe failed", "503": "Stripe billing is not enabled on this gateway"}
    )
    key_id = _path_param("key_id")
    listing = obj({"object": STR, "data": arr(ref("TenantKey"))}, ("object", "data"))
    session = obj({"object": STR, "id": STR, "url": STR}, ("object", "id", "url"))
    return {
        "/pricing": {
            "get": _op(
                "Subscription tiers",
                tags=["tenant"],
                security=[],
                op_id="pricing",
                responses={"200": _ok(obj({"object": STR, "data": arr(ANY_OBJECT)}, ("data",))), **errors},
            )
        },
        "/pricing/tokens": {
            "get": _op(
                "Pay-per-token prices",
                tags=["tenant"],
                security=[],
                op_id="pricing_tokens",
                responses={"200": _ok(obj({"object": STR, "data": arr(ANY_OBJECT)}, ("data",))), **errors},
            )
        },
        "/tenant/keys": {
            "get": _op(
                "The tenant's keys (never a secret)",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_keys",
                responses={"200": _ok(listing), **errors},
            ),
            "post": _op(
                "Mint a key no wider than the caller's (the secret is shown once)",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_create_key",
                body=_body(ref("KeyRequest"), required=False),
                responses={
                    "201": _ok(obj({"key": ref("TenantKey"), "secret": STR}, ("key", "secret")), "created"),
                    **errors,
                },
            ),
        },
        "/tenant/keys/{key_id}": {
            "get": _op(
                "One of the tenant's keys",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_get_key",
                parameters=[key_id],
                responses={"200": _ok(ref("TenantKey")), **errors},
            ),
            "delete": _op(
                "Revoke one of the tenant's keys",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_revoke_key",
                parameters=[key_id],
                responses={"200": _ok(ref("TenantKey")), **errors},
            ),
        },
        "/tenant/usage": {
            "get": _op(
                "Usage per UTC day",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_usage",
                parameters=[_query("from", STR, "YYYY-MM-DD"), _query("to", STR, "YYYY-MM-DD")],
                responses={
                    "200": _ok(
                        obj(
                            {
                                "object": STR,
                                "from": STR,
                                "to": STR,
                                "data": arr(ANY_OBJECT),
                                "total": ANY_OBJECT,
                            },
                            ("data", "total"),
                        )
                    ),
                    **errors,
                },
            )
        },
        "/v1/usage/{request_id}": {
            "get": _op(
                "One request's usage and cost (its tenant only)",
                tags=["tenant"],
                security=TENANT,
                op_id="request_usage",
                parameters=[_path_param("request_id")],
                responses={"200": _ok(obj({"id": STR, "object": STR}, ("id", "object"))), **errors},
            )
        },
        "/tenant/credits": {
            "get": _op(
                "Balance and holds in flight",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_credits",
                responses={
                    "200": _ok(
                        obj(
                            {
                                "balance_micro": INT,
                                "held_micro": INT,
                                "available_micro": INT,
                                "holds": arr(ANY_OBJECT),
                            },
                            ("balance_micro", "held_micro", "available_micro"),
                        )
                    ),
                    **errors,
                },
            )
        },
        "/tenant/subscription": {
            "get": _op(
                "Subscription tier and quota",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_subscription",
                responses={
                    "200": _ok(
                        obj({"object": STR, "tier": nullable(STR), "status": nullable(STR)}, ("object",))
                    ),
                    **errors,
                },
            )
        },
        "/tenant/billing/topup": {
            "post": _op(
                "A Stripe Checkout session to buy credit",
                tags=["billing"],
                security=TENANT,
                op_id="billing_topup",
                body=_body(obj({"amount_usd": {"anyOf": [NUM, STR]}}, ("amount_usd",)), required=False),
                responses={"200": _ok(session), **errors, **stripe_errors},
            )
        },
        "/tenant/billing/checkout": {
            "post": _op(
                "A Stripe Checkout session for a subscription tier",
                tags=["billing"],
                security=TENANT,
                op_id="billing_checkout",
                body=_body(obj({"tier": STR}, ("tier",)), required=False),
                responses={"200": _ok(session), **errors, **stripe_errors},
            )
        },
        "/tenant/billing/portal": {
            "post": _op(
                "A Stripe billing portal session",
                tags=["billing"],
                security=TENANT,
                op_id="billing_portal",
                responses={"200": _ok(session), **errors, **stripe_errors},
            )
        },
        "/stripe/webhook": {
            "post": _op(
                "Stripe events, verified by signature",
                tags=["billing"],
                security=[],
                op_id="stripe_webhook",
                parameters=[{"name": "stripe-signature", "in": "header", "required": False, "schema": STR}],
                body=_body(ANY_OBJECT, required=False),
                responses={
                    "200": _ok(obj({"received": BOOL, "action": STR}, ("received", "action"))),
                    **_error_responses(
                        "OpenAIError",
                        {
                            "400": "bad signature or malformed event",
                            "413": "too large",
                            "431": "headers too large",
                            "503": "webhooks are disabled (no secret configured)",
                        },
                    ),
                },
            )
        },
    }


# ---------------------------------------------------------------------- operator APIs


ADMIN_ERRORS = {
    "400": "invalid request",
    "401": "admin token required",
    "403": "the admin API is disabled (no token set)",
    "404": "unknown account, model or route",
    "409": "conflict",
    "413": "body too large",
    "431": "headers too large",
}


def _admin(
    summary: str,
    op_id: str,
    ok: Schema,
    *,
    body: Schema | None = None,
    params: list[Any] | None = None,
    status: str = "200",
    extra: dict[str, str] | None = None,
    also: dict[str, Any] | None = None,
) -> dict[str, Any]:
    errors = _error_responses("AdminError", {**ADMIN_ERRORS, **(extra or {})})
    return _op(
        summary,
        tags=["admin"],
        security=ADMIN,
        op_id=op_id,
        parameters=params,
        body=_body(body, required=False) if body is not None else None,
        responses={status: _ok(ok), **errors, **(also or {})},
    )


def _admin_paths() -> dict[str, Any]:
    ref_param = _path_param("ref", description="account id or label")
    account = obj({"account": ref("Account")}, ("account",))
    accounts = obj({"accounts": arr(ANY_OBJECT)}, ("accounts",))
    routing = obj(
        {
            "strategy": STR,
            "default_model": STR,
            "haiku_model": STR,
            "aliases": ANY_OBJECT,
            "models": arr(STR),
        },
        ("strategy", "aliases", "models"),
    )
    update = obj(
        {
            "label": STR,
            "priority": INT,
            "weight": INT,
            "models": arr(STR),
            "rpm": nullable(INT),
            "base_url": STR,
        },
        additionalProperties=False,
    )
    claude = ANY_OBJECT
    probe_errors = {"502": "the provider refused or failed the token refresh"}
    return {
        "/accounts": {
            "get": _admin(
                "Every upstream account (never a secret)",
                "accounts",
                obj({"strategy": STR, "accounts": arr(ref("Account"))}, ("accounts",)),
            )
        },
        "/accounts/status": {
            "get": _admin(
                "Account health counts",
                "accounts_status",
                obj({"total": INT, "accounts": arr(ANY_OBJECT)}, ("total", "accounts")),
            )
        },
        "/accounts/add": {
            "post": _admin(
                "Add an API-key account (or start an OAuth flow with oauth: true)",
                "accounts_add",
                ANY_OBJECT,
                status="201",
                body=obj(
                    {
                        "provider": {"type": "string", "enum": list(PROVIDERS)},
                        "label": STR,
                        "api_key": STR,
                        "base_url": STR,
                        "priority": INT,
                        "weight": INT,
                        "models": arr(STR),
                        "rpm": INT,
                        "oauth": BOOL,
                        "account": STR,
                    },
                    ("provider",),
                ),
                extra={"503": "the gateway is not running"},
                also={
                    "200": _ok(
                        obj({"oauth": BOOL, "authorize_url": STR, "state": STR}, ("authorize_url",)),
                        "the OAuth flow started: open authorize_url",
                    )
                },
            )
        },
        "/accounts/oauth/{state}": {
            "get": _admin(
                "An OAuth flow's progress", "oauth_status", ANY_OBJECT, params=[_path_param("state")]
            )
        },
        "/accounts/oauth/complete": {
            "post": _admin(
                "Finish an OAuth flow with a pasted code",
                "oauth_complete",
                account,
                status="201",
                body=obj({"state": STR, "code": STR}, ("code",)),
                extra={"502": "the provider failed the exchange"},
            )
        },
        "/accounts/switch": {
            "post": _admin(
                "Prefer one account of its provider (or clear a provider's preference)",
                "accounts_switch",
                ANY_OBJECT,
                body=obj({"account": STR, "id": STR, "label": STR, "provider": STR}),
            )
        },
        "/accounts/models": {"get": _admin("Which account serves which model", "accounts_models", accounts)},
        "/accounts/quota": {"get": _admin("Quota facts per account", "accounts_quota", accounts)},
        "/accounts/quota/all": {
            "get": _admin("Probe every account for fresh quota facts", "accounts_quota_refresh", accounts)
        },
        "/accounts/usage": {
            "get": _admin(
                "Requests, tokens and cost per account",
                "accounts_usage",
                accounts,
                params=[_query("since", NUM, "epoch seconds"), _query("hours", NUM)],
            )
        },
        "/accounts/{ref}": {
            "get": _admin("One account", "account_get", account, params=[ref_param]),
            "patch": _admin("Change an account", "account_patch", account, params=[ref_param], body=update),
            "delete": _admin(
                "Remove an account", "account_delete", obj({"removed": STR}, ("removed",)), params=[ref_param]
            ),
        },
        "/accounts/{ref}/update": {
            "post": _admin("Change an account", "account_update", account, params=[ref_param], body=update)
        },
        "/accounts/{ref}/reset": {
            "post": _admin("Clear an account's cooldown", "account_reset", account, params=[ref_param])
        },
        "/accounts/{ref}/enable": {
            "post": _admin("Enable an account", "account_enable", account, params=[ref_param])
        },
        "/accounts/{ref}/disable": {
            "post": _admin("Disable an account", "account_disable", account, params=[ref_param])
        },
        "/accounts/{ref}/refresh": {
            "post": _admin(
                "Refresh an OAuth token, or probe quota",
                "account_refresh",
                account,
                params=[ref_param],
                extra=probe_errors,
            )
        },
        "/accounts/{ref}/remove": {
            "post": _admin(
                "Remove an account", "account_remove", obj({"removed": STR}, ("removed",)), params=[ref_param]
            )
        },
        "/settings/routing": {
            "get": _admin("Routing settings", "routing_get", routing),
            "post": _admin(
                "Change routing settings",
                "routing_post",
                routing,
                body=obj(
                    {
                        "strategy": {"type": "string", "enum": list(STRATEGIES)},
                        "default_model": STR,
                        "haiku_model": STR,
                        "aliases": {"type": "object", "additionalProperties": nullable(STR)},
                    },
                    additionalProperties=False,
                ),
            ),
        },
        "/settings/default-model": {
            "post": _admin(
                "Set the default model", "default_model", routing, body=obj({"model": STR}, ("model",))
            )
        },
        "/settings/aliases": {
            "get": _admin("Model aliases", "aliases_get", obj({"aliases": ANY_OBJECT}, ("aliases",))),
            "post": _admin(
                "Set (or with target null, remove) an alias",
                "aliases_post",
                obj({"aliases": ANY_OBJECT}, ("aliases",)),
                body=obj({"alias": STR, "target": nullable(STR)}, ("alias",)),
            ),
        },
        "/settings/haiku-model": {
            "get": _admin(
                "The haiku lane's model", "haiku_get", obj({"haikuKiloModel": STR}, ("haikuKiloModel",))
            ),
            "post": _admin(
                "Set the haiku lane's model (empty: off)",
                "haiku_post",
                obj({"haikuKiloModel": STR}, ("haikuKiloModel",)),
                body=obj({"haikuKiloModel": STR}, ("haikuKiloModel",)),
            ),
        },
        "/claude/config": {
            "get": _admin("Claude Code's settings as the gateway sees them", "claude_get", claude)
        },
        "/claude/config/proxy": {
            "post": _admin(
                "Point Claude Code at this gateway",
                "claude_proxy",
                claude,
                body=obj({"key": STR, "tenant": STR, "route": STR, "key_var": STR, "base_url": STR}),
            )
        },
        "/claude/config/direct": {
            "post": _admin("Point Claude Code back at Anthropic", "claude_direct", claude)
        },
        "/auth/callback": {
            "get": _op(
                "The OAuth redirect target (an HTML page for the operator's browser)",
                tags=["admin"],
                security=[],
                op_id="oauth_callback",
                parameters=[
                    _query("state", STR),
                    _query("code", STR),
                    _query("error", STR),
                    _query("error_description", STR),
                ],
                responses={
                    **{
                        c: {"description": d, "content": {"text/html": {"schema": STR}}}
                        for c, d in {"200": "account added", "400": "the sign-in failed"}.items()
                    },
                    **_error_responses(
                        "AdminError",
                        {
                            "503": "the gateway is not running",
                            "404": "unknown state",
                            "431": "headers too large",
                        },
                    ),
                },
            )
        },
    }


def _console_paths() -> dict[str, Any]:
    errors = _error_responses("AdminError", {**ADMIN_ERRORS})
    return {
        "/admin/snapshot": {
            "get": _op(
                "Everything one console frame shows",
                tags=["console"],
                security=ADMIN,
                op_id="console_snapshot",
                responses={
                    "200": _ok(
                        obj(
                            {
                                "at": NUM,
                                "traffic": ANY_OBJECT,
                                "accounts": arr(ANY_OBJECT),
                                "tenants": arr(ANY_OBJECT),
                            },
                            ("traffic", "accounts", "tenants"),
                        )
                    ),
                    **errors,
                },
            )
        },
        "/admin/events": {
            "get": _op(
                "Bus events as server-sent events (endless)",
                tags=["console"],
                security=ADMIN,
                op_id="console_events",
                parameters=[_query("topics", STR, "comma-separated topic prefixes")],
                responses={
                    "200": {"description": "the event stream", "content": {SSE: {"schema": SSE_EVENT}}},
                    **errors,
                },
            )
        },
        "/admin/console/requests/{request_id}": {
            "get": _op(
                "One request in full (safe headers, line items)",
                tags=["console"],
                security=ADMIN,
                op_id="console_request",
                parameters=[_path_param("request_id")],
                responses={"200": _ok(obj({"id": STR}, ("id",))), **errors},
            )
        },
        "/admin/console/{name}": {
            "post": _op(
                "Run an operator action",
                tags=["console"],
                security=ADMIN,
                op_id="console_action",
                parameters=[_path_param("name")],
                body=_body(ANY_OBJECT, required=False),
                responses={"200": _ok(obj({"result": {}}, ("result",))), **errors},
            )
        },
    }


# ---------------------------------------------------------------------- schemas


def _schemas(models: list[str]) -> dict[str, Any]:
    model = {"type": "string", "enum": models}
    text_block = obj({"type": {"type": "string", "enum": ["text"]}, "text": STR}, ("type", "text"))
    anthropic_message = obj(
        {
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"anyOf": [STR, arr(text_block, minItems=1)]},
        },
        ("role", "content"),
    )
    anthropic_tool = obj(
        {
            "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
            "description": STR,
            "input_schema": obj({"type": {"type": "string", "enum": ["object"]}}, ("type",)),
        },
        ("name", "input_schema"),
    )
    anthropic_fields = {
        "model": model,
        "messages": arr(anthropic_message, minItems=1),
        "system": {"anyOf": [STR, arr(text_block)]},
        "tools": arr(anthropic_tool),
        "tool_choice": obj({"type": {"type": "string", "enum": ["auto", "any", "none"]}}, ("type",)),
        "metadata": obj({"user_id": STR}),
        "stop_sequences": arr(STR),
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 0},
    }
    chat_message = obj(
        {
            "role": {"type": "string", "enum": ["system", "user", "assistant", "developer"]},
            "content": {"anyOf": [STR, arr(text_block, minItems=1)]},
            "name": STR,
        },
        ("role", "content"),
    )
    function_tool = obj(
        {
            "type": {"type": "string", "enum": ["function"]},
            "function": obj(
                {
                    "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                    "description": STR,
                    "parameters": obj({"type": {"type": "string", "enum": ["object"]}}, ("type",)),
                },
                ("name",),
            ),
        },
        ("type", "function"),
    )
    input_text = obj({"type": {"type": "string", "enum": ["input_text"]}, "text": STR}, ("type", "text"))
    responses_item = obj(
        {
            "role": {"type": "string", "enum": ["user", "assistant", "system", "developer"]},
            "content": {"anyOf": [STR, arr(input_text, minItems=1)]},
        },
        ("role", "content"),
    )
    gemini_content = obj(
        {
            "role": {"type": "string", "enum": ["user", "model"]},
            "parts": arr(obj({"text": STR}, ("text",)), minItems=1),
        },
        ("parts",),
    )
    gemini_fields = {
        "contents": arr(gemini_content, minItems=1),
        "systemInstruction": obj({"parts": arr(obj({"text": STR}, ("text",)))}, ("parts",)),
        "generationConfig": obj(
            {
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "maxOutputTokens": {"type": "integer", "minimum": 1},
                "topP": NUM,
                "topK": {"type": "integer", "minimum": 1},
                "stopSequences": arr(STR),
            }
        ),
    }
    openai_error_body = obj(
        {"message": STR, "type": STR, "param": nullable(STR), "code": nullable(STR)}, ("message", "type")
    )
    return {
        "AnthropicRequest": obj(
            {**anthropic_fields, "max_tokens": {"type": "integer", "minimum": 1}, "stream": BOOL},
            ("model", "max_tokens", "messages"),
        ),
        "AnthropicCountRequest": obj(anthropic_fields, ("model", "messages")),
        "AnthropicMessage": obj(
            {
                "id": STR,
                "type": {"type": "string", "enum": ["message"]},
                "role": {"type": "string", "enum": ["assistant"]},
                "content": arr(ANY_OBJECT),
                "model": STR,
                "stop_reason": nullable(STR),
                "usage": ANY_OBJECT,
            },
            ("id", "type", "role", "content", "model", "usage"),
        ),
        "AnthropicError": obj(
            {
                "type": {"type": "string", "enum": ["error"]},
                "error": obj({"type": STR, "message": STR}, ("type", "message")),
                "request_id": STR,
            },
            ("type", "error"),
        ),
        "ChatRequest": obj(
            {
                "model": model,
                "messages": arr(chat_message, minItems=1),
                "stream": BOOL,
                "max_tokens": {"type": "integer", "minimum": 1},
                "max_completion_tokens": {"type": "integer", "minimum": 1},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "stop": {"anyOf": [STR, arr(STR, maxItems=4)]},
                "tools": arr(function_tool),
                "stream_options": obj({"include_usage": BOOL}),
                "user": STR,
            },
            ("model", "messages"),
        ),
        "ChatCompletion": obj(
            {
                "id": STR,
                "object": {"type": "string", "enum": ["chat.completion"]},
                "created": INT,
                "model": STR,
                "choices": arr(ANY_OBJECT),
                "usage": ANY_OBJECT,
            },
            ("id", "object", "model", "choices"),
        ),
        "OpenAIError": obj({"error": openai_error_body}, ("error",)),
        "ResponsesRequest": obj(
            {
                "model": model,
                "input": {"anyOf": [STR, arr(responses_item, minItems=1)]},
                "instructions": STR,
                "stream": BOOL,
                "max_output_tokens": {"type": "integer", "minimum": 16},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "store": BOOL,
                "metadata": {"type": "object", "additionalProperties": STR},
            },
            ("model", "input"),
        ),
        "ResponsesObject": obj(
            {
                "id": STR,
                "object": {"type": "string", "enum": ["response"]},
                "status": STR,
                "model": STR,
                "output": arr(ANY_OBJECT),
            },
            ("id", "object", "status", "output"),
        ),
        "GeminiRequest": obj(gemini_fields, ("contents",)),
        "GeminiCountRequest": obj({**gemini_fields, "generateContentRequest": ANY_OBJECT}),
        "GeminiResponse": obj(
            {"candidates": arr(ANY_OBJECT), "usageMetadata": ANY_OBJECT, "modelVersion": STR}
        ),
        "GeminiError": obj(
            {
                "error": obj(
                    {"code": INT, "message": STR, "status": STR, "details": arr(ANY_OBJECT)},
                    ("code", "message", "status"),
                )
            },
            ("error",),
        ),
        "AdminError": obj({"error": obj({"type": STR, "message": STR}, ("type", "message"))}, ("error",)),
        "TenantKey": obj(
            {
                "id": STR,
                "kind": {"type": "string", "enum": ["payg", "subscription"]},
                "label": nullable(STR),
                "state": STR,
            },
            ("id", "kind"),
        ),
        "KeyRequest": obj(
            {
                "kind": {"type": "string", "enum": ["payg", "subscription"]},
                "label": {"type": "string", "maxLength": 200},
                "expires_in_days": {
                    "type": "number",
                    "exclusiveMinimum": True,
                    "minimum": 0,
                    "maximum": 3650,
                },
                "models": arr(model, maxItems=100),
                "rpm": {"type": "integer", "minimum": 1, "maximum": 100_000},
            },
            additionalProperties=False,
        ),
        "Account": obj(
            {"id": STR, "label": STR, "provider": STR, "enabled": BOOL, "health": STR},
            ("id", "label", "provider"),
        ),
    }
