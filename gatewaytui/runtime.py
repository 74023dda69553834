"""The runtime: everything one gateway process holds, built once from the configuration.

Both front ends — the Textual console and ``--no-ui`` — run over one ``Runtime``; so do the admin
HTTP API and the console's actions (see ``admin``). No module keeps global state: it all hangs here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .billing.caps import Caps
from .billing.keyring import Keyring
from .billing.limits import Limits
from .billing.plans import Plans
from .billing.quota import Quota
from .billing.stripe_billing import StripeBilling
from .billing.wallet import Wallet
from .bus import EventBus
from .catalog import Catalog
from .config import Config
from .oauth import OAuthManager
from .offload import Offload
from .pool.account import Account
from .pool.enroll import default_base_url
from .pool.pool import Pool
from .store import accounts as account_store
from .store import db as dbmod
from .store import keys as key_store
from .store import ledger as ledger_store
from .store import settings as settings_store
from .store.writer import Writer
from .telemetry import Telemetry
from .traffic import Traffic
from .upstream import Upstream
from .vault import Vault, VaultError

log = logging.getLogger("gatewaytui")
T = TypeVar("T")


class Runtime:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.db_path = cfg.database.path
        self.bus = EventBus()
        self.traffic = Traffic()
        self.catalog = Catalog(cfg.models, cfg.routing, cfg.fallbacks)
        self.wallet = Wallet()
        self.writer = Writer(self.db_path, flush_interval=cfg.database.flush_interval_ms / 1000)
        self.readers = dbmod.Readers(self.db_path)
        self.pool = Pool(
            self.bus,
            strategy=cfg.routing.strategy,
            persist=self._persist_account,
            live=self.traffic.inflight.__contains__,
        )
        self.keyring = Keyring(self._lookup_key)
        self.plans = Plans(self.readers)  # tenants' tiers, subscription status and per-call caps
        self.quota = Quota(cfg.tiers, self.plans, self.readers)  # relay.admit/settle: subscription tokens
        self.caps = Caps(self.plans)  # relay.admit: per-call spending caps
        self.limits = Limits(  # relay.admit/settle: key budgets, token rates
            self.readers, self.plans, tenant_tpm=cfg.limits.tenant_tpm_default
        )
        # CPU-heavy per-request work off the event loop: token counts, and the decoding of large bodies
        self.counting = Offload("token counting", workers=2, backlog=16)
        self.decoding = Offload("large request bodies", workers=2, backlog=64)
        self.stripe = StripeBilling(cfg.stripe)
        self.telemetry = Telemetry(self)  # metrics, request log, traces (fed at settlement)
        self.vault: Vault | None = None
        self.oauth: OAuthManager | None = None  # OAuth accounts: PKCE flows and token refresh (set by start)
        self.upstream: Upstream | None = None  # the relay's upstream client (one aiohttp pool; set by start)
        self.http: httpx.AsyncClient | None = None  # httpx's API over the same pool (probes, OAuth)
        self.presets: dict[str, dict[str, Any]] = {
            name: {"system": p.system, "defaults": dict(p.defaults)} for name, p in cfg.presets.items()
        }
        self.started_at = time.time()
        self.draining = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._settlements: set[asyncio.Task[Any]] = set()
        # by request id, until settled (shutdown cuts these)
        self.request_tasks: dict[str, asyncio.Task[Any]] = {}
        self._watch_conn: sqlite3.Connection | None = None
        self._data_version = -1
        self.base_url = f"http://{cfg.server.host}:{cfg.server.port}"

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        dbmod.migrate(self.db_path)
        key_file = self.cfg.security.secret_key_file or str(Path(self.db_path).with_suffix(".key"))
        self.writer.start()
        conn = dbmod.connect(self.db_path)
        try:
            self.vault = Vault.open(self.cfg.security.secret_key_env, key_file, conn)
            upgraded = self.vault.upgrade(conn)
            if upgraded:
                log.warning("re-encrypted %d accounts' credentials under the scrypt-derived key", upgraded)
            self._sync_config_accounts(conn)
            self._recover(conn)
            self._load(conn)
        finally:
            conn.close()
        self._watch_conn = dbmod.connect(self.db_path, readonly=True)
        self._data_version = self._watch_conn.execute("PRAGMA data_version").fetchone()[0]
        self.upstream = Upstream(max_body=int(self.cfg.server.upstream_max_body_mb * (1 << 20)))
        self.http = self.upstream.httpx_client()
        self.oauth = OAuthManager(self)
        self.oauth.start()
        self._tasks.append(asyncio.create_task(self._watch(), name="gatewaytui-watch"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        if self._settlements:
            await asyncio.gather(*list(self._settlements), return_exceptions=True)
        if self.oauth is not None:
            await self.oauth.close()
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        if self.upstream is not None:
            await self.upstream.close()
            self.upstream = None
        self.counting.close()
        self.decoding.close()
        await asyncio.to_thread(self.writer.stop)
        self.telemetry.close()
        self.readers.close()
        if self._watch_conn is not None:
            self._watch_conn.close()
            self._watch_conn = None

    def track(self, coro: Any) -> asyncio.Task[Any]:
        """Run work that must finish even if the request that started it is cancelled (settlement)."""
        task = asyncio.ensure_future(coro)
        self._settlements.add(task)
        task.add_done_callback(self._settlements.discard)
        return task

    # ------------------------------------------------------------ database access

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self.readers.get()))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.writer.call(fn)

    def _lookup_key(self, digest: str) -> dict[str, Any] | None:
        return key_store.by_hash(self.readers.get(), digest)

    # ------------------------------------------------------------ loading

    def _sync_config_accounts(self, conn: sqlite3.Connection) -> None:
        """Accounts in the config file are upserted by label (the file is their source of truth)."""
        assert self.vault is not None
        with dbmod.Transaction(conn):
            for a in self.cfg.accounts:
                secret = self.vault.encrypt(a.api_key) if a.api_key else None
                fields = dict(
                    provider=a.provider,
                    base_url=a.base_url or default_base_url(a.provider),
                    secret=secret,
                    priority=a.priority,
                    weight=a.weight,
                    models=a.models,
                    rpm=a.rpm,
                    source="config",
                )
                existing = account_store.by_label(conn, a.label)
                if existing is None:
                    account_store.insert(conn, label=a.label, enabled=int(a.enabled), **fields)
                else:
                    account_store.update(conn, existing["id"], removed_at=None, **fields)

    def _recover(self, conn: sqlite3.Connection) -> None:
        """After a crash: release any hold journaled without its settlement."""
        orphans = ledger_store.unsettled_holds(conn)
        if not orphans:
            return
        with dbmod.Transaction(conn):
            for h in orphans:
                ledger_store.append(
                    conn,
                    h["tenant_id"],
                    "release",
                    -h["amount_micro"],
                    f"release:{h['request_id']}",
                    request_id=h["request_id"],
                    note="recovered after restart",
                    origin=self.wallet.origin,
                )
        log.warning("released %d holds left unsettled by an earlier run", len(orphans))

    def _load(self, conn: sqlite3.Connection) -> None:
        self._load_accounts(conn)
        self.keyring.load([k for k in key_store.listing(conn)])
        self.wallet.load(ledger_store.balances(conn), ledger_store.max_id(conn))
        stored_settings = settings_store.all_settings(conn)
        self.catalog.apply_settings(stored_settings)
        self.pool.apply_settings(stored_settings)
        stored_presets = settings_store.get(conn, "presets")
        if isinstance(stored_presets, dict):
            for name, preset in stored_presets.items():
                if isinstance(preset, dict):
                    self.presets[name] = preset

    def _load_accounts(self, conn: sqlite3.Connection) -> None:
        states = account_store.load_states(conn)
        config_headers = {a.label: a.headers for a in self.cfg.accounts}
        seen = set()
        for row in account_store.listing(conn):
            seen.add(row["id"])
            acc = self.account_from_row(row, states.get(row["id"]))
            acc.headers = dict(config_headers.get(acc.label, {}))
            self.pool.put(acc)
        for gone in set(self.pool.accounts) - seen:
            self.pool.remove(gone)

    def account_from_row(self, row: dict[str, Any], state: dict[str, Any] | None = None) -> Account:
        assert self.vault is not None
        api_key = oauth = None
        try:
            if row.get("secret"):
                api_key = self.vault.decrypt(row["secret"])
            if row.get("oauth"):
                import json

                oauth = json.loads(self.vault.decrypt(row["oauth"]))
        except VaultError as exc:
            log.error("account %s: %s", row["label"], exc)
        acc = Account(
            id=row["id"],
            label=row["label"],
            provider=row["provider"],
            base_url=row["base_url"] or default_base_url(row["provider"]),
            api_key=api_key,
            oauth=oauth,
            enabled=row["enabled"],
            disabled_reason=row.get("disabled_reason"),
            priority=row["priority"],
            weight=row["weight"],
            models=row["models"],
            rpm=row.get("rpm"),
            preferred=row["preferred"],
            source=row["source"],
        )
        if state:
            acc.cooldown_until = state.get("cooldown_until") or 0.0
            acc.cause, acc.since, acc.last_error = (
                state.get("cause"),
                state.get("since"),
                state.get("last_error"),
            )
            acc.failures = state.get("failures") or 0
            acc.model_cooldowns = state.get("model_cooldowns") or {}
            acc.quota = state.get("quota")
        return acc

    def _persist_account(self, acc: Account) -> None:
        state = acc.state_dict()
        enabled, reason = int(acc.enabled), acc.disabled_reason

        def write(conn: sqlite3.Connection) -> None:
            account_store.save_state(conn, acc.id, state)
            account_store.update(conn, acc.id, enabled=enabled, disabled_reason=reason)

        self.writer.submit(write)

    # ------------------------------------------------------------ watching for changes made elsewhere

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.pool.tick()
                if self.writer.pending > WRITER_BACKLOG_WARN:
                    log.warning(
                        "%d usage/ledger writes are queued: the database is not keeping up",
                        self.writer.pending,
                    )
                changes = await asyncio.to_thread(self._check_changes)
                if changes is not None:
                    self._apply_changes(*changes)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("change watcher failed")

    def _check_changes(self) -> tuple[Any, ...] | None:
        """(On a worker thread) read what changed since the last look, if the database changed at all."""
        assert self._watch_conn is not None
        version = self._watch_conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return None
        self._data_version = version
        conn = self.readers.get()
        keys = key_store.listing(conn)
        external = ledger_store.external_since(conn, self.wallet.last_external_id, self.wallet.origin)
        rows = account_store.listing(conn)
        states = account_store.load_states(conn)
        settings = settings_store.all_settings(conn)
        return keys, external, rows, states, settings

    def _apply_changes(
        self,
        keys: list[dict[str, Any]],
        external: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        states: dict[str, Any],
        settings: dict[str, Any],
    ) -> None:
        self.keyring.load(keys)
        changed = self.wallet.apply_external(external)
        for tenant_id in changed:
            self.bus.publish(
                "tenant.balance", tenant_id=tenant_id, balance_micro=self.wallet.balance[tenant_id]
            )
        known = set(self.pool.accounts)
        for row in rows:
            if row["id"] not in known:
                self.pool.put(self.account_from_row(row, states.get(row["id"])))
                self.bus.publish("account.added", account=row["id"], label=row["label"])
        for gone in known - {r["id"] for r in rows}:
            self.pool.remove(gone)
            self.bus.publish("account.removed", account=gone)
        self.catalog.apply_settings(settings)
        self.pool.apply_settings(settings)


WRITER_BACKLOG_WARN = 50_000
