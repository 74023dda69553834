"""Shared by the console tests: a frozen clock, deterministic ids, and a seeded runtime behind a LocalSource.

Also tests the console's pure formatting helpers.
"""

from __future__ import annotations

import time as real_time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gatewaytui import config as configmod
from gatewaytui.billing.pricing import Price, cost
from gatewaytui.model import Usage
from gatewaytui.ops import accounts as account_ops
from gatewaytui.ops import routing as routing_ops
from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.runtime import Runtime
from gatewaytui.store import bodies
from gatewaytui.store import requests as request_store
from gatewaytui.store import tenants as tenant_store
from gatewaytui.traffic import Flight
from gatewaytui.tui import format as fmt
from gatewaytui.tui.app import ConsoleApp
from gatewaytui.tui.source import LocalSource

FROZEN = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC
UNUSED_URL = "http://127.0.0.1:9"  # the discard port: nothing here ever calls an upstream

MODELS: list[dict[str, Any]] = [
    {
        "name": "claude-sonnet-4-5",
        "provider": "anthropic",
        "aliases": ["auto"],
        "input_per_mtok": 3.0,
        "output_per_mtok": 15.0,
        "cache_read_per_mtok": 0.30,
        "cache_write_per_mtok": 3.75,
    },
    {"name": "claude-haiku-4-5", "provider": "anthropic", "input_per_mtok": 1.0, "output_per_mtok": 5.0},
    {"name": "gpt-4o", "provider": "openai", "input_per_mtok": 2.5, "output_per_mtok": 10.0},
    {"name": "gemini-2.5-flash", "provider": "gemini", "input_per_mtok": 0.30, "output_per_mtok": 2.50},
]
ACCOUNTS: list[dict[str, Any]] = [
    {"label": "anthropic-1", "provider": "anthropic", "base_url": UNUSED_URL, "api_key": "k-a1", "rpm": 60},
    {"label": "anthropic-2", "provider": "anthropic", "base_url": UNUSED_URL, "api_key": "k-a2"},
    {"label": "openai-1", "provider": "openai", "base_url": UNUSED_URL, "api_key": "k-o1"},
    {"label": "gemini-1", "provider": "gemini", "base_url": UNUSED_URL, "api_key": "k-g1"},
]


def console_config(db: str, **sections: Any) -> configmod.Config:
    return configmod.parse(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "database": {"path": db, "flush_interval_ms": 5},
            "accounts": ACCOUNTS,
            "models": MODELS,
            "tiers": [{"name": "pro", "monthly_usd": 49.0, "tokens_per_day": 2_000_000}],
            **sections,
        }
    )


# ------------------------------------------------------------------ frozen clock and ids


