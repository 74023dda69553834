"""Per-key spend budgets and per-key / per-tenant token-rate limits (issue 17, items 1 and 2): the domain
(``billing.limits``) with a frozen clock, and admission through the running gateway."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import GatewayHandle, until

from gatewaytui.billing import limits
from gatewaytui.model import GatewayError
from gatewaytui.store import keys as key_store
from gatewaytui.store import requests as request_store
from gatewaytui.store import tenants as tenant_store


async def mint(
    gw: GatewayHandle, tenant: str = "acme", *, usd: float = 100.0, **fields: Any
) -> tuple[str, dict[str, Any]]:
    """A key with budget / tpm fields, on a tenant with plenty of credit."""
    secret = await gw.mint(tenant, usd=usd)
    tenant_id = gw.rt.keyring.authenticate(secret)["tenant_id"]
    row, secret = await gw.rt.write(lambda c: key_store.mint(c, tenant_id, **fields))
    gw.rt.keyring.put(row)
    return secret, row


def haiku(text: str = "hi", max_tokens: int = 50) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }


async def post(h: httpx.AsyncClient, secret: str, body: dict[str, Any]) -> httpx.Response:
    return await h.post("/v1/messages", json=body, headers={"x-api-key": secret})


# ------------------------------------------------------------------------------------- budgets, end to end


async def test_a_tiny_daily_budget_is_never_passed_under_concurrency(gateway: GatewayHandle) -> None:
    """$0.001 a day and $100 of credit: the admitted worst cases never pass the budget, however many
    requests arrive at once; past it, 429 with the time the day resets."""
    secret, row = await mint(gateway, budget_micro=1_000, budget_period="day")
    worst = None
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        replies = await asyncio.gather(*(post(h, secret, haiku("hi [sleep:300]")) for _ in range(8)))
        ok = [r for r in replies if r.status_code == 200]
        await gateway.flush()
        holds = [
            request_store.get(gateway.rt.readers.get(), r.headers["request-id"])["hold_micro"] for r in ok
        ]
        worst = holds[0]
        assert len(ok) == 1_000 // worst >= 2, "as many as the budget covers at their worst case, no more"
        for r in replies:
            if r.status_code != 200:
                assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
                assert r.headers["retry-after"] == "1", "only requests in flight were in the way"
        # keep going one at a time: refused as soon as spent + worst case would pass the budget
        while True:
            await gateway.flush()  # on a shared store a settlement ends its hold when its batch commits
            r = await post(h, secret, haiku())
            if r.status_code != 200:
                break
        spent = gateway.rt.limits.key_status(row)
        assert r.status_code == 429, r.text
        assert "budget of $0.001000 per day is used up" in r.json()["error"]["message"]
        midnight = (datetime.now(UTC).timestamp() // 86400 + 1) * 86400
        assert abs(int(r.headers["retry-after"]) - (midnight - datetime.now(UTC).timestamp())) < 5
        whole = await post(h, secret, haiku(max_tokens=1_000))  # its worst case alone passes the budget
        assert (
            whole.status_code == 402 and "above this key's whole budget" in whole.json()["error"]["message"]
        )
        listed = (await h.get("/tenant/keys", headers={"x-api-key": secret})).json()["data"]
    await gateway.flush()
    spent_micro = sum(
        x["cost_micro"]
        for x in request_store.recent(gateway.rt.readers.get(), 100)
        if x["key_id"] == row["id"]
    )
    assert spent_micro <= 1_000 and spent_micro + worst > 1_000
    assert spent["spent_usd"] == f"$0.{spent_micro:06d}" and spent["held_usd"] == "$0.000000"
    mine = next(k for k in listed if k["id"] == row["id"])
    assert mine["budget_usd"] == "$0.001000" and mine["budget_period"] == "day"
    assert mine["remaining_usd"] == f"$0.{1_000 - spent_micro:06d}"
    assert mine["resets_at"].endswith("T00:00:00Z")


async def test_a_budget_refusal_speaks_the_clients_protocol(gateway: GatewayHandle) -> None:
    secret, _ = await mint(gateway, budget_micro=1, budget_period="month")
    body = {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        r = await h.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"})
    assert r.status_code == 402
    assert r.json()["error"]["code"] == "key_budget_exceeded" and "per month" in r.json()["error"]["message"]


@pytest.mark.parametrize("fields", [{"budget_micro": 5_000_000, "budget_period": "day"}, {"tpm": 10**6}, {}])
async def test_a_worst_case_beyond_any_integer_is_refused_not_a_500(
    gateway: GatewayHandle, fields: dict[str, Any]
) -> None:
    """max_tokens = 2**64 - 1: its worst case fits no integer column of either store, so no balance, budget
    or rate covers it; a client error in the caller's protocol, nothing held."""
    secret, _ = await mint(gateway, **fields)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        r = await post(h, secret, haiku(max_tokens=2**64 - 1))
        assert 400 <= r.status_code < 500 and r.json()["type"] == "error", r.text
        ok = await post(h, secret, haiku())
    assert ok.status_code == 200, ok.text
    await gateway.flush()
    assert not gateway.rt.wallet.holds


