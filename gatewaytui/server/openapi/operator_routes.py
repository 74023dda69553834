"""The operator's paths: the admin API (accounts, models, routing, tenants) and the console API."""

from __future__ import annotations

from typing import Any

from ...ops import accounts as account_ops
from ...ops import routing as routing_ops
from ...ops.actions import ACTIONS
from .components import ADMIN
from .operations import error_responses, ok_response, operation, path_param, query_param, request_body
from .schema import ANY_OBJECT, BOOL, INT, NUM, SSE, SSE_EVENT, STR, Schema, arr, obj, ref

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
    errors = error_responses("AdminError", {**ADMIN_ERRORS, **(extra or {})})
    return operation(
        summary,
        tags=["admin"],
        security=ADMIN,
        op_id=op_id,
        parameters=params,
        body=request_body(body, required=False) if body is not None else None,
        responses={status: ok_response(ok), **errors, **(also or {})},
    )


def admin_paths() -> dict[str, Any]:
    ref_param = path_param("ref", description="account id or label")
    account = obj({"account": ref("Account")}, ("account",))
    accounts = obj({"accounts": arr(ANY_OBJECT)}, ("accounts",))
    routing = obj(
        {
            "strategy": STR,
            "default_model": STR,
            "haiku_model": STR,
            "aliases": ANY_OBJECT,
            "fallbacks": ANY_OBJECT,
            "models": arr(STR),
        },
        ("strategy", "aliases", "models"),
    )
    update = account_ops.UPDATE_ACCOUNT.schema(omit=("ref",))
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
                body=account_ops.ADD_ACCOUNT.schema(
                    strict=False,
                    oauth={**BOOL, "description": "start an OAuth sign-in instead (no api_key)"},
                    account={**STR, "description": "with oauth: the account to re-authorize"},
                ),
                extra={"503": "the gateway is not running"},
                also={
                    "200": ok_response(
                        obj({"oauth": BOOL, "authorize_url": STR, "state": STR}, ("authorize_url",)),
                        "the OAuth flow started: open authorize_url",
                    )
                },
            )
        },
        "/accounts/oauth/{state}": {
            "get": _admin(
                "An OAuth flow's progress", "oauth_status", ANY_OBJECT, params=[path_param("state")]
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
                params=[query_param("since", NUM, "epoch seconds"), query_param("hours", NUM)],
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
                body=routing_ops.ROUTING.schema(),
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
                body=routing_ops.SET_ALIAS.schema(),
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
            "get": operation(
                "The OAuth redirect target (an HTML page for the operator's browser)",
                tags=["admin"],
                security=[],
                op_id="oauth_callback",
                parameters=[
                    query_param("state", STR),
                    query_param("code", STR),
                    query_param("error", STR),
                    query_param("error_description", STR),
                ],
                responses={
                    **{
                        c: {"description": d, "content": {"text/html": {"schema": STR}}}
                        for c, d in {"200": "account added", "400": "the sign-in failed"}.items()
                    },
                    **error_responses(
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


def console_paths() -> dict[str, Any]:
    errors = error_responses("AdminError", {**ADMIN_ERRORS})
    return {
        "/admin/snapshot": {
            "get": operation(
                "Everything one console frame shows",
                tags=["console"],
                security=ADMIN,
                op_id="console_snapshot",
                responses={
                    "200": ok_response(
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
            "get": operation(
                "Bus events as server-sent events (endless)",
                tags=["console"],
                security=ADMIN,
                op_id="console_events",
                parameters=[query_param("topics", STR, "comma-separated topic prefixes")],
                responses={
                    "200": {"description": "the event stream", "content": {SSE: {"schema": SSE_EVENT}}},
                    **errors,
                },
            )
        },
        "/admin/console/requests/{request_id}": {
            "get": operation(
                "One request in full (safe headers, line items)",
                tags=["console"],
                security=ADMIN,
                op_id="console_request",
                parameters=[path_param("request_id")],
                responses={"200": ok_response(obj({"id": STR}, ("id",))), **errors},
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics (admin token or the [metrics] token_env scrape token)",
                tags=["console"],
                security=ADMIN,
                op_id="metrics",
                responses={
                    "200": {
                        "description": "the Prometheus text exposition (OpenMetrics when asked for)",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    **error_responses("AdminError", {**ADMIN_ERRORS, "404": "metrics are disabled"}),
                },
            )
        },
        "/admin/console/history": {
            "get": operation(
                "Finished requests from the store, filtered and sorted (the console's history)",
                tags=["console"],
                security=ADMIN,
                op_id="console_history",
                parameters=[
                    *(
                        query_param(name, STR, f"{name} contains this (case-insensitive)")
                        for name in ("tenant", "model", "account")
                    ),
                    query_param("status", STR, "ok, error, cancelled or an HTTP status"),
                    query_param("q", STR, "free text: id, tenant, model, account, key label or error"),
                    query_param(
                        "sort", STR, "started, tenant, model, account, status, tokens, ttft, time or cost"
                    ),
                    query_param("order", STR, "desc (default) or asc"),
                    query_param("limit", STR, "rows, at most 5000 (default 200)"),
                ],
                responses={"200": ok_response(obj({"requests": arr(ANY_OBJECT)}, ("requests",))), **errors},
            )
        },
        "/admin/console/{name}": {
            "post": operation(
                "Run an operator action",
                tags=["console"],
                security=ADMIN,
                op_id="console_action",
                parameters=[path_param("name", {"type": "string", "enum": list(ACTIONS)}, "the action")],
                body=request_body(ANY_OBJECT, required=False),
                responses={"200": ok_response(obj({"result": {}}, ("result",))), **errors},
            )
        },
    }
