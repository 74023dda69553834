"""Live state shared by the instances of one PostgreSQL store, each change seen by the other instance
within a second: credit top-ups, tier changes, account cooldowns and disables and subscription quotas;
per-key RPM windows are one window in the store, exact at once. Two gateways in this process, one store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_billing_subscription import TIERS, post

from gatewaytui.ops import accounts as account_ops
from gatewaytui.ops import tenants as tenant_ops

pytestmark = pytest.mark.parametrize("store", ["postgresql"], indirect=True)


async def within_a_second(check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds; fails past one second."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < 1.0, "not seen by the other instance within a second"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def ask(gw: Any, key: str, text: str = "hi") -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        return await http.post(
            "/v1/messages",
            headers={"x-api-key": key},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": text}],
            },
        )


async def test_topups_and_tiers_reach_the_other_instance(make_gateway: Any) -> None:
    one, two = await make_gateway(tiers=TIERS), await make_gateway(tiers=TIERS)
    await one.mint("acme", usd=1)
    tid = one.rt.keyring.authenticate(await one.mint("acme", usd=None))["tenant_id"]
    await within_a_second(lambda: two.rt.wallet.balance[tid] == 1_000_000)
    await tenant_ops.credit(one.rt, "acme", 250_000)
    await within_a_second(lambda: two.rt.wallet.balance[tid] == 1_250_000)
    await tenant_ops.set_tier(one.rt, "acme", "pro")
    await within_a_second(lambda: getattr(two.rt.plans.get(tid), "tier", None) == "pro")


async def test_a_cooldown_seen_by_one_instance_stops_the_other_routing_there(
    make_gateway: Any, upstream: Any
) -> None:
    one, two = await make_gateway(), await make_gateway()
    key = await one.mint("acme", usd=1)
    upstream.fail_key("key-anthropic-1", status=429, retry_after=30)
    r = await ask(one, key)
    assert r.status_code == 503 and "no healthy upstream account" in r.text, (
        r.text
    )  # its one account cools down
    acc = one.rt.pool.find("anthropic-1")
    assert acc is not None and acc.health() == "cooldown"
    other = two.rt.pool.find("anthropic-1")
    assert other is not None
    await within_a_second(lambda: other.health() == "cooldown")
    served = len(upstream.requests)
    r = await ask(two, key)
    assert r.status_code == 503 and len(upstream.requests) == served  # refused without calling the upstream


async def test_a_disable_and_enable_reach_the_other_instance(make_gateway: Any) -> None:
    one, two = await make_gateway(), await make_gateway()
    await account_ops.set_account_enabled(one.rt, "openai-1", False)
    other = two.rt.pool.find("openai-1")
    assert other is not None
    await within_a_second(lambda: not other.enabled)
    await account_ops.set_account_enabled(one.rt, "openai-1", True)
    await within_a_second(lambda: other.enabled)


async def test_rpm_windows_are_shared(make_gateway: Any) -> None:
    """One window for the key across instances, counted by the store at admission: the fifth request in a
    minute is refused at once, wherever it lands (no exchange delay)."""
    one, two = await make_gateway(), await make_gateway()
    key = await one.mint("acme", usd=1, rpm=4)
    for gw in (one, two, one, two):
        assert (await ask(gw, key)).status_code == 200
    for gw in (one, two):
        r = await ask(gw, key)
        assert r.status_code == 429 and "4 requests per minute" in r.json()["error"]["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 61


async def test_subscription_quota_is_shared(make_gateway: Any) -> None:
    one, two = await make_gateway(tiers=TIERS), await make_gateway(tiers=TIERS)
    key = await one.mint("subs", usd=None, kind="subscription")
    await tenant_ops.set_tier(one.rt, "subs", "pro")  # 1,000 tokens a day
    r = await post(one, key, "claudecode", "use it [usage in=600 out=500]")
    assert r.status_code == 200, r.text
    await one.flush()
    start = time.monotonic()
    while (r := await post(two, key, "claudecode", "more")).status_code == 200:
        assert time.monotonic() - start < 1.5, "the other instance never saw the usage"
        await asyncio.sleep(0.05)
    assert r.status_code == 429 and "subscription quota reached" in r.json()["error"]["message"]


async def test_a_change_whose_reading_failed_is_read_again(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store drops the other instance's read of a change (a restart): the change is read on the next
    round, not lost until some later change of the same table."""
    from gatewaytui.store.pg import StoreUnavailable

    one, two = await make_gateway(), await make_gateway()
    await one.mint("acme", usd=1)
    tid = one.rt.keyring.authenticate(await one.mint("acme", usd=None))["tenant_id"]
    await within_a_second(lambda: two.rt.wallet.balance[tid] == 1_000_000)
    apply, failed = two.rt._apply_shared, []

    async def flaky(tables: set[str]) -> None:
        if not failed:
            failed.append(tables)
            raise StoreUnavailable(OSError("the database system is shutting down"))
        await apply(tables)

    monkeypatch.setattr(two.rt, "_apply_shared", flaky)
    await tenant_ops.credit(one.rt, "acme", 250_000)
    await within_a_second(lambda: two.rt.wallet.balance[tid] == 1_250_000 and bool(failed))


async def test_a_top_up_is_counted_once_when_the_notification_refresh_comes_first(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change notification of a committed top-up makes the instance read its balances from the store
    (the top-up included). When that read landed before the top-up's own code applied its amount, the
    amount was added a second time: the balance shown was off by it until the next read (seen in CI as a
    Stripe refund counted twice)."""
    from gatewaytui.store import ledger

    gw = await make_gateway()
    rt = gw.rt
    await gw.mint("acme", usd=5.0)
    tenant_id = next(t for t, b in rt.wallet.balance.items() if b)
    real_write = rt.write

    async def notified_first(fn: Any) -> Any:
        result = await real_write(fn)
        await rt.shared_wallet.refresh()  # the notification's read, before the caller goes on
        return result

    monkeypatch.setattr(rt, "write", notified_first)
    await tenant_ops.credit(rt, "acme", 2_000_000)
    await tenant_ops.credit(rt, "acme", -500_000, kind="adjustment")
    monkeypatch.undo()
    assert rt.wallet.balance[tenant_id] == ledger.balance(rt.readers.get(), tenant_id) == 6_500_000
