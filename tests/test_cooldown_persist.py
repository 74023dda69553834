"""Cooldowns, disables and model cooldowns survive a gateway restart on the same database."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest

PROMPT = [{"role": "user", "content": "Hello there"}]


def accounts(base_url: str) -> list[dict[str, Any]]:
    return [
        {"label": "a", "provider": "anthropic", "base_url": base_url, "api_key": "key-a", "priority": 30},
        {"label": "b", "provider": "anthropic", "base_url": base_url, "api_key": "key-b", "priority": 20},
        {"label": "c", "provider": "anthropic", "base_url": base_url, "api_key": "key-c"},
    ]


def keys_seen(upstream: Any) -> list[str | None]:
    return [r.headers.get("x-api-key") for r in upstream.requests if r.path == "/v1/messages"]


async def ask(gw: Any, key: str, model: str = "claude-sonnet-4-5") -> None:
    async with anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key, max_retries=0) as c:
        msg = await c.messages.create(model=model, max_tokens=20, messages=PROMPT)
        assert msg.content


async def test_health_state_survives_a_restart(make_gateway: Any, upstream: Any, tmp_path: Any) -> None:
    db = str(tmp_path / "persist.db")
    gw = await make_gateway(accounts=accounts(upstream.base_url), db=db)
    key = await gw.mint()
    upstream.fail_key("key-a", status=429, retry_after=600, times=1)
    upstream.fail_key("key-b", status=401, times=1)
    await ask(gw, key)  # a: rate limited, b: credentials rejected, c: serves
    upstream.fail_key(
        "key-c",
        status=404,
        times=1,
        body={"type": "error", "error": {"type": "not_found_error", "message": "model: claude-haiku-4-5"}},
    )
    with pytest.raises(anthropic.APIStatusError) as info:  # c lacks haiku; a may have it once it recovers
        await ask(gw, key, "claude-haiku-4-5")
    assert info.value.status_code == 503
    assert keys_seen(upstream) == ["key-a", "key-b", "key-c", "key-c"]
    before = {label: gw.rt.pool.find(label).public() for label in "abc"}  # type: ignore[union-attr]
    await gw.gateway.stop()

    again = await make_gateway(accounts=accounts(upstream.base_url), db=db)
    a, b, c = (again.rt.pool.find(label) for label in "abc")
    assert a is not None and b is not None and c is not None
    assert a.cause == "rate_limit" and a.health() == "cooldown"
    assert a.since == before["a"]["since"] and a.cooldown_until == before["a"]["cooldown"]["until"]
    assert a.cooldown_until - a.since == 600
    assert a.last_error and a.last_error.startswith("429 rate_limit")
    assert not b.enabled and b.cause == "auth" and "401" in (b.disabled_reason or "")
    assert "claude-haiku-4-5" in c.model_cooldowns and c.model_cooldowns == before["c"]["model_cooldowns"]
    # the restarted gateway goes straight to the healthy account
    await ask(again, await again.mint("other"))
    assert keys_seen(upstream)[4:] == ["key-c"]
    # and the operator's reset is persisted too
    again.rt.pool.reset(a)
    await again.flush()
    await again.gateway.stop()
    third = await make_gateway(accounts=accounts(upstream.base_url), db=db)
    a3 = third.rt.pool.find("a")
    assert (
        a3 is not None and a3.cause is None and a3.cooldown_until <= time.time() and a3.health() == "healthy"
    )
