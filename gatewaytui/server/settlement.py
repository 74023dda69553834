"""Settlement: exactly once per request, close the credit hold, journal the usage row with its ledger
entries (one batched write), update the live traffic and publish.

What the next request's admission and routing read (the hold closed in the wallet, the key's limits, the
request gone from the live traffic, so its account and session count it no more) is settled at once. An
answer the client has whole (a non-streamed answer, a stream that ran to its end) is settled by
``settle_soon``: at the loop's next turn, after its last bytes went out, with its journal, metrics and
"request.finished" event waiting in the runtime's backlog (``backlog.py``) for a moment the loop would
otherwise sit idle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from ..billing import pricing
from ..model import Usage
from ..store import ledger as ledger_store
from ..store import requests as request_store
from .call import Call

log = logging.getLogger("gatewaytui.billing")


def charge(call: Call, usage: Usage | None) -> pricing.Cost | None:
    """What a request costs (None: nothing to bill, the hold is released).

    Usage the upstream reported wrongly (not non-negative integers) is never trusted: the request is billed
    its hold, the bound it was admitted for. So is usage that cannot be priced for any other reason.
    """
    if usage is None:
        return None
    if usage.invalid:
        return pricing.bound_cost(call.hold.amount, f"the upstream reported invalid usage: {usage.invalid}")
    if not (usage.total_tokens or any(usage.server_tool_uses.values())):
        return None
    try:
        return pricing.cost(usage, call.price)
    except Exception:  # noqa: BLE001 - a usage shape nothing foresaw must not leave the hold open
        log.exception("request %s: usage could not be priced; billing its hold", call.request_id)
        return pricing.bound_cost(call.hold.amount, "the upstream's usage could not be priced")


def settle(
    call: Call, usage: Usage | None, *, status: str, http_status: int, error: str | None = None
) -> None:
    """Exactly once per request: close the hold, journal hold+settlement with the usage row, publish."""
    if call.settled:
        return
    call.settled = True
    _close(call, usage, status=status, http_status=http_status, error=error)


def settle_soon(
    call: Call, usage: Usage | None, *, status: str, http_status: int, error: str | None = None
) -> None:
    """Settle a request whose answer is being handed to the server: the call counts as settled at once, so
    nothing else settles it (a disconnect, the handler's end), and the books close at the loop's next turn,
    after the response bytes were written, so the client does not wait for the bookkeeping; its journal
    waits in the backlog."""
    if call.settled:
        return
    call.settled = True
    asyncio.get_running_loop().call_soon(_close_soon, call, usage, status, http_status, error)


def _close_soon(call: Call, usage: Usage | None, status: str, http_status: int, error: str | None) -> None:
    try:
        _close(call, usage, status=status, http_status=http_status, error=error, later=True)
    except Exception:  # noqa: BLE001 - the answer is out; the fault is the gateway's to report
        log.exception("request %s: settlement failed", call.request_id)


def settle_estimated(
    call: Call,
    usage: Usage,
    estimate: Awaitable[int],
    *,
    status: str,
    http_status: int,
    error: str | None = None,
) -> None:
    """Settle a cut stream whose input the upstream never reported, once ``estimate`` (the prompt's tokens,
    counted off the loop) is known. The call counts as settled at once, so nothing else settles it; the hold
    stays open until the count is done, and ``rt.track`` keeps the work alive through cancellation and
    shutdown."""
    if call.settled:
        return
    call.settled = True

    async def finish() -> None:
        usage.input_tokens = await estimate
        _close(call, usage, status=status, http_status=http_status, error=error)

    call.rt.track(finish())


def _close(
    call: Call,
    usage: Usage | None,
    *,
    status: str,
    http_status: int,
    error: str | None,
    later: bool = False,
) -> None:
    """Close the books now; journal and publish now, or (``later``) from the runtime's backlog."""
    rt = call.rt
    flight = call.flight
    cost = charge(call, usage)
    entries = rt.wallet.close(call.hold, cost.total_micro if cost is not None else None)
    used = None if usage is not None and usage.invalid else (usage.total_tokens if usage is not None else 0)
    rt.limits.close(call.ticket, cost.total_micro if cost is not None else None, used)
    if usage is not None and usage.invalid:
        log.warning(
            "request %s: upstream usage invalid (%s); billed its hold", call.request_id, usage.invalid
        )
        error = error or f"upstream reported invalid usage ({usage.invalid}); billed the hold"
    now = time.time()
    flight.ended = now
    flight.state = _FLIGHT_STATES.get(status, "error")
    flight.status = http_status
    flight.error = error
    if cost is not None and usage is not None:
        flight.cost_micro = cost.total_micro
        flight.output_tokens = usage.output_tokens
        flight.input_tokens = usage.prompt_tokens
        flight.line_items = cost.items
    if call.subscription and cost is not None and usage is not None:
        rt.quota.record(call.key["tenant_id"], usage)
    rt.traffic.close(flight)
    rt.request_tasks.pop(call.request_id, None)
    balance = rt.wallet.balance[call.key["tenant_id"]]
    if later:
        rt.backlog.add(_journal, call, usage, cost, entries, status, http_status, error, now, balance)
    else:
        _journal(call, usage, cost, entries, status, http_status, error, now, balance)


_FLIGHT_STATES = {"ok": "done", "cancelled": "cancelled"}  # any other status: "error"


_days: dict[int, str] = {}


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of a Unix time in UTC (formatted once per day: strftime costs ~4 us a request)."""
    n = int(ts // 86400)
    day = _days.get(n)
    if day is None:
        if len(_days) > 64:
            _days.clear()
        day = _days[n] = time.strftime("%Y-%m-%d", time.gmtime(n * 86400))
    return day


def _journal(
    call: Call,
    usage: Usage | None,
    cost: pricing.Cost | None,
    entries: list[tuple[str, int, str]],
    status: str,
    http_status: int,
    error: str | None,
    now: float,
    balance: int,
) -> None:
    """The usage row with its ledger entries (one write), the metrics and log line, the event."""
    rt = call.rt
    flight = call.flight
    u = usage or Usage()
    row = {
        "id": call.request_id,
        "tenant_id": call.key["tenant_id"],
        "key_id": call.key["id"],
        "route": call.route,
        "protocol": call.protocol.NAME,
        "model": call.model.name,
        "upstream_model": call.model.upstream,
        "account_id": flight.account_id or None,
        "stream": int(call.req.stream),
        "status": status,
        "http_status": http_status,
        "input_tokens": u.input_tokens if cost else 0,
        "output_tokens": u.output_tokens if cost else 0,
        "cache_read_tokens": u.cache_read_tokens if cost else 0,
        "cache_write_5m_tokens": u.cache_write_5m_tokens if cost else 0,
        "cache_write_1h_tokens": u.cache_write_1h_tokens if cost else 0,
        "reasoning_tokens": u.reasoning_tokens if cost else 0,
        "cost_micro": cost.total_micro if cost else 0,
        "hold_micro": call.hold.amount,
        "line_items": cost.items if cost else None,
        "price": call.price.json,
        "error": error,
        "attempts": call.attempts,
        "started_at": flight.started,
        "ttft_ms": (flight.first_token - flight.started) * 1000 if flight.first_token else None,
        "duration_ms": (now - flight.started) * 1000,
        "day": utc_day(flight.started),
        "requested_model": call.asked_for.name,  # differs from model when a fallback answered
    }
    tenant_id, request_id, origin = call.key["tenant_id"], call.request_id, rt.wallet.origin
    journal = [(request_store.INSERT, request_store.values(row))]
    journal += [
        (
            ledger_store.INSERT,
            ledger_store.entry(tenant_id, kind, amount, idem, request_id=request_id, origin=origin),
        )
        for kind, amount, idem in entries
    ]
    journal += rt.wallet.draws(call.hold)  # a shared store's credit slice: the cost comes off it alike
    if call.capture is not None:  # [console] store_bodies: the bodies go with the usage row
        journal.append(call.capture.entry(call.request_id))
    rt.writer.append(journal)  # the usage row and its ledger entries, in one go
    rt.telemetry.settled(call, row)  # metrics, the request log, the trace
    rt.bus.publish(
        "request.finished",
        id=call.request_id,
        tenant=flight.tenant,
        tenant_id=tenant_id,
        model=call.model.name,
        status=status,
        http_status=http_status,
        cost_micro=row["cost_micro"],
        account=flight.account,
        balance_micro=balance,
    )
