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
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .backlog import Backlog
from .billing.caps import Caps
from .billing.keyring import Keyring
from .billing.limits import Limits
from .billing.plans import Plans
from .billing.quota import Quota
from .billing.stripe_billing import StripeBilling
from .billing.wallet import Wallet
from .bus import EventBus
from .catalog import Catalog
from .changes import Seen
from .config import Config, resolve_secrets
from .oauth import OAuthManager
from .offload import Offload
from .pool.account import Account
from .pool.enroll import default_base_url
from .pool.pool import Pool
from .store import accounts as account_store
from .store import db as dbmod
from .store import keys as key_store
from .store import ledger as ledger_store
from .store import notify
from .store import pg as pg_store
from .store import settings as settings_store
from .store import tenants as tenant_store
from .store.lock import ServerLock
from .store.spool import default_dir as spool_default_dir
from .store.writer import Writer
from .telemetry import Telemetry
from .traffic import Traffic
from .upstream import Upstream
from .vault import Vault, VaultError

if TYPE_CHECKING:
    from .billing.shared_wallet import SharedWallet

log = logging.getLogger("gatewaytui")
T = TypeVar("T")


async def stop_tasks(tasks: list[asyncio.Task[Any]], tries: int = 10) -> None:
    """Cancel background tasks and wait until they have ended, cancelling again each second a task that is
    still running (one that lost its cancellation to a race); after ``tries`` seconds the stragglers are
    logged and left behind, so that stopping never hangs."""
    pending = set(tasks)
    for task in pending:
        task.cancel()
    for _ in range(tries):
        if not pending:
            break
        _, pending = await asyncio.wait(pending, timeout=1.0)
        for task in pending:
            task.cancel()
    if pending:
        log.error("%d background tasks did not stop: %s", len(pending), sorted(t.get_name() for t in pending))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: an error of a stopped task is no news at shutdown