# ------------------------------------------------------------------------------------- token rates, end to end


async def test_a_tpm_200_key_gets_429_with_retry_after(gateway: GatewayHandle) -> None:
    secret, row = await mint(gateway, tpm=200)
    body = haiku("hi [usage in=100 out=50]", max_tokens=60)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        first = await post(h, secret, body)
        assert first.status_code == 200, first.text
        # corrected to the real usage when the request settles, just after its answer went out
        assert await until(lambda: gateway.rt.limits.key_status(row)["tokens_last_minute"] == 150), (
            gateway.rt.limits.key_status(row)
        )
        second = await post(h, secret, body)
        chat = await h.post(
            "/v1/chat/completions",
            json={**body, "model": "gpt-4o"},
            headers={"authorization": f"Bearer {secret}"},
        )
        alone = await post(h, secret, haiku(max_tokens=300))
    assert second.status_code == 429 and second.json()["error"]["type"] == "rate_limit_error"
    assert "limited to 200 tokens per minute" in second.json()["error"]["message"]
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert chat.status_code == 429 and chat.json()["error"]["code"] == "token_rate_exceeded"
    assert "retry-after" in chat.headers
    assert alone.status_code == 400 and "above this key's limit of 200" in alone.json()["error"]["message"]


async def test_a_tenants_token_rate_spans_its_keys(gateway: GatewayHandle) -> None:
    first, _ = await mint(gateway, "shared")
    second, _ = await mint(gateway, "shared")
    tenant = await gateway.rt.write(lambda c: tenant_store.set_tpm(c, "shared", 250))
    gateway.rt.plans.put(tenant)
    body = haiku("hi [usage in=100 out=50]", max_tokens=60)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        assert (await post(h, first, body)).status_code == 200
        r = await post(h, second, body)
    assert (
        r.status_code == 429
        and "this tenant is limited to 250 tokens per minute" in r.json()["error"]["message"]
    )


# ------------------------------------------------------------------------------------- the domain, frozen clock


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NoPlans:
    def get(self, tenant_id: int) -> None:
        return None


class NoRows:
    """A reader whose key has spent nothing before."""

    def get(self) -> Any:
        class Conn:
            def execute(self, *_: Any) -> list[Any]:
                return []

        return Conn()


def domain(now: float) -> tuple[limits.Limits, Clock]:
    clock = Clock(now)
    return limits.Limits(NoRows(), NoPlans(), clock), clock  # type: ignore[arg-type]


def test_period_bounds_are_calendar_days_months_or_rolling_hours() -> None:
    at = datetime(2026, 12, 31, 15, 30, tzinfo=UTC).timestamp()
    assert limits.period_bounds("day", at) == (
        datetime(2026, 12, 31, tzinfo=UTC).timestamp(),
        datetime(2027, 1, 1, tzinfo=UTC).timestamp(),
    )
    assert limits.period_bounds("month", at) == (
        datetime(2026, 12, 1, tzinfo=UTC).timestamp(),
        datetime(2027, 1, 1, tzinfo=UTC).timestamp(),
    )
    assert limits.period_bounds("24h", at) == (at - 86400, None)
    for bad in ("week", "0h", "h", "24"):
        with pytest.raises(ValueError):
            key_store.check_period(bad)


def test_holds_count_against_the_budget_until_they_settle() -> None:
    lim, clock = domain(datetime(2026, 5, 5, 12, tzinfo=UTC).timestamp())
    key = {"id": "k1", "tenant_id": 1, "budget_micro": 1_000, "budget_period": "day"}
    tickets = [lim.admit(key, 400, 10), lim.admit(key, 400, 10)]
    with pytest.raises(GatewayError) as err:
        lim.admit(key, 400, 10)
    assert err.value.kind == "rate_limit" and err.value.retry_after == 1.0
    lim.close(tickets[0], 100, 5)  # settled for less than its hold: room for one more
    third = lim.admit(key, 400, 10)
    lim.close(tickets[1], None, 0)  # released: costs nothing
    lim.close(third, 500, 5)
    lim.close(third, 500, 5)  # twice is once
    assert lim.key_status(key)["spent_usd"] == "$0.000600" and lim.held == {}
    with pytest.raises(GatewayError) as err:
        lim.admit(key, 401, 10)  # 600 spent + 401 > 1,000
    assert err.value.retry_after == 12 * 3600
    clock.now += 12 * 3600  # the next day
    lim.close(lim.admit(key, 1_000, 10), 1_000, 5)


