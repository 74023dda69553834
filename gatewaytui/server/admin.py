"""The operator's HTTP API: upstream accounts, routing settings, Claude Code's settings.

Every route but the OAuth callback needs the admin token (``Authorization: Bearer``). This is an HTTP
adapter only: each route hands its body to the operator action of ``gatewaytui.ops`` that the console and
the CLI use too, whose spec checks it, so every front end behaves alike and every change is published on
the event bus. Errors are ``{"error": {"type", "message"}}`` with the
status that fits (400 bad body, 401/403 admin token, 404 unknown account or model, 409 conflict).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from .. import claude_settings
from ..codec import dumps, loads
from ..config import PROVIDERS, ROUTES
from ..model import GatewayError
from ..oauth import OAuthError, callback_page
from ..ops import accounts as account_ops
from ..ops import routing as routing_ops
from ..ops import tenants as tenant_ops
from ..runtime import Runtime
from .auth import require_admin

log = logging.getLogger("gatewaytui.admin")

Handler = Callable[..., Awaitable[Response]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        dumps(data), status=status, content_type="application/json", headers={"cache-control": "no-store"}
    )


def error_body(err: GatewayError) -> Response:
    body: dict[str, Any] = {"type": err.kind, "message": err.message}
    if err.param:
        body["param"] = err.param  # the argument the error concerns (a console dialog shows it by that field)
    response = _json({"error": body}, err.status)
    for name, value in err.headers().items():
        response.headers[name] = value
    return response


def _bad(message: str) -> GatewayError:
    return GatewayError("invalid_request", message)


async def read_body() -> dict[str, Any]:
    """The JSON object body (empty body: ``{}``); anything else is a 400."""
    data = await request.get_data(cache=False)
    if not data or not data.strip():
        return {}
    try:
        body = loads(data)
    except Exception:
        raise _bad("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    return body


def _field(
    body: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    *,
    required: bool = False,
    default: Any = None,
) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise _bad(f"{name}: field required")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise _bad(f"{name}: expected {_kind_name(kinds)}")
    if not isinstance(value, kinds):
        raise _bad(f"{name}: expected {_kind_name(kinds)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        bool: "a boolean",
        list: "a list",
        dict: "an object",
        float: "a number",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def guarded(rt: Runtime, fn: Handler, *, auth: bool = True) -> Handler:
    """An operator route: the admin token first (unless ``auth`` is off), then errors as JSON with their
    status, never a traceback. The admin API and the console API (``events.py``) share it."""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> Response:
        try:
            if auth:
                require_admin(rt)
            return await fn(*args, **kwargs)
        except GatewayError as err:
            return error_body(err)
        except HTTPException:  # e.g. 413 for an oversized body: the app's handlers answer these
            raise
        except Exception:  # noqa: BLE001 - never a traceback to the client
            log.exception("operator API %s %s failed", request.method, request.path)
            return error_body(GatewayError("api_error", "internal error; see the gateway log"))

    return handler


def register(app: Quart, rt: Runtime) -> None:
    def route(
        rule: str, methods: tuple[str, ...] = ("GET",), *, auth: bool = True
    ) -> Callable[[Handler], Handler]:
        def wrap(fn: Handler) -> Handler:
            handler = guarded(rt, fn, auth=auth)
            handler.__name__ = "admin_" + fn.__name__
            app.add_url_rule(rule, handler.__name__, handler, methods=list(methods))
            return handler

        return wrap

    # ------------------------------------------------------------ accounts

    @route("/accounts")
    async def accounts_list() -> Response:
        return _json({"strategy": rt.pool.strategy, "accounts": rt.pool.snapshot()})

    @route("/accounts/status")
    async def accounts_status() -> Response:
        return _json(account_ops.status(rt))

    @route("/accounts/add", ("POST",))
    async def accounts_add() -> Response:
        body = await read_body()
        provider = _field(body, "provider", str, required=True)
        if provider not in PROVIDERS:
            raise _bad(f"provider: unknown provider {provider!r}; one of {', '.join(PROVIDERS)}")
        label = _field(body, "label", str)
        if _field(body, "oauth", bool, default=False):
            if rt.oauth is None:
                raise GatewayError("unavailable", "the gateway is not running")
            return _json(
                await rt.oauth.begin(
                    provider, label, _field(body, "account", str), _field(body, "base_url", str)
                )
            )
        known = account_ops.ADD_ACCOUNT.names
        acc = await account_ops.add_account(rt, **{k: v for k, v in body.items() if k in known})
        return _json({"account": acc}, 201)

    @route("/accounts/oauth/<state>")
    async def oauth_status(state: str) -> Response:
        flow = rt.oauth.flow(state) if rt.oauth is not None else None
        if flow is None:
            raise GatewayError("not_found", "unknown OAuth state")
        return _json(flow.public())

    @route("/accounts/oauth/complete", ("POST",))
    async def oauth_complete() -> Response:
        """For providers that show the code to paste instead of redirecting to a local port."""
        body = await read_body()
        if rt.oauth is None:
            raise GatewayError("unavailable", "the gateway is not running")
        acc = await rt.oauth.complete(
            _field(body, "state", str, default=""), _field(body, "code", str, required=True)
        )
        return _json({"account": acc}, 201)

    @route("/auth/callback", auth=False)
    async def oauth_callback() -> Response:
        if rt.oauth is None:
            raise GatewayError("unavailable", "the gateway is not running")
        status, title, text = await rt.oauth.callback(dict(request.args.items()))
        return Response(callback_page(title, text), status=status, content_type="text/html; charset=utf-8")

    @route("/accounts/switch", ("POST",))
    async def accounts_switch() -> Response:
        body = await read_body()
        ref = _field(body, "account", str) or _field(body, "id", str) or _field(body, "label", str)
        if ref is None:
            provider = _field(body, "provider", str)
            if provider is None:
                raise _bad(
                    "give the account to prefer (account, id or label), or a provider to clear its preference"
                )
            if provider not in PROVIDERS:
                raise _bad(f"provider: unknown provider {provider!r}")
            await account_ops.clear_preferred(rt, provider)
            return _json({"account": None, "provider": provider})
        return _json({"account": await account_ops.prefer_account(rt, ref)})

    @route("/accounts/models")
    async def accounts_models() -> Response:
        return _json({"accounts": account_ops.models_served(rt)})

    @route("/accounts/quota")
    async def accounts_quota() -> Response:
        return _json({"accounts": account_ops.quotas(rt)})

    @route("/accounts/quota/all")
    async def accounts_quota_refresh() -> Response:
        results = await account_ops.refresh_quotas(rt)
        return _json({"refreshed_at": time.time(), "accounts": account_ops.quotas(rt), "probes": results})

    @route("/accounts/usage")
    async def accounts_usage() -> Response:
        since: float | None = None
        try:
            if request.args.get("since"):
                since = float(request.args["since"])
            elif request.args.get("hours"):
                since = time.time() - float(request.args["hours"]) * 3600
        except ValueError:
            raise _bad("since (epoch seconds) and hours must be numbers") from None
        return _json({"accounts": await account_ops.account_usage(rt, since)})

    @route("/accounts/<ref>")
    async def account_get(ref: str) -> Response:
        return _json({"account": account_ops.find(rt, ref).public()})

    async def update(ref: str) -> Response:
        body = await read_body()
        if "ref" in body:
            raise _bad("cannot change ref")
        return _json({"account": await account_ops.update_account(rt, ref, **body)})

    @route("/accounts/<ref>", ("PATCH",))
    async def account_patch(ref: str) -> Response:
        return await update(ref)

    @route("/accounts/<ref>/update", ("POST",))
    async def account_update(ref: str) -> Response:
        return await update(ref)

    @route("/accounts/<ref>/reset", ("POST",))
    async def account_reset(ref: str) -> Response:
        return _json({"account": await account_ops.reset_account(rt, ref)})

    @route("/accounts/<ref>/enable", ("POST",))
    async def account_enable(ref: str) -> Response:
        return _json({"account": await account_ops.set_account_enabled(rt, ref, True)})

    @route("/accounts/<ref>/disable", ("POST",))
    async def account_disable(ref: str) -> Response:
        return _json({"account": await account_ops.set_account_enabled(rt, ref, False)})

    @route("/accounts/<ref>/refresh", ("POST",))
    async def account_refresh(ref: str) -> Response:
        """Refresh an OAuth account's token now, or probe an API-key account's quota."""
        acc = account_ops.find(rt, ref)
        if acc.oauth and rt.oauth is not None:
            try:
                await rt.oauth.refresh(acc, force=True)
            except OAuthError as exc:
                raise GatewayError(
                    "invalid_request",
                    f"refresh failed: {exc.message}",
                    status=502 if not exc.refused else 400,
                ) from None
            return _json({"account": acc.public()})
        results = await account_ops.refresh_quotas(rt, acc.id)
        return _json({"account": acc.public(), "probe": results[0]})

    @route("/accounts/<ref>/remove", ("POST",))
    async def account_remove(ref: str) -> Response:
        await account_ops.remove_account(rt, ref)
        return _json({"removed": ref})

    @route("/accounts/<ref>", ("DELETE",))
    async def account_delete(ref: str) -> Response:
        await account_ops.remove_account(rt, ref)
        return _json({"removed": ref})

    # ------------------------------------------------------------ routing settings

    def routing_view() -> dict[str, Any]:
        return routing_ops.routing_view(rt)

    @route("/settings/routing")
    async def routing_get() -> Response:
        return _json(routing_view())

    @route("/settings/routing", ("POST",))
    async def routing_post() -> Response:
        return _json(await routing_ops.change_routing(rt, await read_body()))

    @route("/settings/default-model", ("POST",))
    async def default_model_post() -> Response:
        body = await read_body()
        await routing_ops.set_default_model(rt, _field(body, "model", str, required=True))
        return _json(routing_view())

    @route("/settings/aliases")
    async def aliases_get() -> Response:
        return _json({"aliases": rt.catalog.aliases})

    @route("/settings/aliases", ("POST",))
    async def aliases_post() -> Response:
        body = await read_body()
        alias = _field(body, "alias", str, required=True)
        return _json({"aliases": await routing_ops.set_alias(rt, alias, _field(body, "target", str))})

    @route("/settings/haiku-model")
    async def haiku_get() -> Response:
        return _json({"haikuKiloModel": rt.catalog.haiku_model or ""})

    @route("/settings/haiku-model", ("POST",))
    async def haiku_post() -> Response:
        body = await read_body()
        if "haikuKiloModel" not in body:
            raise _bad('expected {"haikuKiloModel": "<model>"} (an empty string turns the lane off)')
        await routing_ops.set_haiku_model(rt, _field(body, "haikuKiloModel", str) or "")
        return _json({"haikuKiloModel": rt.catalog.haiku_model or ""})

    # ------------------------------------------------------------ Claude Code settings

    def gateway_url() -> str:
        return (rt.cfg.server.public_url or rt.base_url).rstrip("/")

    async def settings_call(fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except claude_settings.SettingsError as exc:
            raise GatewayError("invalid_request", str(exc), status=409) from None

    @route("/claude/config")
    async def claude_get() -> Response:
        return _json(await settings_call(claude_settings.read, rt.cfg.claude_home, gateway_url()))

    @route("/claude/config/proxy", ("POST",))
    async def claude_proxy() -> Response:
        body = await read_body()
        key = _field(body, "key", str)
        tenant = _field(body, "tenant", str)
        route_name = _field(body, "route", str, default="claudecode")
        key_var = _field(body, "key_var", str, default="ANTHROPIC_AUTH_TOKEN")
        if route_name not in (*ROUTES, "v1"):
            raise _bad(f"route: one of {', '.join((*ROUTES, 'v1'))}")
        if key_var not in claude_settings.KEY_VARS:
            raise _bad(f"key_var: one of {', '.join(claude_settings.KEY_VARS)}")
        if key is None and tenant is None:
            raise _bad("give key (a gateway key for Claude Code to use) or tenant (to mint one)")
        if key is not None:
            try:
                rt.keyring.authenticate(key)
            except GatewayError:
                raise _bad("key: not a valid gateway key") from None
        else:
            _, key = await tenant_ops.mint_key(rt, tenant, label="claude-code")
        base = _field(body, "base_url", str) or gateway_url()
        if not base.startswith(("http://", "https://")):
            raise _bad("base_url must start with http:// or https://")
        base_url = base.rstrip("/") + ("" if route_name == "v1" else f"/{route_name}")
        view = await settings_call(
            claude_settings.set_proxy,
            rt.cfg.claude_home,
            base_url,
            key,
            key_var=key_var,
            gateway_url=gateway_url(),
        )
        rt.bus.publish("claude.config", mode="proxy", base_url=base_url, path=view["path"])
        return _json(view)

    @route("/claude/config/direct", ("POST",))
    async def claude_direct() -> Response:
        await read_body()
        view = await settings_call(claude_settings.set_direct, rt.cfg.claude_home, gateway_url())
        rt.bus.publish("claude.config", mode="direct", path=view["path"])
        return _json(view)
