"""Credit admission: in-memory holds over a ledger-derived balance.

The gateway is the single writer of its database, so admission is decided in memory on the event loop
(atomic without locks) and journaled to the ledger in batches: a request's hold and its settlement (or
release) are appended together with its usage row, in one transaction. Entries written by other
processes (the CLI's ``credits add``) are picked up by polling the ledger.

Rules:
- a request is admitted only if ``balance - holds in flight >= its worst case``; the hold is that worst case;
- settlement charges the real cost from the upstream's usage (streams cut by the client: what was
  generated); a failed request is released in full (only the attempt that answered is billed).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..model import GatewayError
from .pricing import format_usd


def refusal(amount: int, available: int) -> GatewayError:
    """The client's answer when a request's worst case exceeds the available balance."""
    return GatewayError(
        "billing",
        f"insufficient credit: this request may cost up to {format_usd(amount)} and the available balance is "
        f"{format_usd(max(0, available))}; add credit or lower max_tokens",
    )


@dataclass(slots=True)
class Hold:
    id: str
    tenant_id: int
    amount: int
    request_id: str
    charged: bool = True  # False: admitted on a subscription quota, no credit is reserved
    done: bool = False
    slice: Any = None  # the credit slice it was admitted from (a shared store's ``slices.Slice``)
    draw: int = 0  # what its settlement draws from that slice


class Wallet:
    def __init__(self, origin: str | None = None) -> None:
        self.origin = origin or "gw-" + secrets.token_hex(4)  # marks this process's ledger entries
        # the ledger sum, including entries still being journaled
        self.balance: dict[int, int] = defaultdict(int)
        self.held: dict[int, int] = defaultdict(int)
        self.holds: dict[str, Hold] = {}
        self.last_external_id = 0

    def load(self, balances: dict[int, int], max_ledger_id: int) -> None:
        self.balance.clear()
        self.balance.update(balances)
        self.last_external_id = max_ledger_id

    def available(self, tenant_id: int) -> int:
        return self.balance[tenant_id] - self.held[tenant_id]

    def hold(self, tenant_id: int, amount: int, request_id: str) -> Hold:
        if amount > self.available(tenant_id):
            raise refusal(amount, self.available(tenant_id))
        h = Hold(id="hold_" + request_id, tenant_id=tenant_id, amount=amount, request_id=request_id)
        self.held[tenant_id] += amount
        self.holds[h.id] = h
        return h

    async def secure(self, h: Hold, ticket: Any = None) -> None:
        """Nothing to do: admission was decided by ``hold`` (the shared wallet reserves in the store here,
        with the key budget and token rates of ``ticket``)."""

    async def resize(self, h: Hold, amount: int, ticket: Any = None) -> None:
        """Change an open hold's amount (its request re-admitted at another worst case: a fallback model);
        growing it is refused (402), nothing changed, when the difference is not available."""
        if h.done or not h.charged or amount == h.amount:
            return
        if amount - h.amount > self.available(h.tenant_id):
            raise refusal(amount, self.available(h.tenant_id) + h.amount)
        self.held[h.tenant_id] += amount - h.amount
        h.amount = amount

    def free_hold(self, tenant_id: int, request_id: str) -> Hold:
        """A hold of nothing (subscription traffic): tracked alike, never journaled as credit."""
        h = Hold(id="hold_" + request_id, tenant_id=tenant_id, amount=0, request_id=request_id, charged=False)
        self.holds[h.id] = h
        return h

    def close(self, h: Hold, cost: int | None) -> list[tuple[str, int, str]]:
        """End a hold: settle at ``cost`` or release (``cost is None``).

        Returns the ledger entries to journal as ``(kind, amount, idempotency_key)``; applies them to the
        in-memory balance at once. Closing twice is a no-op (exactly one settlement per request).
        """
        if h.done:
            return []
        h.done = True
        self.holds.pop(h.id, None)
        if not h.charged:
            return []
        self.held[h.tenant_id] -= h.amount
        entries = [("hold", -h.amount, f"hold:{h.request_id}")]
        if cost is None:
            entries.append(("release", h.amount, f"release:{h.request_id}"))
        else:
            entries.append(("settle", h.amount - cost, f"settle:{h.request_id}"))
        self.balance[h.tenant_id] += sum(amount for _, amount, _ in entries)
        return entries

    def draws(self, h: Hold) -> list[tuple[str, tuple[Any, ...]]]:
        """Statements to write with a closed hold's ledger entries, in the same transaction (a shared store's
        credit slice: ``SharedWallet``); none here."""
        return []

    async def credit(self, tenant_id: int, amount: int) -> None:
        """Apply an entry this process journaled outside request settlement (top-ups, refunds), once it is
        committed."""
        self.balance[tenant_id] += amount

    def apply_external(self, rows: list[dict[str, int]]) -> set[int]:
        changed = set()
        for row in rows:
            self.balance[row["tenant_id"]] += row["amount_micro"]
            self.last_external_id = max(self.last_external_id, row["id"])
            changed.add(row["tenant_id"])
        return changed

    def holds_of(self, tenant_id: int) -> list[Hold]:
        return [h for h in self.holds.values() if h.tenant_id == tenant_id]
