"""OAuth accounts: the authorization-code flow with PKCE, the local callback listener, token refresh.

Adding an account: ``begin`` makes a PKCE verifier and a state, remembers the flow (in memory and in the
``oauth_flows`` table) and opens a callback listener on loopback (``[oauth.<provider>] redirect_port``,
default 1455). The operator opens the authorize URL; the provider redirects the browser to the listener
(or to the gateway's own ``GET /auth/callback``), and ``complete`` trades the code for tokens and adds the
account. Tokens are stored encrypted with the runtime's vault.

Refresh: before a request uses a token that expires within ``REFRESH_MARGIN``, a background sweep, and
after an upstream rejects a token. One refresh at a time per account: concurrent callers wait on the
account's lock and then see the new token instead of refreshing again. A refresh the provider refuses
disables the account with the reason; a successful one re-enables an account disabled for rejected
credentials. Provider endpoints and client ids come from the configuration; the operator is responsible
for each provider's terms.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from .config import Config, OAuthProviderConfig
from .model import GatewayError
from .pool.account import Account
from .pool.enroll import EnrollHost, enroll
from .providers.base import UpstreamError
from .store import accounts as account_store

log = logging.getLogger("gatewaytui.oauth")

REFRESH_MARGIN = 300.0  # refresh tokens that expire within this many seconds
FLOW_TTL = 900.0  # an unfinished authorization expires after this long
SWEEP_INTERVAL = 30.0
AUTO_REFRESH_GAP = 60.0  # after an upstream 401, retry a refresh at most this often per account
TOKEN_TIMEOUT = 30.0


class OAuthError(Exception):
    """The provider refused (``refused``) or could not be reached."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


def _bad(message: str, status: int = 400) -> GatewayError:
    return GatewayError("invalid_request", message, status=status)


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass(slots=True)
class Flow:
    state: str
    provider: str
    label: str | None
    verifier: str
    redirect_uri: str
    port: int
    created_at: float = field(default_factory=time.time)
    account: str | None = None  # re-authorizing this existing account
    base_url: str | None = None  # for the new account (default: the provider's)
    status: str = "pending"  # pending | completing | completed | failed | expired
    account_id: str | None = None
    error: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "provider": self.provider,
            "label": self.label,
            "status": self.status,
            "account_id": self.account_id,
            "error": self.error,
            "created_at": self.created_at,
            "expires_at": self.created_at + FLOW_TTL,
            "callback_port": self.port,
            "redirect_uri": self.redirect_uri,
        }