class FrozenTime:
    """Stands in for the ``time`` module where the console's data reads the clock."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._ns = int(now * 1e9)

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        self._ns += 1  # unique (idempotency keys are built from it)
        return self._ns

    def __getattr__(self, name: str) -> Any:
        return getattr(real_time, name)


class CountingSecrets:
    def __init__(self) -> None:
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def token_hex(self, nbytes: int = 16) -> str:
        return f"{self._next():0{2 * nbytes}x}"

    def token_urlsafe(self, nbytes: int = 32) -> str:
        return f"demo{self._next():04d}" + "x" * (nbytes - 8)


def freeze(monkeypatch: pytest.MonkeyPatch, now: float = FROZEN) -> FrozenTime:
    import gatewaytui.ops.accounts
    import gatewaytui.ops.snapshot
    import gatewaytui.ops.tenants
    import gatewaytui.pool.account
    import gatewaytui.pool.enroll
    import gatewaytui.pool.pool
    import gatewaytui.runtime
    import gatewaytui.store.accounts
    import gatewaytui.store.keys
    import gatewaytui.store.tenants
    import gatewaytui.traffic

    clock = FrozenTime(now)
    for module in (
        gatewaytui.traffic,
        gatewaytui.pool.account,
        gatewaytui.pool.pool,
        gatewaytui.store.keys,
        gatewaytui.store.accounts,
        gatewaytui.store.tenants,
        gatewaytui.ops.tenants,
        gatewaytui.ops.accounts,
        gatewaytui.ops.snapshot,
        gatewaytui.pool.enroll,
        gatewaytui.runtime,
    ):
        monkeypatch.setattr(module, "time", clock)
    secrets = CountingSecrets()
    monkeypatch.setattr(gatewaytui.store.keys, "secrets", secrets)
    monkeypatch.setattr(gatewaytui.store.accounts, "secrets", secrets)
    return clock


# ------------------------------------------------------------------ seeded data


def flight(
    n: int,
    *,
    now: float,
    age: float,
    state: str,
    tenant: str = "acme",
    key: str = "ci",
    model: str = "claude-sonnet-4-5",
    account: str = "anthropic-1",
    route: str = "v1",
    protocol: str = "anthropic",
    ttft: float | None = 0.4,
    out: int = 0,
    inp: int = 1200,
    cost_micro: int = 0,
    status: int | None = None,
    error: str | None = None,
) -> Flight:
    f = Flight(
        id=f"req_{n:04d}",
        route=route,
        protocol=protocol,
        tenant=tenant,
        key_label=key,
        model=model,
        upstream_model=model,
        account=account,
        stream=True,
        state=state,
        started=now - age,
        input_tokens=inp,
        output_tokens=out,
        cost_micro=cost_micro,
        status=status,
        error=error,
        attempts=1,
    )
    if ttft is not None and state != "waiting":
        f.first_token = f.started + ttft
    return f


async def seed_console(rt: Runtime) -> None:
    """A small, fixed world: three tenants, four accounts in different states, traffic in flight and done."""
    now = FROZEN
    rt.started_at = now - 3723
    await tenant_ops.credit(rt, "acme", 25_000_000, note="seed", create=True)
    await tenant_ops.mint_key(
        rt, "acme", label="ci", budget_micro=5_000_000, budget_period="day", tpm=100_000
    )
    await tenant_ops.set_tenant_tpm(rt, "acme", 400_000)
    await routing_ops.set_fallbacks(rt, "claude-sonnet-4-5", ["gpt-4o", "gemini-2.5-flash"])
    await tenant_ops.mint_key(rt, "acme", label="laptop")
    old, _ = await tenant_ops.mint_key(rt, "acme", label="old")
    await tenant_ops.revoke_key(rt, old["id"])
    globex = await tenant_ops.create_tenant(rt, "globex")
    await rt.write(lambda c: tenant_store.update(c, globex["id"], tier="pro", subscription_status="active"))
    await tenant_ops.mint_key(rt, "globex", kind="subscription", label="team")
    await tenant_ops.credit(rt, "initech", 500_000, note="trial", create=True)
    await tenant_ops.mint_key(rt, "initech", label="prod")
    acme = await tenant_ops.create_tenant(rt, "acme")
    price = Price(input=3_000_000, output=15_000_000)

    def usage_rows(conn: Any) -> None:
        for i, (tenant_id, inp, out, c) in enumerate(
            [
                (acme["id"], 12_000, 900, 49_500),
                (acme["id"], 3_000, 400, 15_000),
                (globex["id"], 600_000, 40_000, 0),
            ]
        ):
            request_store.insert(
                conn,
                {
                    "id": f"old_{i}",
                    "tenant_id": tenant_id,
                    "route": "claudecode" if c == 0 else "v1",
                    "model": "claude-sonnet-4-5",
                    "status": "ok",
                    "input_tokens": inp,
                    "output_tokens": out,
                    "cost_micro": c,
                    "started_at": now - 3600 + i,
                    "day": "2026-01-01",
                },
            )

    await rt.write(usage_rows)
    await routing_ops.set_alias(rt, "fast", "claude-haiku-4-5")
    await routing_ops.set_haiku_model(rt, "gemini-2.5-flash")
    await account_ops.prefer_account(rt, "anthropic-1")
    await account_ops.set_account_enabled(rt, "openai-1", False)

    a1, a2, g1 = rt.pool.find("anthropic-1"), rt.pool.find("anthropic-2"), rt.pool.find("gemini-1")
    assert a1 and a2 and g1
    a1.quota = {
        "requests_limit": 50,
        "requests_remaining": 38,
        "tokens_limit": 80_000,
        "tokens_remaining": 52_000,
        "unified_5h_utilization": 0.42,
        "unified_7d_utilization": 0.18,
        "unified_status": "allowed",
    }
    a1.inflight, a1.served, a1.errors = 3, 214, 2
    a2.cooldown_until, a2.cause, a2.since = now + 42, "rate_limit", now - 18
    a2.last_error = "429 rate_limit: Number of request tokens has exceeded your per-minute rate limit"
    a2.served, a2.errors, a2.failures = 97, 5, 1
    g1.inflight, g1.served = 1, 40

    t = rt.traffic
    t.open(flight(1, now=now, age=12.0, state="streaming", out=640, cost_micro=13_200))
    t.open(
        flight(
            2,
            now=now,
            age=4.5,
            state="streaming",
            key="laptop",
            route="claudecode",
            out=210,
            cost_micro=4_650,
        )
    )
    t.open(
        flight(
            3,
            now=now,
            age=0.8,
            state="waiting",
            tenant="globex",
            key="team",
            route="cursor",
            protocol="openai_chat",
            model="claude-haiku-4-5",
            ttft=None,
            cost_micro=0,
        )
    )
    t.open(
        flight(
            4,
            now=now,
            age=2.2,
            state="streaming",
            tenant="initech",
            key="prod",
            protocol="gemini",
            model="gemini-2.5-flash",
            account="gemini-1",
            out=95,
            cost_micro=240,
        )
    )
    n = 10
    for second in range(58, 0, -1):
        for j in range((second * 7) % 4):
            ok = (second + j) % 11 != 0
            f = flight(
                n,
                now=now,
                age=second + 3.0,
                state="done" if ok else "error",
                out=150 + (second * 13 + j * 7) % 400,
                cost_micro=3_000 + second * 97,
                status=200 if ok else 502,
                ttft=0.3 + (second % 5) / 10,
                error=None if ok else "upstream failed: 502 server: bad gateway",
            )
            f.ended = now - second
            t.close(f)
            n += 1
    detail = flight(900, now=now, age=3.4, state="done", out=412, inp=1830, status=200, ttft=0.52)
    usage = Usage(input_tokens=1830, output_tokens=412, cache_read_tokens=9000)
    priced = cost(usage, price)
    detail.cost_micro, detail.line_items = priced.total_micro, priced.items
    detail.headers = {
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "user-agent": "claude-cli/2.0.14",
        "x-api-key": "[redacted]",
    }
    detail.ended = now - 1.5
    t.close(detail)
    await store_finished(rt, list(t.recent))
    capture = bodies.Capture(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "stream": True,
            "messages": [
                {"role": "user", "content": "Summarise the attached incident report in three bullets."}
            ],
        },
        64 * 1024,
    )
    capture.respond(
        b'event: message_start\ndata: {"type":"message_start"}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"- The'
        b' cache tier failed over at 09:12"}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    await rt.write(lambda c: c.execute(*capture.entry(detail.id)))


def stored_row(rt: Runtime, f: Flight, tenant_ids: dict[str, int]) -> dict[str, Any]:
    """What settlement writes for a finished flight (the console's history reads these rows)."""
    account = rt.pool.find(f.account) if f.account else None
    ended = f.ended if f.ended is not None else f.started
    return {
        "id": f.id,
        "tenant_id": tenant_ids.get(f.tenant),
        "route": f.route,
        "protocol": f.protocol,
        "model": f.model,
        "upstream_model": f.upstream_model,
        "account_id": account.id if account else None,
        "stream": int(f.stream),
        "status": {"done": "ok"}.get(f.state, f.state),
        "http_status": f.status,
        "input_tokens": f.input_tokens,
        "output_tokens": f.output_tokens,
        "cost_micro": f.cost_micro,
        "line_items": f.line_items,
        "error": f.error,
        "attempts": f.attempts,
        "started_at": f.started,
        "ttft_ms": (f.first_token - f.started) * 1000 if f.first_token else None,
        "duration_ms": (ended - f.started) * 1000,
        "day": real_time.strftime("%Y-%m-%d", real_time.gmtime(f.started)),
    }


async def store_finished(rt: Runtime, flights: list[Flight]) -> None:
    tenants = await rt.read(lambda c: {r["name"]: r["id"] for r in c.execute("SELECT id, name FROM tenants")})
    rows = [stored_row(rt, f, tenants) for f in flights]
    await rt.write(lambda c: [request_store.insert(c, row) for row in rows])


class SeededSource(LocalSource):
    """A LocalSource that owns its runtime: started and seeded inside the console's own event loop."""

    def __init__(
        self, db: str, seed: Callable[[Runtime], Awaitable[None]] | None = seed_console, **sections: Any
    ) -> None:
        self.cfg = console_config(db, **sections)
        self.seed = seed
        self.rt: Runtime | None = None  # type: ignore[assignment]

    async def open(self) -> None:
        self.rt = Runtime(self.cfg)
        await self.rt.start()
        if self.seed is not None:
            await self.seed(self.rt)

    async def close(self) -> None:
        if self.rt is not None:
            await self.rt.stop()


def seeded_app(db: str, **kw: Any) -> ConsoleApp:
    return ConsoleApp(SeededSource(db), refresh_ms=60_000, theme=kw.pop("theme", "textual-dark"), **kw)


async def ready(pilot: Any, *keys: str) -> None:
    """Wait for the source, press ``keys``, then let the visible screen finish a reload (no sleeps)."""
    app = pilot.app
    await app.opened.wait()
    await pilot.pause()
    for key in keys:
        await pilot.press(key)
        await app.settle()
    await app.settle()
    screen = app.screen
    if hasattr(screen, "reload"):
        await screen.reload()
    await pilot.pause()


# ------------------------------------------------------------------ formatting helpers


def test_usd_has_one_style_and_a_balance_moves_when_a_request_is_spent() -> None:
    assert fmt.usd(0) == "$0.00"
    assert fmt.usd(25_000_000) == "$25.0000"
    assert fmt.usd(25_000_000 - 3_100) == "$24.9969"  # a $0.0031 request shows in the balance
    assert fmt.usd(1_234_567_890) == "$1,234.5679"
    assert [fmt.usd(m) for m in (4_650, 135, 50, 49, 1)] == [
        "$0.0047",
        "$0.0001",
        "$0.0001",
        "<$0.0001",
        "<$0.0001",
    ]
    assert fmt.usd(-2_500_000) == "-$2.5000"
    assert fmt.usd(123_456_789_000_000) == "$123,456,789.00"  # past $100,000: cents
    assert fmt.usd(None) == "-"
    assert [fmt.price(m) for m in (3_000_000, 300_000, 75_000, 15_000_000)] == [
        "$3.00",
        "$0.30",
        "$0.075",
        "$15.00",
    ]


def test_durations_counts_and_bars() -> None:
    assert [fmt.duration(s) for s in (0, 42, 65, 3723, 90_000)] == ["0s", "42s", "1m05s", "1h02m", "1d01h"]
    assert [fmt.count(n) for n in (950, 1_234, 52_000, 4_100_000)] == ["950", "1.2k", "52k", "4.1M"]
    # the unit and decimals follow the rounded figure: never "10.0k" beside "10k"
    assert [fmt.count(n) for n in (9_949, 9_999, 10_000, 999_499, 999_999)] == [
        "9.9k",
        "10k",
        "10k",
        "999k",
        "1.0M",
    ]
    assert fmt.count(12.5) == "12.5" and fmt.count(3.0) == "3"
    assert fmt.bar(0.42, 10).plain == "████░░░░░░  42%"
    assert fmt.bar(2.0, 4, label=False).plain == "████"
    assert fmt.bar(None).plain == "-"
    assert fmt.cooldown({"cooldown": {"cause": "rate_limit", "remaining_s": 42}}) == "rate 42s"
    assert fmt.cooldown({"cooldown": None}) == ""
