"""Credit slices: on a PostgreSQL store, a tenant this instance admits often is admitted from memory.

Plain credit admission on a shared store is one round trip to the database per request
(``SharedWallet.secure``). For a tenant this instance admits at least ``SLICE_AFTER`` times within one
second, the instance instead reserves a slice of the tenant's credit in the store, with the same conditional
UPDATE (a hold of its own, ``credit_holds`` row ``slice:<instance>:<tenant>:<n>``, schema ``m010``), and
admits that tenant's requests against it in memory until it runs short; then it grows the slice (one round
trip) or, refused, admits exactly as before. The promise "the spend admitted never exceeds the balance"
holds as it did: a slice is a hold the store granted, and the requests admitted from it never hold more than
it (``used <= size``). A settled request draws its cost (at most its hold) from the slice in the same write
as its ledger entries, so ``balance - held`` in the store stays what it was and the rest of the slice stays
reserved for the next requests.

A slice is given back (on the writer, after every settlement queued before it) once no request of it is in
flight and it has admitted nothing for ``SLICE_IDLE`` seconds, and all of them at a clean shutdown. It is
a hold like any other for the lease: an instance that dies has its slices released by the survivors with
its other holds. An instance admits from a slice only while its lease was renewed within half the lease
(so a slice is never used after the survivors may have released it) and while its writer reaches the store
(during an outage paid admission answers 503 as before). A slice whose tenant the store shows over-committed
(a refund took the balance below what is held) admits nothing more and goes back when idle.

What a slice costs: credit reserved ahead (up to ``SLICE_HOLDS`` worst cases, and never more than
``1 / SLICE_SHARE`` of what the tenant has left across the cluster) is not available to the other instances
until it is given back; a request whose worst case is large against the tenant's balance is admitted exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

SLICE_AFTER = 32  # admissions of one tenant within one second on this instance before it takes a slice
SLICE_HOLDS = 32  # a slice grows by this many worst cases of the request that asked, plus its in flight ...
SLICE_SHARE = 4  # ... and never more than this part of what the tenant has left across the cluster
SLICE_IDLE = 1.0  # seconds without an admission after which an idle slice is given back
GIVE_BACK_EVERY = 0.5  # seconds between two looks for slices to give back


@dataclass(slots=True, eq=False)
class Slice:
    id: str
    tenant_id: int
    size: int = 0  # reserved for it in the store, less the costs its settled requests drew
    used: int = 0  # the worst cases of its requests in flight
    last: float = 0.0  # when it last admitted (time.monotonic)
    closed: bool = False  # admits nothing more; given back once idle

    @property
    def free(self) -> int:
        return self.size - self.used


class Slices:
    """This instance's slices, one per tenant at most."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.by_tenant: dict[int, Slice] = {}
        self.growing: set[int] = set()  # tenants whose slice is being reserved or grown
        self.valid_until = 0.0  # time.monotonic past which no slice admits (the lease's renewal + lease / 2)
        self.usable: Callable[[], bool] = lambda: True  # whether the store takes writes (no outage)
        self.admitted = 0  # requests admitted from a slice (in memory)
        self._made = 0
        self._rate: dict[int, tuple[int, int]] = {}  # tenant -> (second, admissions in it)

    def take(self, tenant_id: int, amount: int, now: float) -> Slice | None:
        """Admit ``amount`` from the tenant's slice, if it has room and may admit now."""
        s = self.by_tenant.get(tenant_id)
        if s is None or s.closed or s.free < amount or now >= self.valid_until or not self.usable():
            return None
        s.used += amount
        s.last = now
        self.admitted += 1
        return s

    def want(self, tenant_id: int, amount: int, available: int, now: float) -> tuple[Slice, int] | None:
        """The slice to reserve (or grow) and by how much, when the tenant is admitted often enough here and
        has enough left (``available``: across the cluster, as last read) for a slice worth having."""
        s = self.by_tenant.get(tenant_id)
        if s is None:  # a slice once the tenant is busy here; one it has already grows when short
            second, count = self._rate.get(tenant_id, (0, 0))
            count = count + 1 if second == int(now) else 1
            self._rate[tenant_id] = (int(now), count)
            if count < SLICE_AFTER:
                return None
        if (s is not None and s.closed) or tenant_id in self.growing:
            return None
        if now >= self.valid_until or not self.usable():
            return None
        # room for what it has in flight and SLICE_HOLDS more like this one, within a share of what is left
        grant = min(SLICE_HOLDS * amount + (s.used if s is not None else 0), available // SLICE_SHARE)
        if grant < 2 * amount:
            if s is not None:  # too little left to grow it: it goes back, and the tenant is admitted exactly
                s.closed = True
            return None
        if s is None:
            self._made += 1
            s = Slice(f"slice:{self.origin}:{tenant_id}:{self._made}", tenant_id)
        s.last = now
        return s, grant

    def granted(self, s: Slice, amount: int) -> None:
        s.size += amount
        self.by_tenant[s.tenant_id] = s

    def settle(self, s: Slice, amount: int, cost: int | None) -> int:
        """A request admitted from ``s`` for ``amount`` ended (``cost`` None: released); what it draws."""
        s.used -= amount
        draw = min(cost, amount) if cost else 0
        s.size -= draw
        return draw

    def close(self, tenant_id: int) -> None:
        s = self.by_tenant.get(tenant_id)
        if s is not None:
            s.closed = True

    def lapse(self) -> None:
        """The lease had run out: the survivors released every slice. Forget them (their requests in flight
        still settle; their draws find no slice and change nothing)."""
        self.by_tenant.clear()
        self.valid_until = 0.0

    def idle(self) -> list[Slice]:
        """Take out the slices to give back: no request of theirs in flight, and idle or closed."""
        now = time.monotonic()
        out = [
            s
            for s in self.by_tenant.values()
            if s.used == 0 and s.tenant_id not in self.growing and (s.closed or now - s.last >= SLICE_IDLE)
        ]
        for s in out:
            del self.by_tenant[s.tenant_id]
        return out

    def ids(self) -> set[str]:
        return {s.id for s in self.by_tenant.values()}
