"""Settlement: exactly once per request, close the credit hold, journal the usage row with its ledger
entries (one batched write), update the live traffic and publish."""

from __future__ import annotations

import time

from ..billing import pricing
from ..model import Usage
from ..store import ledger as ledger_store
from ..store import requests as request_store
from .call import Call


def settle(
    call: Call, usage: Usage | None, *, status: str, http_status: int, error: str | None = None
) -> None:
    """Exactly once per request: close the hold, journal hold+settlement with the usage row, publish."""
    if call.settled:
        return
    call.settled = True
    rt = call.rt
    flight = call.flight
    billable = usage is not None and (
        usage.output_tokens or usage.input_tokens or usage.cache_read_tokens or usage.cache_write_tokens
    )
    cost = pricing.cost(usage, call.price) if billable and usage is not None else None
    entries = rt.wallet.close(call.hold, cost.total_micro if cost is not None else None)
    now = time.time()
    flight.ended = now
    flight.state = {"ok": "done", "cancelled": "cancelled"}.get(status, "error")
    flight.status = http_status
    flight.error = error
    if cost is not None and usage is not None:
        flight.cost_micro = cost.total_micro
        flight.output_tokens = usage.output_tokens
        flight.input_tokens = usage.prompt_tokens
        flight.line_items = cost.items
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
        "day": time.strftime("%Y-%m-%d", time.gmtime(flight.started)),
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
    if call.capture is not None:  # [console] store_bodies: the bodies go with the usage row
        journal.append(call.capture.entry(call.request_id))
    rt.writer.insert(journal)  # the usage row and its ledger entries, in one go
    if (
        getattr(rt, "quota", None) is not None
        and call.subscription
        and cost is not None
        and usage is not None
    ):
        rt.quota.record(call.key["tenant_id"], usage)
    rt.traffic.close(flight)
    rt.request_tasks.pop(call.request_id, None)
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
        balance_micro=rt.wallet.balance[tenant_id],
    )