def test_a_rolling_budget_frees_up_as_spend_leaves_the_window() -> None:
    lim, clock = domain(1_000_000.0)
    key = {"id": "k1", "tenant_id": 1, "budget_micro": 1_000, "budget_period": "2h"}
    lim.close(lim.admit(key, 600, 1), 600, 1)
    clock.now += 3600
    lim.close(lim.admit(key, 300, 1), 300, 1)
    with pytest.raises(GatewayError) as err:
        lim.admit(key, 500, 1)
    assert err.value.retry_after == 3600, "when the first 600 leaves the 2-hour window"
    clock.now += 3600
    lim.admit(key, 500, 1)


def test_token_rate_is_a_sliding_minute_corrected_at_settlement() -> None:
    lim, clock = domain(5_000.0)
    key = {"id": "k1", "tenant_id": 1, "tpm": 200}
    ticket = lim.admit(key, 0, 180)
    with pytest.raises(GatewayError):
        lim.admit(key, 0, 30)  # 180 held at its worst
    lim.close(ticket, 0, 40)  # it really used 40
    lim.admit(key, 0, 150)
    clock.now += 30
    with pytest.raises(GatewayError) as err:
        lim.admit(key, 0, 100)
    assert err.value.kind == "rate_limit" and err.value.retry_after == 30
    clock.now += 30.5
    lim.admit(key, 0, 100)


async def test_a_fallback_moves_the_keys_budget_hold_and_token_count(
    make_gateway: Any, upstream: Any
) -> None:
    """A key with a budget and a token rate whose model's only account fails, served by its fallback: the
    request is re-admitted at the fallback's worst case (on a shared store: the same hold resized in the
    store); once settled, the key holds nothing, its spend is the cost billed and its tokens the real use."""
    from test_fallbacks import CHAIN, accounts

    gw = await make_gateway(accounts=accounts(upstream.base_url), fallbacks=CHAIN)
    secret, row = await mint(gw, budget_micro=1_000_000, budget_period="day", tpm=100_000)
    upstream.fail_key("key-a", status=500)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi [usage in=100 out=20]"}],
    }
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:
        r = await post(h, secret, body)
    assert r.status_code == 200, r.text
    await gw.flush()
    billed = request_store.get(gw.rt.readers.get(), r.headers["request-id"])
    assert billed["model"] == "gpt-4o" and billed["cost_micro"] > 0
    status = gw.rt.limits.key_status(row)
    assert (status["spent_micro"], status["held_micro"]) == (billed["cost_micro"], 0)
    assert status["tokens_last_minute"] == 120


async def test_a_rolling_budget_refuses_until_its_spend_leaves_the_window(gateway: GatewayHandle) -> None:
    """A 2-hour rolling budget with spend from 90 minutes ago: 429 until that spend leaves the window
    (in memory: to the second; on a shared store, by whole hours: up to an hour later, never earlier)."""
    import time

    secret, row = await mint(gateway, budget_micro=1_000, budget_period="2h")
    started = time.time() - 5400
    await gateway.rt.write(
        lambda c: request_store.insert(
            c,
            {
                "id": "req_earlier",
                "tenant_id": row["tenant_id"],
                "key_id": row["id"],
                "route": "v1",
                "model": "claude-haiku-4-5",
                "status": "ok",
                "cost_micro": 990,
                "started_at": started,
                "day": "2026-01-01",
                **dict.fromkeys(
                    ("stream", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens"),
                    0,
                ),
                **dict.fromkeys(("cache_write_1h_tokens", "reasoning_tokens", "hold_micro"), 0),
                "attempts": 1,
            },
        )
    )
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as h:
        r = await post(h, secret, haiku())
    assert r.status_code == 429 and "per rolling 2h is used up" in r.json()["error"]["message"], r.text
    exact = started + 7200 - time.time()  # when the earlier spend leaves the window
    assert exact - 2 <= int(r.headers["retry-after"]) <= exact + 3600 + 2
    assert gateway.rt.limits.key_status(row)["spent_micro"] == 990