class CallbackListener:
    """A tiny HTTP/1.1 server on loopback that accepts the provider's redirect and nothing else."""

    def __init__(self, manager: OAuthManager, path: str) -> None:
        self.manager = manager
        self.path = path
        self.port = 0
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self, port: int) -> int:
        server = await asyncio.start_server(self._handle, "127.0.0.1", port, reuse_address=True)
        self._servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # "localhost" may resolve to ::1 first
            if socket.has_ipv6:
                self._servers.append(
                    await asyncio.start_server(self._handle, "::1", self.port, reuse_address=True)
                )
        return self.port

    def stop(self) -> list[asyncio.AbstractServer]:
        """Stop listening at once (new connections are refused); returns the servers still winding down."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        return servers

    async def close(self) -> None:
        for server in self.stop():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = (head.split(b"\r\n", 1)[0].decode("latin-1") + "  ").split(" ", 2)
            url = urlsplit(target)
            if method != "GET" or url.path != self.path:
                await _reply(writer, 404, "Not found", "This listener only accepts the OAuth callback.")
                return
            status, title, text = await self.manager.callback(dict(parse_qsl(url.query)))
            await _reply(writer, status, title, text)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            with contextlib.suppress(Exception):
                await _reply(writer, 400, "Bad request", "Malformed request.")
        except Exception:  # noqa: BLE001 - a listener must not die on one request
            log.exception("OAuth callback failed")
            with contextlib.suppress(Exception):
                await _reply(writer, 500, "Error", "The gateway could not finish the sign-in; see its log.")
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def _reply(writer: asyncio.StreamWriter, status: int, title: str, text: str) -> None:
    body = callback_page(title, text).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}.get(
        status, "Error"
    )
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\ncache-control: no-store\r\n\r\n".encode()
        + body
    )
    await writer.drain()


def callback_page(title: str, text: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )


class OAuthHost(EnrollHost, Protocol):
    """What the OAuth manager needs of the running gateway (``gatewaytui.runtime.Runtime`` has it)."""

    @property
    def cfg(self) -> Config: ...

    @property
    def http(self) -> httpx.AsyncClient | None: ...


class OAuthManager:
    def __init__(self, rt: OAuthHost) -> None:
        self.rt = rt
        self.flows: dict[str, Flow] = {}
        self.listeners: dict[int, CallbackListener] = {}  # by configured port (0: ephemeral, one per flow)
        self.refresh_margin = REFRESH_MARGIN
        self.sweep_interval = SWEEP_INTERVAL
        self._locks: dict[str, asyncio.Lock] = {}
        self._auto_refreshed: dict[str, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        rt.pool.on_auth_failure = self.after_rejection

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="gatewaytui-oauth")

    async def close(self) -> None:
        tasks = [t for t in [self._sweeper, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sweeper = None
        for listener in list(self.listeners.values()):
            await listener.close()
        self.listeners.clear()

    def config(self, provider: str) -> OAuthProviderConfig:
        cfg = self.rt.cfg.oauth.get(provider)
        if cfg is None:
            raise _bad(
                f"no OAuth configuration for provider {provider!r}: add an [oauth.{provider}] section to the config"
            )
        return cfg

    # ------------------------------------------------------------ the authorization flow

    async def begin(
        self, provider: str, label: str | None = None, account: str | None = None, base_url: str | None = None
    ) -> dict[str, Any]:
        """Start a PKCE flow: returns the authorize URL, the state and the callback port."""
        cfg = self.config(provider)
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise _bad("base_url must start with http:// or https://")
        if account is not None:
            acc = self.rt.pool.find(account)
            if acc is None:
                raise GatewayError("not_found", f"no account {account!r}")
            if acc.provider != provider:
                raise _bad(f"account {acc.label!r} is a {acc.provider} account, not {provider}")
            account, label = acc.id, acc.label
        elif label is not None and self.rt.pool.find(label) is not None:
            raise _bad(f"an account labelled {label!r} already exists")
        port = await self._listen(cfg)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(24)
        redirect_uri = f"http://localhost:{port}{cfg.redirect_path}"
        flow = Flow(state, provider, label, verifier, redirect_uri, port, account=account, base_url=base_url)
        self.flows[state] = flow
        params = {
            "response_type": "code",
            "client_id": cfg.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if cfg.scopes:
            params["scope"] = " ".join(cfg.scopes)
        params.update({k: str(v) for k, v in cfg.extra_params.items()})
        sep = "&" if "?" in cfg.authorize_url else "?"
        authorize_url = cfg.authorize_url + sep + urlencode(params)
        await self.rt.write(
            lambda c: c.execute(
                "INSERT INTO oauth_flows (state, provider, label, verifier, redirect_uri, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (state, provider, label or "", verifier, redirect_uri, flow.created_at),
            )
        )
        self.rt.bus.publish("oauth.started", provider=provider, state=state, label=label, callback_port=port)
        return {"oauth": True, "authorize_url": authorize_url, **flow.public()}

    async def _listen(self, cfg: OAuthProviderConfig) -> int:
        listener = self.listeners.get(cfg.redirect_port) if cfg.redirect_port else None
        if listener is not None and listener.path == cfg.redirect_path:
            return listener.port
        if listener is not None:
            raise _bad(
                f"port {cfg.redirect_port} already listens for another provider's callback; finish that sign-in first",
                409,
            )
        listener = CallbackListener(self, cfg.redirect_path)
        try:
            port = await listener.start(cfg.redirect_port)
        except OSError as exc:
            raise _bad(
                f"cannot listen for the OAuth callback on port {cfg.redirect_port}: {exc.strerror or exc}",
                409,
            ) from None
        self.listeners[cfg.redirect_port or -port] = listener
        return port

    def flow(self, state: str) -> Flow | None:
        flow = self.flows.get(state)
        if flow is not None and flow.status == "pending" and time.time() - flow.created_at > FLOW_TTL:
            flow.status, flow.error = "expired", "the sign-in took too long; start again"
        return flow

    async def callback(self, params: dict[str, str]) -> tuple[int, str, str]:
        """Handle a provider redirect (listener or ``GET /auth/callback``): (status, title, text) for the page."""
        state = params.get("state") or ""
        try:
            if params.get("error"):
                detail = params.get("error_description") or params["error"]
                await self.fail(state, f"the provider refused: {detail}")
                return 400, "Sign-in failed", f"The provider refused the authorization: {detail}"
            account = await self.complete(state, params.get("code") or "")
        except GatewayError as err:
            return 400, "Sign-in failed", err.message
        return 200, "Account added", f"The gateway added account {account['label']}. You can close this tab."

    async def fail(self, state: str, error: str) -> None:
        flow = self.flow(state)
        if flow is None or flow.status != "pending":
            raise _bad("unknown or expired OAuth state")
        flow.status, flow.error = "failed", error[:300]
        await self._finish(flow)

    async def complete(self, state: str, code: str) -> dict[str, Any]:
        """Trade the authorization code for tokens and add (or re-authorize) the account."""
        if "#" in code:  # some providers show "code#state" for the operator to paste
            code, _, pasted = code.partition("#")
            state = state or pasted
        if not state or not code:
            raise _bad("the callback needs both code and state")
        flow = self.flow(state)
        if flow is None:
            raise _bad("unknown or expired OAuth state")
        if flow.status == "completed" and flow.account_id:
            acc = self.rt.pool.find(flow.account_id)
            if acc is not None:
                return acc.public()
        if flow.status != "pending":
            raise _bad(f"this sign-in is {flow.status}" + (f": {flow.error}" if flow.error else ""))
        flow.status = "completing"
        cfg = self.config(flow.provider)
        try:
            tokens, extra = await self._token_request(
                cfg,
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": flow.redirect_uri,
                    "client_id": cfg.client_id,
                    "code_verifier": flow.verifier,
                    "state": flow.state,
                },
            )
        except OAuthError as exc:
            flow.status, flow.error = "failed", f"token exchange failed: {exc.message}"[:300]
            await self._finish(flow)
            raise _bad(flow.error, 502 if not exc.refused else 400) from None
        try:
            public = await self._store_account(flow, tokens, extra)
        except GatewayError as err:
            flow.status, flow.error = "failed", err.message[:300]
            await self._finish(flow)
            raise
        flow.status, flow.account_id = "completed", public["id"]
        await self._finish(flow)
        self.rt.bus.publish(
            "oauth.completed", provider=flow.provider, account=public["id"], label=public["label"]
        )
        return public

    async def _store_account(
        self, flow: Flow, tokens: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        if flow.account:
            acc = self.rt.pool.find(flow.account)
            if acc is None:
                raise GatewayError("not_found", "the account being re-authorized was removed")
            await self._save_tokens(acc, tokens)
            acc.cooldown_until, acc.failures = 0.0, 0
            if not self.rt.pool.reenable(acc, "re-authorized"):
                self.rt.pool.persist(acc)
            return acc.public()
        label = flow.label or _label_from(extra, flow)
        n = 2
        base = label
        while self.rt.pool.find(label) is not None and not flow.label:
            label, n = f"{base}-{n}", n + 1
        try:
            return await enroll(
                self.rt, provider=flow.provider, label=label, oauth=tokens, base_url=flow.base_url
            )
        except ValueError as exc:
            raise GatewayError("invalid_request", str(exc)) from None

    async def _finish(self, flow: Flow) -> None:
        state, account_id, error = flow.state, flow.account_id, flow.error
        await self.rt.write(
            lambda c: c.execute(
                "UPDATE oauth_flows SET completed_account = ?, error = ?, verifier = '' WHERE state = ?",
                (account_id, error, state),
            )
        )
        if flow.status == "failed":
            self.rt.bus.publish("oauth.failed", provider=flow.provider, state=state, error=error)
        self._close_idle_listeners()

    def _close_idle_listeners(self) -> None:
        """Stop listeners no pending sign-in needs. Often called from inside a listener's own handler, so
        the winding down (which waits for that very connection) runs as a separate task."""
        busy = {
            f.port
            for f in self.flows.values()
            if self.flow(f.state) is not None and f.status in ("pending", "completing")
        }
        for key, listener in list(self.listeners.items()):
            if listener.port not in busy:
                del self.listeners[key]
                for server in listener.stop():
                    self._spawn(server.wait_closed())

    # ------------------------------------------------------------ tokens

    async def _token_request(
        self, cfg: OAuthProviderConfig, form: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """POST the token endpoint (form-encoded, RFC 6749); returns (tokens to store, other response fields)."""
        http = self.rt.http
        if http is None:
            raise OAuthError("the gateway is not running")
        try:
            response = await http.post(
                cfg.token_url, data=form, headers={"accept": "application/json"}, timeout=TOKEN_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise OAuthError(f"cannot reach the token endpoint: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            response.status_code != 200
            or not isinstance(body, dict)
            or not isinstance(body.get("access_token"), str)
        ):
            detail = ""
            if isinstance(body, dict):
                detail = str(body.get("error_description") or body.get("error") or "")
            refused = response.status_code in (400, 401, 403)
            raise OAuthError(
                f"HTTP {response.status_code}" + (f": {detail[:200]}" if detail else ""), refused=refused
            )
        now = time.time()
        tokens: dict[str, Any] = {"access_token": body["access_token"], "obtained_at": now}
        if isinstance(body.get("refresh_token"), str):
            tokens["refresh_token"] = body["refresh_token"]
        expires_in = body.get("expires_in")
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
            tokens["expires_at"] = now + float(expires_in)
        for key in ("token_type", "scope"):
            if isinstance(body.get(key), str):
                tokens[key] = body[key]
        extra = {k: v for k, v in body.items() if k not in ("access_token", "refresh_token", "id_token")}
        return tokens, extra

    async def _save_tokens(self, acc: Account, tokens: dict[str, Any]) -> None:
        vault = self.rt.vault
        assert vault is not None
        merged = {**(acc.oauth or {}), **tokens}
        if "expires_at" not in tokens:
            merged.pop("expires_at", None)
        encrypted = vault.encrypt(json.dumps(merged))
        await self.rt.write(lambda c: account_store.update(c, acc.id, oauth=encrypted, auth="oauth"))
        acc.oauth = merged

    def expiring(self, acc: Account, now: float | None = None) -> bool:
        expires_at = (acc.oauth or {}).get("expires_at")
        now = time.time() if now is None else now
        return isinstance(expires_at, (int, float)) and expires_at - now < self.refresh_margin

    async def ensure_fresh(self, acc: Account) -> None:
        """Before a request: refresh a token that expires soon. Raises UpstreamError if it cannot be used."""
        if not acc.oauth or not self.expiring(acc):
            return
        try:
            await self.refresh(acc)
        except OAuthError as exc:
            expires_at = (acc.oauth or {}).get("expires_at") or 0
            if not exc.refused and acc.enabled and expires_at > time.time():
                log.info("account %s: %s; the current token still works", acc.label, exc.message)
                return
            raise UpstreamError(
                401 if exc.refused else 502,
                "auth" if exc.refused else "connection",
                f"OAuth refresh for {acc.label} failed: {exc.message}",
            ) from None

    async def refresh(self, acc: Account, *, force: bool = False) -> bool:
        """Refresh the account's tokens; True if this call refreshed them. One refresh at a time per account."""
        seen = (acc.oauth or {}).get("access_token")
        lock = self._locks.setdefault(acc.id, asyncio.Lock())
        async with lock:
            if (acc.oauth or {}).get("access_token") != seen:
                return False  # refreshed by whoever held the lock before us
            if not force and not self.expiring(acc):
                return False
            refresh_token = (acc.oauth or {}).get("refresh_token")
            cfg = self.rt.cfg.oauth.get(acc.provider)
            if not refresh_token or cfg is None:
                why = (
                    "there is no refresh token"
                    if not refresh_token
                    else f"the config has no [oauth.{acc.provider}]"
                )
                if ((acc.oauth or {}).get("expires_at") or 0) > time.time():
                    # not refused: the current token still works until it expires
                    raise OAuthError(f"cannot refresh: {why}")
                self.rt.pool.disable(
                    acc, f"the OAuth token expired and {why}: re-authorize the account", cause="auth"
                )
                raise OAuthError(f"cannot refresh: {why}", refused=True)
            try:
                tokens, _ = await self._token_request(
                    cfg,
                    {
                        "grant_type": "refresh_token",
                        "refresh_token": refresh_token,
                        "client_id": cfg.client_id,
                    },
                )
            except OAuthError as exc:
                acc.last_error = f"OAuth refresh failed: {exc.message}"[:500]
                self.rt.bus.publish(
                    "account.refresh_failed", account=acc.id, label=acc.label, error=exc.message
                )
                if exc.refused:
                    self.rt.pool.disable(
                        acc, f"OAuth refresh refused ({exc.message}): re-authorize the account", cause="auth"
                    )
                raise
            await self._save_tokens(acc, tokens)
            self.rt.bus.publish(
                "account.refreshed",
                account=acc.id,
                label=acc.label,
                expires_at=acc.oauth.get("expires_at") if acc.oauth else None,
            )
            self.rt.pool.reenable(acc, "OAuth token refreshed")
            return True

    def after_rejection(self, acc: Account) -> None:
        """The upstream rejected an OAuth token: try one refresh (at most every AUTO_REFRESH_GAP seconds)."""
        now = time.time()
        if (
            not (acc.oauth or {}).get("refresh_token")
            or now - self._auto_refreshed.get(acc.id, 0) < AUTO_REFRESH_GAP
        ):
            return
        self._auto_refreshed[acc.id] = now
        self._spawn(self._quiet_refresh(acc, force=True))

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quiet_refresh(self, acc: Account, *, force: bool = False) -> None:
        try:
            await self.refresh(acc, force=force)
        except OAuthError as exc:
            log.warning("account %s: OAuth refresh failed: %s", acc.label, exc.message)
        except GatewayError as err:
            log.warning("account %s: %s", acc.label, err.message)

    async def sweep(self) -> None:
        """Refresh tokens close to expiry; expire abandoned flows and close their listeners."""
        for acc in list(self.rt.pool):
            if acc.oauth and acc.enabled and self.expiring(acc) and acc.provider in self.rt.cfg.oauth:
                await self._quiet_refresh(acc)
        for state in list(self.flows):
            flow = self.flow(state)
            if (
                flow is not None
                and flow.status not in ("pending", "completing")
                and time.time() - flow.created_at > 2 * FLOW_TTL
            ):
                del self.flows[state]
        self._close_idle_listeners()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the sweeper must survive anything
                log.exception("OAuth sweep failed")


def _label_from(extra: dict[str, Any], flow: Flow) -> str:
    account = extra.get("account")
    if isinstance(account, dict):
        for key in ("email_address", "email"):
            if isinstance(account.get(key), str) and account[key]:
                return f"{flow.provider}-{account[key]}"[:100]
    if isinstance(extra.get("email"), str) and extra["email"]:
        return f"{flow.provider}-{extra['email']}"[:100]
    return f"{flow.provider}-oauth-{flow.state[:6].lower()}"
