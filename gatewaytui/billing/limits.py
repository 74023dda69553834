"""Per-key spend budgets and per-key / per-tenant token-rate limits, held at admission exactly like credit.

Budgets. A key may carry a budget in micro-USD per period: ``day`` or ``month`` (calendar, UTC) or a rolling
window of ``<N>h`` hours. Admission holds the request's worst case against the key's budget as the wallet
holds it against the balance: a request is admitted only if ``budget - spent in the period - holds in flight
>= its worst case``, so under any concurrency the admitted worst case never passes the budget. Settlement
replaces the hold with the real cost. Refused: 402 when the worst case exceeds the whole budget (waiting
cannot help), else 429 with ``retry-after`` = when the period resets (or, rolling, when enough spend rolls
out of the window; when only requests in flight are in the way, one second).

Token rates. A key (``tpm``) and a tenant (``tpm`` on the tenant, else ``[limits] tenant_tpm_default``)
may be limited to tokens per minute (input + output, a sliding 60-second window). Admission counts the request's worst case (its input bound
plus its output ceiling); settlement corrects it to the tokens the upstream reported. Over the limit: 429
with ``retry-after``; a request whose worst case alone exceeds the limit: 400 (lower ``max_tokens``).

Spend per key is read from the request rows once per key (first use in this process), then kept in memory
as requests settle. Everything runs on the event loop: checks and records are atomic without locks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..model import GatewayError
from ..store import usage as usage_store
from ..store.keys import ROLLING
from .plans import Plans, ReaderSource
from .pricing import format_usd
from .quota import iso

WINDOW = 60.0  # token-rate window, seconds


def period_bounds(period: str, now: float) -> tuple[float, float | None]:
    """(start, reset) of the period containing ``now``; a rolling window has no reset (None)."""
    rolling = ROLLING.fullmatch(period)
    if rolling:
        return now - int(rolling.group(1)) * 3600.0, None
    at = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86400.0
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.timestamp(), following.timestamp()


class Window:
    """Amounts over time with a running total; entries are ``[time, amount]`` lists a caller may correct."""

    __slots__ = ("entries", "total")

    def __init__(self, entries: list[tuple[float, int]] | None = None) -> None:
        self.entries: deque[list[float]] = deque([at, amount] for at, amount in entries or [])
        self.total = sum(amount for _, amount in entries or [])

    def trim(self, since: float) -> None:
        while self.entries and self.entries[0][0] <= since:
            self.total -= int(self.entries.popleft()[1])

    def add(self, at: float, amount: int) -> list[float]:
        entry = [at, amount]
        self.entries.append(entry)
        self.total += amount
        return entry

    def correct(self, entry: list[float], amount: int) -> None:
        """Change a recorded amount (a worst case replaced by the real figure); a trimmed entry is left."""
        if self.entries and entry[0] >= self.entries[0][0]:
            self.total += amount - int(entry[1])
        entry[1] = amount

    def frees_at(self, needed: int, span: float) -> float:
        """When, as entries leave the ``span``, the total drops by at least ``needed``."""
        freed = 0
        for at, amount in self.entries:
            freed += int(amount)
            if freed >= needed:
                return at + span
        return self.entries[-1][0] + span if self.entries else 0.0


@dataclass(slots=True)
class Spend:
    """One key's settled spend in its current budget period (a window of settlements when rolling)."""

    period: str
    start: float
    reset: float | None
    window: Window


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds against its key's budget and the token-rate windows."""

    key_id: str
    budget_hold: int = 0
    tokens: list[tuple[Window, list[float]]] = field(default_factory=list)
    done: bool = False
    # on a shared store (billing/shared_limits.py) the checks are the database's: what they need
    tenant_id: int = 0
    budget: int | None = None
    period: str = ""
    start: float = 0.0
    reset: float | None = None
    rates: list[tuple[str, int, str]] = field(default_factory=list)  # (scope, tokens per minute, who)
    worst_tokens: int = 0
    counted: list[tuple[int, int]] = field(default_factory=list)  # (second, tokens) counted in every scope
    reserved: int = 0  # budget the store holds for this request
    rpm: int = 0  # the key's requests per minute, counted once per request by the store
    rpm_counted: bool = False

    @property
    def shared(self) -> bool:
        """Whether admission must go through the store's key checks (a budget to hold or a rate to count)."""
        return bool(
            self.budget_hold or (self.rates and self.worst_tokens) or (self.rpm and not self.rpm_counted)
        )

    def checks(self) -> list[tuple[str, int, str, int]]:
        """The counts the store must check and add for this ticket, sorted by scope: (scope, limit, who,
        amount): the tokens not counted yet against each token rate, and the request against the key's RPM
        if it was not counted yet."""
        tokens = max(0, self.worst_tokens - sum(n for _, n in self.counted))
        out = [(scope, limit, who, tokens) for scope, limit, who in self.rates if tokens]
        if self.rpm and not self.rpm_counted:
            out.append((f"rpm:{self.key_id}", self.rpm, "rpm", 1))
        return sorted(out)