class Runtime:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.db_path = cfg.database.target  # a SQLite file, or a postgresql:// URL (store/pg.py)
        self.shared = cfg.database.shared  # several gateway processes share this store (PostgreSQL)
        self.bus = EventBus()
        self.backlog = Backlog()  # settlements waiting for the loop's idle moments (backlog.py)
        self.traffic = Traffic()
        self.catalog = Catalog(cfg.models, cfg.routing, cfg.fallbacks)
        self.wallet = Wallet()
        self.shared_wallet: SharedWallet | None = None  # the same object as wallet, on a PostgreSQL store
        if self.shared:
            from .billing.shared_wallet import SharedWallet

            self.wallet = self.shared_wallet = SharedWallet(
                cfg.database.target, lease=cfg.database.lease_seconds
            )
        self.writer = Writer(
            self.db_path,
            flush_interval=cfg.database.flush_interval_ms / 1000,
            spool_dir=(cfg.database.spool_dir or spool_default_dir()) if self.shared else None,
        )
        self.readers = dbmod.Readers(self.db_path)
        # one server per SQLite file (store/lock.py); a PostgreSQL store takes any number
        self.server_lock = ServerLock(cfg.database.path) if not self.shared else None
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
        if self.shared_wallet is not None:  # held in the store, across every instance
            from .billing.shared_limits import SharedLimits

            self.limits = self.shared_wallet.limits = SharedLimits(
                self.readers, self.plans, tenant_tpm=cfg.limits.tenant_tpm_default, wallet=self.shared_wallet
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
        self._quota_read_at = 0.0
        # account id -> the version (updated_at) of its state last written or applied here
        self._persisted_at: dict[str, float] = {}
        self._data_version = -1
        # keys and tenants as this process knows them: what changed elsewhere (the CLI) becomes events
        self.seen = Seen()
        self.base_url = f"http://{cfg.server.host}:{cfg.server.port}"

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        if self.server_lock is not None:
            self.server_lock.acquire()  # raises StoreLocked if another server serves this database
        try:
            await self._start()
        except BaseException:
            try:
                await self.stop()  # what started stops (the writer thread, pools); the lock is released
            except Exception:  # noqa: BLE001 - the start-up error is the one to report
                log.exception("cleaning up after a failed start")
            raise

    async def _start(self) -> None:
        resolve_secrets(self.cfg)  # the accounts' api_key_env variables: only starting the gateway needs them
        dbmod.migrate(self.db_path)
        key_file = self.cfg.security.secret_key_file or str(Path(self.cfg.database.path).with_suffix(".key"))
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
        if self.shared_wallet is not None:
            from .billing.shared_wallet import live_state

            self.shared_wallet.public_url = self.cfg.server.public_url
            self.shared_wallet.summary = lambda: live_state(list(self.traffic.inflight.values()))
            await self.shared_wallet.open()  # joins the cluster: lease, balances and holds of every instance
            self._tasks.append(asyncio.create_task(self.shared_wallet.run_lease(), name="gatewaytui-lease"))
            self.shared_wallet.slices.usable = lambda: self.writer.outage_since is None
            self._tasks.append(asyncio.create_task(self._give_back_slices(), name="gatewaytui-slices"))
            self.keyring.shared = True  # RPM counted by the store at admission (billing/shared_limits.py)
            self._tasks.append(asyncio.create_task(self.shared_wallet.limits.run(), name="gatewaytui-limits"))
        else:
            await self.write(self._database_changed)  # the watcher's first look: where its looks start
        self.upstream = Upstream(max_body=int(self.cfg.server.upstream_max_body_mb * (1 << 20)))
        self.http = self.upstream.httpx_client()
        self.oauth = OAuthManager(self)
        self.oauth.start()
        self._tasks.append(asyncio.create_task(self._watch(), name="gatewaytui-watch"))

    async def _give_back_slices(self) -> None:
        """Give the idle credit slices back (``billing/slices.py``), each after the settlements it drew from:
        the backlog's journal goes to the writer first, and the return is queued behind it."""
        from .billing.slices import GIVE_BACK_EVERY

        wallet = self.shared_wallet
        assert wallet is not None
        while True:
            await asyncio.sleep(GIVE_BACK_EVERY)
            if wallet.slices.by_tenant:
                self.backlog.drain()
                wallet.give_back(self.writer.submit)

    async def stop(self) -> None:
        self.backlog.drain()
        await stop_tasks(self._tasks)
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
        if self.shared_wallet is not None:
            await self.shared_wallet.close_pool()
        await asyncio.to_thread(self.readers.close)  # waits for reads still running on other threads
        if self.server_lock is not None:
            self.server_lock.release()

    def track(self, coro: Any) -> asyncio.Task[Any]:
        """Run work that must finish even if the request that started it is cancelled (settlement)."""
        task = asyncio.ensure_future(coro)
        self._settlements.add(task)
        task.add_done_callback(self._settlements.discard)
        return task

    # ------------------------------------------------------------ database access

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.readers.run, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.backlog.drain()  # the journal of answers already given goes first: no write overtakes it
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
        keys = key_store.listing(conn)
        self.keyring.load(keys)
        self.seen.load(keys, tenant_store.all_tenants(conn))
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
            unusable: str | None = str(exc)
        else:
            unusable = None
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
            unusable=unusable,
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
        state["updated_at"] = self._persisted_at[acc.id] = time.time()  # its version, across instances
        enabled, reason = int(acc.enabled), acc.disabled_reason

        def write(conn: sqlite3.Connection) -> None:
            account_store.save_state(conn, acc.id, state)
            account_store.update(conn, acc.id, enabled=enabled, disabled_reason=reason)

        self.writer.submit(write)

    # ------------------------------------------------------------ watching for changes made elsewhere

    async def _watch(self) -> None:
        if self.shared:
            return await self._watch_shared()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                self.pool.tick()
                self._warn_backlog()
                # asked on the writer's own connection, after this process's own writes (it announced them):
                # its data_version moves only for commits of other connections, so settlements journaled
                # here do not cost a full re-read of the state every interval
                if await self.write(self._database_changed):
                    before = self.writer.submitted
                    state = await self.read(self._read_state)
                    # a write of this process submitted during the read may be missing from it: apply the
                    # state, but leave the events to the next look, which must read again (this process's
                    # own writes do not move the writer connection's data_version)
                    announce = self.writer.submitted == before
                    if not announce:
                        self._data_version = -1
                    self._apply_changes(*state, announce=announce)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("change watcher failed")

    async def _watch_shared(self) -> None:
        """A PostgreSQL store: changes made by any instance or the CLI arrive as notifications (store/notify)
        and are applied at once, coalesced over ``COALESCE_S``; the clock work still runs every second. A
        change whose reading failed (the store restarting) is read again after ``retry`` seconds, doubling
        while the store stays away."""
        changed: set[str] = set()
        retry = 0.0  # > 0 while reading changes fails
        wake = asyncio.Event()

        def on_change(tables: set[str]) -> None:
            changed.update(tables)
            wake.set()

        listener = asyncio.create_task(notify.listen(self.db_path, on_change), name="gatewaytui-listen")
        last_tick = 0.0
        try:
            while True:
                try:  # (asyncio.timeout: wait_for on 3.11 loses a cancellation that meets a wake-up)
                    async with asyncio.timeout(retry or 1.0):
                        await wake.wait()
                    await asyncio.sleep(COALESCE_S)
                except TimeoutError:
                    pass
                wake.clear()
                try:
                    if time.monotonic() - last_tick >= 1.0:
                        last_tick = time.monotonic()
                        self.pool.tick()
                        self._warn_backlog()
                    if changed:
                        tables = set(changed)
                        changed.clear()
                        try:
                            await self._apply_shared(tables)
                        except Exception as exc:
                            if pg_store.retryable(exc):
                                changed.update(tables)  # not applied: read them again on the next round
                            raise
                        retry = 0.0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the watcher must survive anything
                    if not pg_store.retryable(exc):
                        log.exception("change watcher failed")
                        continue
                    if not retry:  # the store is down or restarting: a line, not a traceback a round
                        log.warning("change watcher: the store is unavailable (%s); retrying", exc)
                    retry = min(2 * retry, 2.0) if retry else 0.1
        finally:
            listener.cancel()

    async def _apply_shared(self, tables: set[str]) -> None:
        assert self.shared_wallet is not None
        if "ledger" in tables:
            for tenant_id in await self.shared_wallet.refresh():
                self.bus.publish(
                    "tenant.balance", tenant_id=tenant_id, balance_micro=self.wallet.balance[tenant_id]
                )
        if "tenants" in tables:
            self.plans.clear()  # tiers, subscription status and caps are read afresh
            if tables <= {"ledger", "tenants", "requests"}:  # else the full read below announces them
                await self.write(lambda conn: None)
                before = self.writer.submitted
                tenants = await self.read(tenant_store.all_tenants)
                if self.writer.submitted == before:
                    self._announce(self.seen.tenant_changes(tenants))
        if ("requests" in tables and time.monotonic() - self._quota_read_at >= 1.0) or "tenants" in tables:
            self._quota_read_at = time.monotonic()
            # this instance's own usage is in the store before the reread: a request that settled while the
            # writes were flushed is flushed too (else its tokens would be missing from the reread)
            for _ in range(3):
                await self.write(lambda conn: None)
                if not len(self.backlog) and not self.writer.pending:
                    self.quota.forget()  # tokens used on every instance are read afresh (once a second)
                    break
        if tables - {"ledger", "tenants", "requests"}:
            for _ in range(3):
                # this instance's own writes first, and none while reading: else the read could undo a
                # change made here a moment ago (an account removed, then re-added from a stale read)
                await self.write(lambda conn: None)
                before = self.writer.submitted
                keys, _, rows, states, settings, tenants = await self.read(self._read_state)
                if self.writer.submitted == before:
                    break
            else:
                return  # busy with changes of its own: the next notification reads again
            self._apply_changes(keys, [], rows, states, settings, tenants)
            self._apply_states(rows, states)

    def _apply_states(self, rows: list[dict[str, Any]], states: dict[str, Any]) -> None:
        """Health another instance recorded (a cooldown after a 429, a reset, a disable) applies here too:
        an account's state written later than this instance's own last write of it replaces its own."""
        for row in rows:
            acc = self.pool.accounts.get(row["id"])
            st = states.get(row["id"])
            if acc is None or not st or (st.get("updated_at") or 0) <= self._persisted_at.get(acc.id, 0):
                continue
            self._persisted_at[acc.id] = st["updated_at"]
            acc.enabled, acc.disabled_reason = bool(row["enabled"]), row.get("disabled_reason")
            acc.cooldown_until = st.get("cooldown_until") or 0.0
            acc.cause, acc.since, acc.last_error = st.get("cause"), st.get("since"), st.get("last_error")
            acc.failures = st.get("failures") or 0
            acc.model_cooldowns = dict(st.get("model_cooldowns") or {})
            acc.quota = st.get("quota")

    def _warn_backlog(self) -> None:
        if self.writer.pending > WRITER_BACKLOG_WARN:
            log.warning(
                "%d usage/ledger writes are queued: the database is not keeping up", self.writer.pending
            )

    def _read_state(self, conn: sqlite3.Connection) -> tuple[Any, ...]:
        external = (
            []
            if self.shared
            else ledger_store.external_since(conn, self.wallet.last_external_id, self.wallet.origin)
        )
        return (
            key_store.listing(conn),
            external,
            account_store.listing(conn),
            account_store.load_states(conn),
            settings_store.all_settings(conn),
            tenant_store.all_tenants(conn),
        )

    def _database_changed(self, conn: sqlite3.Connection) -> bool:
        """(On the writer's connection) whether another connection (the CLI) wrote the database since the
        last look."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def _apply_changes(
        self,
        keys: list[dict[str, Any]],
        external: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        states: dict[str, Any],
        settings: dict[str, Any],
        tenants: list[dict[str, Any]],
        *,
        announce: bool = True,
    ) -> None:
        if announce:  # keys and tenants changed elsewhere (the CLI): the events the actions publish here
            self._announce(self.seen.tenant_changes(tenants) + self.seen.key_changes(keys))
        self.keyring.load(keys)
        self.plans.clear()  # tiers and caps set by the CLI: re-read at the next request
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

    def _announce(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        for topic, data in events:
            self.bus.publish(topic, **data)


WRITER_BACKLOG_WARN = 50_000
# how often the database is checked for changes made by other processes (the CLI); README promises that a
# change reaches the running gateway within a second
WATCH_INTERVAL = 0.4
COALESCE_S = 0.05  # notifications arriving this close together are applied as one change
