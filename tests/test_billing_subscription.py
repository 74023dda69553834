"""Subscription tiers: public pricing, quota per rolling 24 hours, tier routes and models."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import GatewayHandle

from gatewaytui.billing.plans import Plan
from gatewaytui.billing.quota import Quota
from gatewaytui.config import ModelConfig, TierConfig
from gatewaytui.model import GatewayError, Usage
from gatewaytui.ops import tenants as tenant_ops

TIERS = [
    {
        "name": "pro",
        "monthly_usd": 20.0,
        "tokens_per_day": 1000,
        "routes": ["claudecode", "cline"],
        "models": ["claude-sonnet-4-5"],
        "stripe_price_id": "price_pro",
    },
    {"name": "max", "monthly_usd": 100.0, "tokens_per_day": 0},
]


async def post(
    gw: GatewayHandle, key: str, route: str, text: str, model: str = "claude-sonnet-4-5"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:
        return await h.post(
            f"/{route}/v1/messages",
            headers={"authorization": f"Bearer {key}"},
            json={"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]},
        )


async def get(gw: GatewayHandle, path: str, key: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:
        return await h.get(path, headers={"x-api-key": key} if key else {})


async def test_public_pricing(make_gateway: Any) -> None:
    gw = await make_gateway(tiers=TIERS)
    tiers = (await get(gw, "/pricing")).json()["data"]
    assert tiers[0] == {
        "name": "pro",
        "monthly_usd": 20.0,
        "tokens_per_day": 1000,
        "window": "rolling 24 hours",
        "routes": ["/claudecode", "/cline"],
        "models": ["claude-sonnet-4-5"],
        "purchasable": True,
    }
    assert tiers[1]["tokens_per_day"] is None and tiers[1]["purchasable"] is False
    rates = {m["model"]: m for m in (await get(gw, "/pricing/tokens")).json()["data"]}
    assert rates["claude-sonnet-4-5"]["usd_per_mtok"] == {
        "input": "3",
        "output": "15",
        "cache_read": "0.3",
        "cache_write_5m": "3.75",
        "cache_write_1h": "6",
    }
    assert rates["claude-sonnet-4-5"]["aliases"] == ["auto"]
    assert rates["claude-haiku-4-5"]["micro_usd_per_mtok"]["cache_write_1h"] == 2_000_000


async def test_quota_per_rolling_day_with_reset_time(make_gateway: Any, tmp_path: Any) -> None:
    gw = await make_gateway(tiers=TIERS)
    sub = await gw.mint("acme", usd=None, kind="subscription")
    r = await post(gw, sub, "claudecode", "hi")
    assert r.status_code == 402 and "no subscription" in r.json()["error"]["message"]
    await tenant_ops.set_tier(gw.rt, "acme", "pro")
    assert (await post(gw, sub, "claudecode", "a [usage in=500 out=100]")).status_code == 200
    assert (
        await post(gw, sub, "cline", "b [usage in=500 out=100]")
    ).status_code == 200  # 600 < 1000 was admitted
    over = await post(gw, sub, "claudecode", "c")
    assert over.status_code == 429 and over.json()["error"]["type"] == "rate_limit_error"
    assert "1,200 of 1,000 tokens" in over.json()["error"]["message"]
    assert (
        86_000 < int(over.headers["retry-after"]) <= 86_400
    )  # frees when the first request leaves the window
    status = (await get(gw, "/tenant/subscription", sub)).json()
    assert status["tier"] == "pro" and status["status"] == "active"
    assert (status["used_tokens"], status["remaining_tokens"], status["tokens_per_day"]) == (1200, 0, 1000)
    assert status["reset_at"].endswith("Z") and status["routes"] == ["/claudecode", "/cline"]

    # credit is not touched by subscription traffic; a pay-per-token key of the same tenant still works anywhere
    tid = gw.rt.keyring.authenticate(sub)["tenant_id"]
    assert gw.rt.wallet.balance[tid] == 0
    payg = await gw.mint("acme", usd=1)
    assert (await post(gw, payg, "claudecode", "d [usage in=10 out=5]")).status_code == 200

    # the window is rebuilt from the request rows after a restart
    await gw.flush()
    await gw.gateway.stop()
    gw2 = await make_gateway(tiers=TIERS)
    again = await post(gw2, sub, "claudecode", "e")
    assert again.status_code == 429
    assert (await get(gw2, "/tenant/subscription", sub)).json()[
        "used_tokens"
    ] == 1200  # payg usage not counted


async def test_tier_routes_and_models(make_gateway: Any) -> None:
    gw = await make_gateway(tiers=TIERS)
    sub = await gw.mint("acme", usd=None, kind="subscription")
    await tenant_ops.set_tier(gw.rt, "acme", "pro")
    r = await post(gw, sub, "cursor", "hi")
    assert r.status_code == 403 and "/cursor" in r.json()["error"]["message"]
    r = await post(gw, sub, "claudecode", "hi", model="claude-haiku-4-5")
    assert r.status_code == 403 and "claude-haiku-4-5" in r.json()["error"]["message"]
    await tenant_ops.set_tier(gw.rt, "acme", "max")  # unlimited, every route and model
    assert (await post(gw, sub, "cursor", "hi", model="claude-haiku-4-5")).status_code == 200
    await tenant_ops.set_tier(gw.rt, "acme", None)
    assert (await post(gw, sub, "cursor", "hi")).status_code == 402
    with pytest.raises(GatewayError):
        await tenant_ops.set_tier(gw.rt, "acme", "platinum")


def test_rolling_window_frees_tokens_as_they_age() -> None:
    now = [1_000_000.0]
    tier = TierConfig(name="t", tokens_per_day=100)

    class Plans:
        def get(self, tenant_id: int) -> Plan:
            return Plan(tenant_id=tenant_id, tier="t", status="active")

    class Readers:
        def get(self) -> Any:
            raise AssertionError("tenant 1 is preloaded")

    q = Quota([tier], Plans(), Readers(), clock=lambda: now[0])  # type: ignore[arg-type]
    q._usage[1] = __import__("collections").deque()
    key = {"tenant_id": 1}
    model = ModelConfig(name="m", provider="anthropic")
    q.check(key, model, "claudecode")
    q.record(1, Usage(input_tokens=60))
    now[0] += 3600
    q.record(1, Usage(output_tokens=30, cache_read_tokens=10))
    with pytest.raises(GatewayError) as exc:
        q.check(key, model, "claudecode")
    assert exc.value.status == 429 and exc.value.retry_after == pytest.approx(86400 - 3600)
    assert q.status(1).used == 100 and q.status(1).remaining == 0
    now[0] += 86400 - 3600 + 1  # the first 60 tokens left the window
    q.check(key, model, "claudecode")
    assert q.status(1).used == 40 and q.status(1).remaining == 60


@pytest.mark.parametrize(
    "status, period_end, state",
    [
        ("active", None, "active"),
        ("trialing", None, "active"),
        (None, None, "active"),
        ("past_due", None, "past_due"),
        ("canceled", None, "canceled"),
        ("active", 1.0, "lapsed"),
    ],
)
def test_subscription_states(status: str | None, period_end: float | None, state: str) -> None:
    assert Plan(tenant_id=1, tier="pro", status=status, period_end=period_end).subscription_state() == state
    assert Plan(tenant_id=1, tier=None, status=status).subscription_state() == "none"