class Limits:
    def __init__(
        self,
        readers: ReaderSource,
        plans: Plans,
        clock: Callable[[], float] = time.time,
        *,
        tenant_tpm: int = 0,
    ) -> None:
        self._readers = readers
        self._plans = plans
        self._clock = clock
        self.tenant_tpm = tenant_tpm  # tokens per minute of a tenant without its own limit (0: none)
        self._spend: dict[str, Spend] = {}
        self.held: dict[str, int] = {}  # key id -> budget held by requests in flight
        self._rates: dict[
            tuple[str, Any], Window
        ] = {}  # ("key", id) / ("tenant", id) -> tokens in the last minute

    # ------------------------------------------------------------------ relay hooks

    def admit(
        self, key: dict[str, Any], worst_micro: int, worst_tokens: int, *, replacing: Ticket | None = None
    ) -> Ticket:
        """Check the key's budget and the key's and tenant's token rates, then record the request against
        them; raises GatewayError (nothing recorded) when one refuses.

        ``replacing``: the same request's ticket for another model (a fallback re-admits the request at the
        new model's worst case); it is checked as if released, and released only if the new one is admitted.
        """
        now = self._clock()
        ticket = Ticket(key["id"])
        budget = key.get("budget_micro")
        if budget is not None and worst_micro:
            released = replacing.budget_hold if replacing is not None and not replacing.done else 0
            self._check_budget(key, budget, worst_micro, now, released)
            ticket.budget_hold = worst_micro
        windows = [(self._rate(scope, now), limit, who) for scope, limit, who in self.rates_of(key)]
        for window, limit, who in windows:
            check_rate(window, limit, who, worst_tokens, now, _held_in(replacing, window))
        self.close(replacing, None, 0)
        if ticket.budget_hold:
            self.held[key["id"]] = self.held.get(key["id"], 0) + ticket.budget_hold
        ticket.tokens = [(window, window.add(now, worst_tokens)) for window, _, _ in windows]
        return ticket

    def close(self, ticket: Ticket | None, cost_micro: int | None, tokens: int | None) -> None:
        """The request ended: its budget hold becomes its cost (None: released), its worst-case tokens the
        tokens it really used (None: unknown, the worst case stays). Closing twice is a no-op."""
        if ticket is None or ticket.done:
            return
        ticket.done = True
        if ticket.budget_hold:
            self.held[ticket.key_id] -= ticket.budget_hold
            if not self.held[ticket.key_id]:
                del self.held[ticket.key_id]
        spend = self._spend.get(ticket.key_id)
        if cost_micro and spend is not None:  # loaded: keep it current (an unloaded key reads its rows first)
            if spend.reset is None:  # rolling: each cost leaves the window in its own time
                spend.window.add(self._clock(), cost_micro)
            else:
                spend.window.total += cost_micro
        if tokens is not None:
            for window, entry in ticket.tokens:
                window.correct(entry, tokens)

    def rates_of(self, key: dict[str, Any]) -> list[tuple[tuple[str, Any], int, str]]:
        """The token-rate limits a key's requests count against: (scope, tokens per minute, who)."""
        rates = [(("key", key["id"]), key.get("tpm"), "this key")]
        tenant_tpm = self.tenant_limit(key["tenant_id"])
        if tenant_tpm:
            rates.append((("tenant", key["tenant_id"]), tenant_tpm, "this tenant"))
        return [(scope, int(limit), who) for scope, limit, who in rates if limit]

    def tenant_limit(self, tenant_id: int) -> int | None:
        """A tenant's tokens per minute: its own limit, else the configured default (None: no limit)."""
        plan = self._plans.get(tenant_id)
        return (plan.tpm if plan is not None else None) or self.tenant_tpm or None

    # ------------------------------------------------------------------ reporting

    def tenant_status(self, tenant_id: int) -> dict[str, Any]:
        """A tenant's token rate: its limit and the tokens counted in the last minute."""
        return {
            "tpm": self.tenant_limit(tenant_id),
            "tokens_last_minute": self._rate(("tenant", tenant_id), self._clock()).total,
        }

    def key_status(self, key: dict[str, Any]) -> dict[str, Any]:
        """Budget and token-rate figures for a key (as ``/tenant/keys`` shows them)."""
        now = self._clock()
        out: dict[str, Any] = {"tpm": key.get("tpm")}
        if key.get("tpm"):
            out["tokens_last_minute"] = self._rate(("key", key["id"]), now).total
        budget = key.get("budget_micro")
        if budget is None:
            return out
        spend = self._current(key, now)
        held = self.held.get(key["id"], 0)
        remaining = max(0, budget - spend.window.total - held)
        out.update(
            budget_usd=format_usd(budget),
            budget_period=spend.period,
            spent_usd=format_usd(spend.window.total),
            held_usd=format_usd(held),
            remaining_usd=format_usd(remaining),
            resets_at=iso(spend.reset),
            spent_micro=spend.window.total,
            held_micro=held,
            remaining_micro=remaining,
        )
        return out

    # ------------------------------------------------------------------ internals

    def _check_budget(
        self, key: dict[str, Any], budget: int, worst: int, now: float, released: int = 0
    ) -> None:
        spend = self._current(key, now)
        held = self.held.get(key["id"], 0) - released
        if worst <= budget - spend.window.total - held:
            return
        raise budget_refusal(
            budget,
            spend.period,
            spend.window.total,
            held,
            worst,
            now,
            spend.reset,
            lambda needed: spend.window.frees_at(needed, now - spend.start),
        )

    def _current(self, key: dict[str, Any], now: float) -> Spend:
        """The key's spend in the period containing ``now`` (read from its request rows on first use)."""
        period = key.get("budget_period") or "day"
        start, reset = period_bounds(period, now)
        spend = self._spend.get(key["id"])
        if spend is None or spend.period != period:
            window = Window(usage_store.key_costs(self._readers.get(), key["id"], start))
            if reset is not None:  # a calendar period needs only its total
                window.entries.clear()
            spend = self._spend[key["id"]] = Spend(period, start, reset, window)
        elif spend.reset is not None and now >= spend.reset:  # a new day or month: nothing spent yet
            spend.start, spend.reset, spend.window = start, reset, Window()
        elif spend.reset is None:
            spend.start = start
            spend.window.trim(start)
        return spend

    def _rate(self, scope: tuple[str, Any], now: float) -> Window:
        window = self._rates.get(scope)
        if window is None:
            window = self._rates[scope] = Window()
        window.trim(now - WINDOW)
        return window


