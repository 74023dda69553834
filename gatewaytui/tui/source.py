"""Where the console's data comes from: a *source*.

A source has a life cycle (``open``/``close``), reads (``snapshot``, ``request``, ``events``) and the
operator actions of ``gatewaytui.ops``, each a thin call of ``act(name, **args)``. Two sources exist:
``LocalSource`` wraps the ``Runtime`` of the gateway the console runs in; ``RemoteSource`` (``remote.py``)
talks HTTP to a headless gateway. Both end in ``gatewaytui.ops.actions.run_action``, which checks the
arguments against the action's spec and runs it: one code path for the console, ``attach``, the admin
API and the CLI. The console never imports ``gatewaytui.server``.

Snapshot shape (built by ``gatewaytui.ops.snapshot.build_snapshot``)::

    at, started_at, draining
    traffic   inflight[], recent[] (per-request dicts), series{requests,tokens,errors}[60], stats{...}
    accounts  [Account.public()]
    tenants   [{id, name, balance_micro, held_micro, available_micro, spend_today_micro, tpm,
               tokens_last_minute, keys[] (with budget use and token rate), subscription}]
    routing   {default_model, haiku_model, strategy, models[], aliases[], presets{}, fallbacks[]}
    stats     {inflight, requests_per_s, tokens_per_s, error_rate_60s, spend_today_micro, latency/ttft p50/p95...}
    console   {refresh_ms, theme, keymap}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..model import GatewayError
from ..ops.actions import run_action
from ..ops.snapshot import build_snapshot, request_detail
from ..runtime import Runtime


class ActionError(Exception):
    """An operator action was refused; ``message`` is fit to show the operator, ``param`` names the
    argument it concerns when the action's spec says which (a dialog shows the message by that field)."""

    def __init__(self, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param


class SourceUnavailable(Exception):
    """The source cannot be read right now (a remote gateway is unreachable)."""


class Source:
    """The interface the console reads. Subclasses implement the first six methods."""

    name = "source"

    async def open(self) -> None:
        """Acquire what the source needs, in the console's event loop."""

    async def close(self) -> None:
        """Release it."""

    async def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    async def request(self, request_id: str) -> dict[str, Any] | None:
        """One request in full (headers without secrets, usage line items, error), or None."""
        raise NotImplementedError

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """Bus events as ``{"topic", "data", "at"}`` dicts, until the source closes."""
        raise NotImplementedError

    async def history(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Finished requests from the store, newest first unless sorted otherwise. ``query`` holds
        ``filters`` ({tenant, model, account, status}), ``text``, ``sort``, ``descending`` and ``limit``
        (see ``gatewaytui.store.requests.history``)."""
        raise NotImplementedError

    async def act(self, action: str, **args: Any) -> Any:
        """Run an operator action (see ``gatewaytui.ops.actions.ACTIONS``); raises ``ActionError``."""
        raise NotImplementedError

    # -------------------------------------------------------------- actions (mirroring gatewaytui.ops)

    async def create_tenant(self, name: str) -> dict[str, Any]:
        return await self.act("create_tenant", name=name)

    async def mint_key(
        self, tenant: str, *, kind: str = "payg", label: str | None = None, **limits: Any
    ) -> tuple[dict[str, Any], str]:
        """``limits``: ``budget_micro``, ``budget_period``, ``tpm`` (checked by the action's spec)."""
        result = await self.act("mint_key", tenant=tenant, kind=kind, label=label, **limits)
        return result["key"], result["secret"]

    async def set_tenant_tpm(self, tenant: str, tpm: int | None) -> dict[str, Any]:
        return await self.act("set_tenant_tpm", tenant=tenant, tpm=tpm)

    async def revoke_key(self, key_id: str) -> bool:
        return bool((await self.act("revoke_key", key_id=key_id))["revoked"])

    async def credit(self, tenant: str, amount_micro: int, *, note: str | None = None) -> int:
        result = await self.act("credit", tenant=tenant, amount_micro=amount_micro, kind="topup", note=note)
        return int(result["balance_micro"])

    async def add_account(
        self, *, provider: str, label: str | None, api_key: str, base_url: str | None = None
    ) -> dict[str, Any]:
        return await self.act(
            "add_account", provider=provider, label=label, api_key=api_key, base_url=base_url
        )

    # -------------------------------------------------------------- OAuth sign-in (gatewaytui.oauth)

    async def begin_oauth(self, provider: str, label: str | None, base_url: str | None) -> dict[str, Any]:
        """Start a PKCE sign-in: ``authorize_url`` for the browser, ``state`` to follow it by."""
        raise NotImplementedError

    async def oauth_status(self, state: str) -> dict[str, Any]:
        """The sign-in's ``status`` (pending, completed, failed, expired), ``error`` and ``account_id``."""
        raise NotImplementedError

    async def complete_oauth(self, state: str, code: str) -> dict[str, Any]:
        """Finish a sign-in with a code the provider showed (``code#state`` as pasted also works)."""
        raise NotImplementedError

    async def set_account_enabled(self, ref: str, enabled: bool) -> dict[str, Any]:
        return await self.act("set_account_enabled", ref=ref, enabled=enabled)

    async def reset_account(self, ref: str) -> dict[str, Any]:
        return await self.act("reset_account", ref=ref)

    async def prefer_account(self, ref: str) -> dict[str, Any]:
        return await self.act("prefer_account", ref=ref)

    async def remove_account(self, ref: str) -> None:
        await self.act("remove_account", ref=ref)

    async def set_default_model(self, name: str) -> None:
        await self.act("set_default_model", name=name)

    async def set_haiku_model(self, name: str) -> None:
        await self.act("set_haiku_model", name=name)

    async def set_alias(self, alias: str, target: str | None) -> dict[str, str]:
        return (await self.act("set_alias", alias=alias, target=target))["aliases"]

    async def set_fallbacks(self, model: str, then: list[str] | None) -> dict[str, list[str]]:
        return (await self.act("set_fallbacks", model=model, then=then))["fallbacks"]

    async def set_preset(self, route: str, system: str) -> dict[str, Any]:
        return await self.act("set_preset", route=route, system=system)


class LocalSource(Source):
    """The console inside the gateway process: reads the runtime, acts through ``gatewaytui.ops``.

    Reads touch in-memory state on the loop and the database through ``rt.read`` (a worker thread), so
    a console frame never blocks the gateway's loop for a query.
    """

    name = "local"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def snapshot(self) -> dict[str, Any]:
        return await build_snapshot(self.rt)

    async def request(self, request_id: str) -> dict[str, Any] | None:
        return await request_detail(self.rt, request_id)

    async def history(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        from ..store import requests as request_store

        args = {k: query[k] for k in ("filters", "text", "sort", "descending", "limit") if k in query}
        try:
            return await self.rt.read(lambda c: request_store.history(c, **args))
        except ValueError as exc:
            raise ActionError("invalid_request", str(exc)) from None

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        with self.rt.bus.subscribe() as sub:
            while True:
                event = await sub.get()
                yield event.to_dict()

    def _oauth(self) -> Any:
        if self.rt.oauth is None:
            raise ActionError("unavailable", "OAuth sign-in needs the running gateway")
        return self.rt.oauth

    async def begin_oauth(self, provider: str, label: str | None, base_url: str | None) -> dict[str, Any]:
        try:
            return await self._oauth().begin(provider, label, None, base_url)
        except GatewayError as err:
            raise ActionError(err.kind, err.message) from None

    async def oauth_status(self, state: str) -> dict[str, Any]:
        flow = self._oauth().flow(state)
        if flow is None:
            raise ActionError("not_found", "unknown OAuth sign-in")
        return flow.public()

    async def complete_oauth(self, state: str, code: str) -> dict[str, Any]:
        try:
            return await self._oauth().complete(state, code)
        except GatewayError as err:
            raise ActionError(err.kind, err.message) from None

    async def act(self, action: str, **args: Any) -> Any:
        try:
            return await run_action(self.rt, action, args)
        except GatewayError as err:
            raise ActionError(err.kind, err.message, err.param) from None
