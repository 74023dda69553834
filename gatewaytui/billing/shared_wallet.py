"""Credit admission shared by every gateway process on one PostgreSQL store.

``SharedWallet`` keeps ``Wallet``'s interface (the relay and settlement use it the same way) and adds
``secure``: after ``hold`` has reserved a request's worst case locally, ``secure`` reserves it in the
database with one conditional UPDATE of the tenant's credit row (``store/credit.py``), so the promise
"the spend admitted never exceeds the balance" holds across all instances. Settlement is unchanged: the
hold and settle (or release) entries go to the ledger in one batched write, and that write ends the
database hold (a trigger), exactly once.

Each instance renews a lease every ``lease / 6`` seconds and sweeps as often, on a connection of its own
(admissions crowding the pool cannot hold the renewal back): an instance that stops
renewing (killed, cut off) has its holds released by the survivors once its lease has run out, so credit
held by a dead process comes back within ``lease + lease / 6`` seconds (35 s by default). With each renewal
the instance publishes a compact summary of its live state (``live_state``: in-flight count and up to
``LIVE_STREAMS`` in-flight streams, no secrets, no prompts) and reads the cluster-wide balances and holds, so
every instance's console shows the whole cluster within ``lease / 6`` seconds.

A tenant this instance admits often is admitted from a credit slice it reserved ahead, in memory
(``slices.py``): the same promise, one round trip per slice instead of one per request.

A key with a budget, a token rate (its own or its tenant's) or an RPM limit is admitted with those in the
same statement (``secure`` with its ``SharedLimits`` ticket, ``store/key_limits.py``).

When the database cannot be reached, paid admission fails with 503 ``unavailable`` (in the client's
protocol), and so does any request whose key's limits the store counts; other subscription traffic, which
reserves no credit, is not affected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import psycopg
from psycopg import OperationalError

from ..model import GatewayError
from ..store import credit as credit_store
from ..store import key_limits as limits_store
from ..store.pg import UNREACHABLE
from .limits import Ticket
from .slices import Slice, Slices
from .wallet import Hold, Wallet, refusal

log = logging.getLogger("gatewaytui.billing")

ADMISSION_TIMEOUT = 3.0  # seconds to get a connection for an admission before answering 503
ORPHAN_AFTER = 10.0  # own holds untracked for this long are released (a cancelled admission)
LIVE_STREAMS = 20  # in-flight streams an instance publishes with its lease (the oldest first)
LIVE_FIELDS = ("id", "tenant", "model", "account", "state", "started", "input_tokens", "output_tokens")


def live_state(flights: Iterable[Any], limit: int = LIVE_STREAMS) -> dict[str, Any]:
    """What an instance publishes of its traffic: the in-flight count and the oldest ``limit`` in-flight
    requests (``traffic.Flight``), each only by the fields in ``LIVE_FIELDS``."""
    live = sorted((f for f in flights if f.ended is None), key=lambda f: (f.started, f.id))
    return {
        "inflight": len(live),
        "streams": [{name: getattr(f, name) for name in LIVE_FIELDS} for f in live[:limit]],
    }


class SharedWallet(Wallet):
    shared = True

    def __init__(self, url: str, *, lease: float = 30.0, origin: str | None = None) -> None:
        super().__init__(origin)
        self.url = url
        self.lease = lease
        self.cluster_held: dict[int, int] = {}  # held by every instance, as of the last refresh
        self.public_url = ""
        self.lease_lapsed = 0  # times this instance found its own lease gone (it was cut off that long)
        self.summary: Callable[[], dict[str, Any]] | None = None  # live state published with the lease
        self._pool: Any = None
        self._own: Any = None  # the lease's own connection: admissions crowding the pool cannot starve it
        self._own_lock = asyncio.Lock()
        self._line: Any = None  # the AdmissionLine: plain credit admissions on their own connection
        self.limits: Any = None  # the SharedLimits whose tickets ``secure`` reserves (their refusals)
        self._reads = self._applied = 0  # refreshes started / the latest one applied
        self.slices = Slices(self.origin)  # credit reserved ahead for tenants admitted often (slices.py)

    # ------------------------------------------------------------ life cycle

    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        from ..store.pg import StoreUnavailable

        self._pool = AsyncConnectionPool(
            self.url,
            min_size=2,
            max_size=16,
            kwargs={"autocommit": True, "options": "-c statement_timeout=10000"},
            open=False,
            timeout=ADMISSION_TIMEOUT,
            reconnect_timeout=0,  # keep trying for ever: the store may come back
        )
        try:
            await self._pool.open(wait=True, timeout=30)
        except PoolTimeout as exc:
            await self._pool.close()
            self._pool = None
            raise StoreUnavailable(exc) from exc
        from ..store.admission import AdmissionLine

        self._line = AdmissionLine(self.url, connect_timeout=ADMISSION_TIMEOUT)
        await self.heartbeat()
        await self.refresh()

    async def close_pool(self) -> None:
        if self._line is not None:
            await self._line.close()
            self._line = None
        if self._pool is None:
            return
        try:
            async with self._pool.connection(timeout=2) as conn:
                self.slices.lapse()  # every settlement is written by now: the slices go back
                await credit_store.release_slices(conn, self.origin)
                await credit_store.leave(conn, self.origin)
        except Exception as exc:  # noqa: BLE001 - the lease runs out instead
            log.warning("could not leave the cluster cleanly (%s); the lease will run out", exc)
        await self._pool.close()
        self._pool = None
        if self._own is not None:
            await self._own.close()
            self._own = None

    @asynccontextmanager
    async def _lease_conn(self) -> AsyncIterator[Any]:
        """The connection of the lease work (renewal, sweep, balances), apart from the admissions' pool: a
        burst that keeps every pooled connection busy cannot hold the renewal back until the lease runs
        out. One user at a time; reconnected after a failure."""
        async with self._own_lock:
            if self._own is None or self._own.closed:
                self._own = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5, options="-c statement_timeout=10000"
                )
            try:
                yield self._own
            except UNREACHABLE:
                await self._own.close()  # the server went away: a fresh connection next time
                raise

    # ------------------------------------------------------------ admission

    async def secure(self, h: Hold, ticket: Ticket | None = None) -> None:
        """Reserve a hold made by ``hold`` in the shared store, or undo it and raise (402/503). With a
        ``ticket`` that holds a key budget or counts a token rate or the key's RPM (``SharedLimits``), those
        are reserved in the same statement (refused: 402, or 429 with ``retry-after``)."""
        check: Callable[[], Awaitable[bool]]
        if _beyond_the_store(h.amount, ticket):  # no balance, budget or rate covers it (max_tokens = 2**64)
            self._undo(h)
            raise refusal(h.amount, self.available(h.tenant_id))
        if ticket is not None and ticket.shared:
            check = partial(self._admit_limited, h, ticket, h.amount if h.charged else 0, resize=False)
        elif not h.charged or h.amount <= 0:
            return
        else:
            s = self.slices.take(h.tenant_id, h.amount, time.monotonic())
            if s is not None:  # admitted from this instance's slice of the tenant's credit
                h.slice = s
                return
            check = partial(self._admit, h)
        ok = False
        try:
            ok = await self._guarded(check)
        finally:
            if not ok:
                self._undo(h)

    async def resize(self, h: Hold, amount: int, ticket: Ticket | None = None) -> None:
        """Resize a reserved hold in the shared store (a request re-admitted on a fallback model): growing it
        only if the cluster's available credit covers the difference (and, with a ``ticket``, the key's
        budget and token rates the growth of theirs); refused (402/429, or 503 when the store is
        unreachable), nothing changed."""
        if h.done:
            return
        if _beyond_the_store(amount, ticket):
            raise refusal(amount, self.available(h.tenant_id) + h.amount)
        if ticket is not None and ticket.shared:
            resize = h.charged and h.amount > 0  # else nothing is reserved yet: reserve the whole amount
            credit = (amount - h.amount if resize else amount) if h.charged else 0
            await self._guarded(partial(self._admit_limited, h, ticket, credit, resize=resize))
            if h.charged:
                self.held[h.tenant_id] += amount - h.amount
                h.amount = amount
            return
        if not h.charged or amount == h.amount:
            return
        if h.slice is not None:  # admitted from a slice: it grows there (the slice grown first if short)
            s, delta = h.slice, amount - h.amount
            if delta > 0 and (time.monotonic() >= self.slices.valid_until or not self.slices.usable()):
                raise unreachable()  # the slice may be released by now: no new reservation from it
            short = delta - s.free
            if short > 0 and (s.closed or not await self._guarded(partial(self._grow, s, short))):
                raise refusal(amount, self.available(h.tenant_id) + h.amount)
            s.used += delta
            self.held[h.tenant_id] += delta
            h.amount = amount
            return

        async def change() -> bool:
            async with self._pool.connection() as conn:
                if h.amount <= 0:  # nothing was reserved in the store (a zero hold): reserve it now
                    done = await credit_store.admit(conn, h.tenant_id, amount, h.request_id, self.origin)
                else:
                    done = await credit_store.resize(conn, h.tenant_id, h.request_id, amount - h.amount)
                if done:
                    return True
                left = await credit_store.available(conn, h.tenant_id)
            raise refusal(amount, left + h.amount)

        await self._guarded(change)
        self.held[h.tenant_id] += amount - h.amount
        h.amount = amount

    async def _guarded(self, admit: Callable[[], Awaitable[bool]]) -> bool:
        """Run an admission against the store: once more on a dropped pooled connection; 503 when the store
        cannot be reached (fail closed); the store's own refusal (402) as it is. Any other exception (a
        constraint violated, a programming error) is a bug, and surfaces as one (500, logged)."""
        try:
            try:
                return await admit()
            except (
                OperationalError
            ):  # pooled connections the server dropped (a restart): weed them, once more
                await self._pool.check()
                return await admit()
        except UNREACHABLE as exc:  # the store cannot be reached: fail closed
            log.warning(
                "admission failed: the store is unreachable (%s)", str(exc).strip() or type(exc).__name__
            )
            raise unreachable() from None

    async def _admit(self, h: Hold) -> bool:
        now = time.monotonic()
        want = self.slices.want(h.tenant_id, h.amount, self.available(h.tenant_id) + h.amount, now)
        if want is not None and await self._grow(*want):
            s = self.slices.take(h.tenant_id, h.amount, now)
            if s is not None:
                h.slice = s
                return True
        if await self._line.admit(h.tenant_id, h.amount, h.request_id, self.origin):
            return True
        async with self._pool.connection() as conn:
            left = await credit_store.available(conn, h.tenant_id)
        self.balance[h.tenant_id] = left + self.cluster_held.get(h.tenant_id, 0)
        raise refusal(h.amount, left)

    async def _admit_limited(self, h: Hold, ticket: Ticket, amount: int, *, resize: bool) -> bool:
        """Credit, the key's budget, its token rates and its RPM in one statement (``store/key_limits.py``)."""
        key_amount = (ticket.budget_hold if ticket.budget is not None else 0) - ticket.reserved
        checks = ticket.checks()
        async with self._pool.connection() as conn:
            verdict, second = await limits_store.admit(
                conn,
                request_id=h.request_id,
                tenant_id=h.tenant_id,
                amount=amount,
                owner=self.origin,
                resize=resize,
                key_id=ticket.key_id,
                budget=ticket.budget,
                key_amount=key_amount,
                from_hour=int(ticket.start // 3600),
                scopes=[scope for scope, _, _, _ in checks],
                limits=[limit for _, limit, _, _ in checks],
                amounts=[n for _, _, _, n in checks],
            )
            if verdict == "ok":
                ticket.reserved += key_amount
                tokens = next((n for _, _, who, n in checks if who != "rpm"), 0)
                if tokens:
                    ticket.counted.append((second, tokens))
                ticket.rpm_counted = True
                return True
            if verdict == "budget":
                raise await self.limits.budget_refusal(conn, ticket)
            if verdict.startswith("rate:"):
                raise await self.limits.rate_refusal(conn, ticket, checks[int(verdict[5:]) - 1], second)
            left = await credit_store.available(conn, h.tenant_id)
        whole = amount + h.amount if resize else amount
        if not resize:
            self.balance[h.tenant_id] = left + self.cluster_held.get(h.tenant_id, 0)
        raise refusal(whole, left + (h.amount if resize else 0))

    async def _grow(self, s: Slice, amount: int) -> bool:
        """Reserve ``amount`` more for slice ``s`` in the store; False when the tenant's credit left in the
        cluster does not cover it."""
        self.slices.growing.add(s.tenant_id)
        try:
            async with self._pool.connection() as conn:
                done = await credit_store.grow_slice(conn, s.tenant_id, s.id, amount, self.origin)
        finally:
            self.slices.growing.discard(s.tenant_id)
        if done:
            self.slices.granted(s, amount)
        else:  # the tenant's credit is spoken for across the cluster: its slice goes back, exact from here
            self.slices.close(s.tenant_id)
        return done

    def close(self, h: Hold, cost: int | None) -> list[tuple[str, int, str]]:
        entries = super().close(h, cost)
        if entries and h.slice is not None:
            h.draw = self.slices.settle(h.slice, h.amount, cost)
        return entries

    def draws(self, h: Hold) -> list[tuple[str, tuple[Any, ...]]]:
        if h.slice is None or not h.draw:
            return []
        return [(credit_store.DRAW, (h.request_id, h.slice.id, h.tenant_id, h.draw, time.time()))]

    def give_back(self, submit: Callable[[Callable[[Any], None]], Any]) -> None:
        """Queue the idle slices' return on the writer (``submit``), after the settlements queued before."""
        for s in self.slices.idle():
            submit(partial(credit_store.return_slice, tenant_id=s.tenant_id, slice_id=s.id))

    def _undo(self, h: Hold) -> None:
        if h.done:
            return
        h.done = True
        self.holds.pop(h.id, None)
        self.held[h.tenant_id] -= h.amount

    def available(self, tenant_id: int) -> int:
        return self.balance[tenant_id] - self.held_by_all(tenant_id)

    def held_by_all(self, tenant_id: int) -> int:
        """Credit held by requests in flight on every instance (as of the last refresh; never less than what
        this instance holds now)."""
        return max(self.cluster_held.get(tenant_id, 0), self.held[tenant_id])

    def hold(self, tenant_id: int, amount: int, request_id: str) -> Hold:
        """Track the hold locally; the decision is ``secure``'s (the store's), not this process's."""
        h = Hold(id="hold_" + request_id, tenant_id=tenant_id, amount=amount, request_id=request_id)
        self.held[tenant_id] += amount
        self.holds[h.id] = h
        return h

    # ------------------------------------------------------------ shared state

    async def credit(self, tenant_id: int, amount: int) -> None:
        """A top-up or refund this process committed: the balances are read from the store, which holds it.
        Adding ``amount`` to the balance instead counted it twice whenever the change notification's refresh
        (which reads the store, the entry included) came first."""
        await self.refresh()

    async def _totals(self) -> list[tuple[int, int, int]]:
        async with self._lease_conn() as conn:
            return await credit_store.totals(conn)

    async def refresh(self) -> set[int]:
        """Balances and cluster-wide holds from the store; the tenants whose balance changed. Of refreshes
        that overlap, the one whose read started last wins."""
        self._reads += 1
        read = self._reads
        try:
            rows = await self._totals()
        except OperationalError:  # the server dropped the connection (a restart): once more, reconnected
            rows = await self._totals()
        if read < self._applied:
            return set()
        self._applied = read
        changed = set()
        for tenant_id, balance, held in rows:
            if self.balance.get(tenant_id) != balance:
                changed.add(tenant_id)
            self.balance[tenant_id] = balance
            self.cluster_held[tenant_id] = held
            if held > balance:  # over-committed (a refund, a chargeback): its slice admits no more
                self.slices.close(tenant_id)
        return changed

    async def heartbeat(self) -> None:
        live = json.dumps(self.summary() if self.summary is not None else {}, separators=(",", ":"))
        started = time.monotonic()
        async with self._lease_conn() as conn:
            renewed = await credit_store.renew(
                conn, self.origin, self.lease, socket.gethostname(), os.getpid(), self.public_url, live
            )
        if not renewed:  # registered anew: any slice it had was released with its lease (or none yet)
            self.slices.lapse()
        # the survivors release nothing of this instance before its lease runs out: slices admit until half
        self.slices.valid_until = started + self.lease / 2
        if not renewed and self.holds:
            self.lease_lapsed += 1
            log.error(
                "this instance's lease had run out (cut off from the store for over %.0f s): its %d holds "
                "were released by the others; their settlements still charge the real cost",
                self.lease,
                len(self.holds),
            )

    async def sweep(self) -> list[tuple[int, int]]:
        """Release the holds of instances whose lease ran out, and this instance's untracked ones."""
        keep = {h.request_id for h in self.holds.values()} | self.slices.ids()
        async with self._lease_conn() as conn:
            released = await credit_store.sweep(conn)
            released += await credit_store.release_own(conn, self.origin, keep, ORPHAN_AFTER)
        for tenant_id, amount in released:
            log.warning(
                "released %d micro-USD of tenant %d held by a gone instance or request", amount, tenant_id
            )
        return released

    async def run_lease(self) -> None:
        """Renew the lease (publishing the live state), sweep, and read the cluster-wide balances and holds,
        every ``lease / 6`` seconds, for the life of the process."""
        period = max(0.5, self.lease / 6)
        while True:
            await asyncio.sleep(period)
            try:
                await self.heartbeat()
                await self.sweep()
                await self.refresh()  # holds taken elsewhere raise no notification
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store is down: retried next period
                log.warning("lease renewal failed: %s", str(exc).strip() or type(exc).__name__)

    @property
    def pool(self) -> Any:
        return self._pool

    async def instances(self, timeout: float = ADMISSION_TIMEOUT) -> list[dict[str, Any]]:
        """The live instances of the cluster (``store.credit.instances``)."""
        async with self._pool.connection(timeout=timeout) as conn:
            return await credit_store.instances(conn)


def unreachable() -> GatewayError:
    """The answer (503) to paid admission while the store cannot be reached: fail closed."""
    return GatewayError(
        "unavailable",
        "the gateway's store is unreachable; paid requests are refused until it is back",
        retry_after=5,
    )


STORE_INT_MAX = (1 << 63) - 1  # PostgreSQL's bigint: the store's amounts, balances and token counts


def _beyond_the_store(amount: int, ticket: Ticket | None) -> bool:
    """Whether a number of this admission is too large for the store's integers: no balance, budget or token
    rate can cover it, so it is refused here (402) instead of failing in the database (a 500)."""
    if amount > STORE_INT_MAX:
        return True
    if ticket is None or not ticket.shared:
        return False
    return ticket.budget_hold > STORE_INT_MAX or any(n > STORE_INT_MAX for *_, n in ticket.checks())
