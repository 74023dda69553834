"""Key budgets and token rates held across every instance of a PostgreSQL store, exactly like credit.

``SharedLimits`` keeps ``Limits``' interface but decides nothing in memory: ``admit`` only sizes the ticket
(refusing at once what no state could admit: a worst case above the key's whole budget, 402, or above a
token rate, 400), and the shared wallet's ``secure`` reserves it in the database in the same statement as
the credit (``store/key_limits.py``): ``budget - spent in the period - held by every instance >= worst
case``, and for each token rate ``tokens counted in the last minute + worst case <= limit``, under locks
that serialize every instance's admissions of the key. So under any concurrency, across processes, the
admitted worst case never passes the budget or the rate. A key with neither costs nothing extra: it keeps
the one conditional UPDATE of credit.

A budget hold rides on the request's credit hold (owner, lease): settlement's ledger entry ends both, and
a killed instance's are released by the survivors within the lease. Spend is kept per hour of the
requests' start: a calendar period (UTC day or month) sums whole hours, exact; a rolling ``<N>h`` window
sums the hours it touches, its oldest one whole, so it errs only toward refusing (a cost leaves the window
up to an hour late). Token rates count per second of the database's clock; a count stays up to a second
longer than 60 s. Settlement corrects a worst case to the tokens used within ``CORRECT_S`` seconds (until
then the worst case still counts: again only toward refusing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from ..model import GatewayError
from ..store import key_limits as store
from ..store.keys import ROLLING
from .limits import WINDOW, Limits, Ticket, Window, budget_refusal, check_rate, period_bounds
from .pricing import format_usd
from .quota import iso

log = logging.getLogger("gatewaytui.billing")

CORRECT_S = 0.25  # seconds between writes of token-count corrections
PRUNE_S = 600.0  # seconds between deletions of counts no window reads any more


def scope_name(scope: tuple[str, Any]) -> str:
    """``("key", id)`` as the store names it: ``key:<id>`` (``tenant:<id>``)."""
    return f"{scope[0]}:{scope[1]}"


class SharedLimits(Limits):
    def __init__(self, *args: Any, wallet: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wallet = wallet  # the SharedWallet: its connection pool
        self._corrections: dict[tuple[str, int], int] = defaultdict(int)

    # ------------------------------------------------------------------ relay hooks

    def admit(
        self, key: dict[str, Any], worst_micro: int, worst_tokens: int, *, replacing: Ticket | None = None
    ) -> Ticket:
        """Size the request's ticket for the store's checks (``SharedWallet.secure``/``resize``); refuse at
        once a worst case above the whole budget (402) or above a token rate (400). ``replacing``: the same
        request's ticket on an earlier model; the new one carries what the store already holds for it."""
        now = self._clock()
        ticket = Ticket(key["id"], tenant_id=key["tenant_id"], rpm=int(key.get("rpm") or 0))
        if replacing is not None and not replacing.done:
            ticket.reserved, ticket.counted = replacing.reserved, list(replacing.counted)
            ticket.rpm_counted = replacing.rpm_counted
            replacing.done = True
        budget = key.get("budget_micro")
        if budget is not None and worst_micro:
            period = key.get("budget_period") or "day"
            start, reset = period_bounds(period, now)
            if worst_micro > budget:
                raise budget_refusal(budget, period, 0, 0, worst_micro, now, reset, lambda _: now)
            ticket.budget, ticket.budget_hold = budget, worst_micro
            ticket.period, ticket.start, ticket.reset = period, start, reset
        rates = sorted((scope_name(scope), limit, who) for scope, limit, who in self.rates_of(key))
        for _, limit, who in rates:
            check_rate(Window(), limit, who, worst_tokens, now)  # 400 when the worst case alone is over
        ticket.rates, ticket.worst_tokens = rates, worst_tokens
        return ticket

    def close(self, ticket: Ticket | None, cost_micro: int | None, tokens: int | None) -> None:
        """The request ended: its budget hold ends with its credit hold (the store's trigger, in the same
        transaction as its cost); tokens counted beyond what it used are taken back (the latest first)."""
        if ticket is None or ticket.done:
            return
        ticket.done = True
        if tokens is None or not ticket.counted:
            return
        over = sum(n for _, n in ticket.counted) - tokens
        for second, n in reversed(ticket.counted):
            take = min(n, over)
            if take <= 0:
                break
            over -= take
            for scope, _, _ in ticket.rates:
                self._corrections[(scope, second)] += take

    # ------------------------------------------------------------------ the store's checks

    async def budget_refusal(self, conn: Any, ticket: Ticket) -> GatewayError:
        """The answer to a request the store refused on its key's budget, with the figures read now."""
        now = self._clock()
        held, hours = await store.spend(conn, ticket.key_id, int(ticket.start // 3600))
        rolling = ROLLING.fullmatch(ticket.period)
        span = int(rolling.group(1)) * 3600.0 if rolling else 0.0

        def frees_at(needed: int) -> float:  # an hour's spend leaves the window when all of it has
            freed = 0
            for hour, spent in hours:
                freed += spent
                if freed >= needed:
                    return (hour + 1) * 3600 + span
            return now + span

        assert ticket.budget is not None
        return budget_refusal(
            ticket.budget,
            ticket.period,
            sum(spent for _, spent in hours),
            held - ticket.reserved,
            ticket.budget_hold,
            now,
            ticket.reset,
            frees_at,
        )

    async def rate_refusal(
        self, conn: Any, ticket: Ticket, check: tuple[str, int, str, int], at_second: int
    ) -> GatewayError:
        """The answer to a request the store refused on a token rate or the key's RPM (``check``: the full
        one), with ``retry-after`` from its counts read now."""
        scope, limit, who, amount = check
        window = Window([(float(s), n) for s, n in await store.rate(conn, scope, at_second - int(WINDOW))])
        if who == "rpm":
            retry = max(1.0, window.frees_at(window.total + amount - limit, WINDOW) - at_second)
            return GatewayError(
                "rate_limit", f"this key is limited to {limit} requests per minute", retry_after=retry
            )
        counted = sum(n for _, n in ticket.counted)
        try:
            check_rate(window, limit, who, ticket.worst_tokens, float(at_second), counted)
        except GatewayError as err:
            return err
        return GatewayError(  # the window emptied since: try again at once
            "rate_limit",
            f"{who} is limited to {limit:,} tokens per minute",
            retry_after=1.0,
            code="token_rate_exceeded",
        )

    async def run(self) -> None:
        """Write token-count corrections every ``CORRECT_S`` seconds, and prune old counts now and then."""
        pruned = 0.0
        while True:
            await asyncio.sleep(CORRECT_S)
            corrections, self._corrections = self._corrections, defaultdict(int)
            try:
                async with self.wallet.pool.connection() as conn:
                    if corrections:
                        await store.correct(conn, corrections)
                    if time.monotonic() - pruned > PRUNE_S:
                        await store.prune(conn, int(time.time()))
                        pruned = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worst cases stay counted: only ever stricter
                log.debug("token-count corrections not written: %s", exc)

    # ------------------------------------------------------------------ reporting (every instance's)

    def _tokens(self, conn: Any, scope: str) -> int:
        """Tokens counted for ``scope`` in the last minute by every instance, less this instance's
        corrections not written yet."""
        since = int(self._clock()) - int(WINDOW)
        pending = sum(n for (s, at), n in self._corrections.items() if s == scope and at > since)
        return max(0, store.tokens_now(conn, scope, since) - pending)

    def tenant_status(self, tenant_id: int) -> dict[str, Any]:
        tpm = self.tenant_limit(tenant_id)  # without a limit nothing is counted: no read
        counted = self._tokens(self._readers.get(), f"tenant:{tenant_id}") if tpm else 0
        return {"tpm": tpm, "tokens_last_minute": counted}

    def key_status(self, key: dict[str, Any]) -> dict[str, Any]:
        now = self._clock()
        conn = self._readers.get()
        out: dict[str, Any] = {"tpm": key.get("tpm")}
        if key.get("tpm"):
            out["tokens_last_minute"] = self._tokens(conn, f"key:{key['id']}")
        budget = key.get("budget_micro")
        if budget is None:
            return out
        period = key.get("budget_period") or "day"
        start, reset = period_bounds(period, now)
        held, spent = store.spend_now(conn, key["id"], int(start // 3600))
        remaining = max(0, budget - spent - held)
        out.update(
            budget_usd=format_usd(budget),
            budget_period=period,
            spent_usd=format_usd(spent),
            held_usd=format_usd(held),
            remaining_usd=format_usd(remaining),
            resets_at=iso(reset),
            spent_micro=spent,
            held_micro=held,
            remaining_micro=remaining,
        )
        return out