def budget_refusal(
    budget: int,
    period: str,
    spent: int,
    held: int,
    worst: int,
    now: float,
    reset: float | None,
    frees_at: Callable[[int], float],
) -> GatewayError:
    """The answer to a request whose worst case does not fit in its key's budget: 402 when it exceeds the
    whole budget, else 429 with ``retry-after`` = when the period resets (a calendar period), when enough
    spend leaves the window (``frees_at(needed)``, a rolling one) or one second (only requests in flight are
    in the way)."""
    per = f"per {period}" if period in ("day", "month") else f"per rolling {period}"
    if worst > budget:
        return GatewayError(
            "billing",
            f"this request may cost up to {format_usd(worst)}, above this key's whole budget of "
            f"{format_usd(budget)} {per}; lower max_tokens or shorten the prompt",
            code="key_budget_exceeded",
        )
    if spent + worst <= budget:  # only requests still in flight are in the way
        retry, reset = 1.0, None
    else:
        if reset is None:
            reset = frees_at(spent + held + worst - budget)
        retry = max(1.0, reset - now)
    when = f"; it resets at {iso(reset)}" if reset is not None else ""
    return GatewayError(
        "rate_limit",
        f"this key's budget of {format_usd(budget)} {per} is used up: {format_usd(spent)} spent, "
        f"{format_usd(held)} held by requests in flight, this request may cost up to {format_usd(worst)}{when}",
        retry_after=retry,
        code="key_budget_exceeded",
    )


def _held_in(ticket: Ticket | None, window: Window) -> int:
    """Tokens a still-open ticket counts in ``window``."""
    if ticket is None or ticket.done:
        return 0
    return sum(
        int(entry[1])
        for w, entry in ticket.tokens
        if w is window and w.entries and entry[0] >= w.entries[0][0]
    )


def check_rate(window: Window, limit: int, who: str, worst: int, now: float, released: int = 0) -> None:
    if window.total - released + worst <= limit:
        return
    if worst > limit:
        raise GatewayError(
            "invalid_request",
            f"this request may use up to {worst:,} tokens (its input bound plus max_tokens), above {who}'s limit "
            f"of {limit:,} tokens per minute; lower max_tokens or shorten the prompt",
            code="token_rate_exceeded",
        )
    retry = max(1.0, window.frees_at(window.total - released + worst - limit, WINDOW) - now)
    raise GatewayError(
        "rate_limit",
        f"{who} is limited to {limit:,} tokens per minute: {window.total:,} used in the last minute and this "
        f"request may use up to {worst:,}",
        retry_after=retry,
        code="token_rate_exceeded",
    )
