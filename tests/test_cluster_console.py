"""The console of any instance shows the whole cluster (PostgreSQL store): every live instance with its
in-flight streams, published with its lease renewal, and cluster-wide balances and holds; in process and over
``GET /admin/snapshot`` (what ``gatewaytui attach`` reads). Two gateways in this process, one store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_tui_layout import headers_whole
from test_tui_support import SeededSource, freeze, ready

from gatewaytui.ops.snapshot import build_snapshot
from gatewaytui.tui.app import ConsoleApp
from gatewaytui.tui.widgets import LiveTable

on_postgresql = pytest.mark.parametrize("store", ["postgresql"], indirect=True)

LEASE = 3.0  # seconds: renewals every 0.5 s
BOUND = LEASE / 6 + 1.5  # one renewal period, and room for a busy machine
TOKEN = "cluster-console-token"
TOKEN_ENV = "GATEWAYTUI_TEST_CLUSTER_TOKEN"


async def within(bound: float, check: Callable[[], Any]) -> Any:
    """``await check()`` until it returns something true; fails past ``bound`` seconds."""
    start = time.monotonic()
    while not (result := await check()):
        assert time.monotonic() - start < bound, f"not seen within {bound} s"
        await asyncio.sleep(0.05)
    return result


@pytest.fixture
async def pair(make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    sections = {"database": {"lease_seconds": LEASE}, "server": {"admin_token_env": TOKEN_ENV}}
    return await make_gateway(**sections), await make_gateway(**sections)


def instance(snap: dict[str, Any], origin: str) -> dict[str, Any] | None:
    return next((i for i in (snap["cluster"] or {}).get("instances", []) if i["id"] == origin), None)


@on_postgresql
async def test_each_instance_sees_the_others_streams_and_the_cluster_wide_holds(
    pair: tuple[Any, Any],
) -> None:
    one, two = pair
    key = await one.mint("acme", usd=1)
    tid = one.rt.keyring.authenticate(key)["tenant_id"]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "stream": True,
        "messages": [{"role": "user", "content": "slow [sleep:4000] [usage in=5 out=7]"}],
    }
    async with httpx.AsyncClient(base_url=one.base_url, timeout=30) as http:
        slow = asyncio.create_task(http.post("/v1/messages", headers={"x-api-key": key}, json=body))
        request_id = await within(5, lambda: _first(one.rt.traffic.inflight))
        hold = one.rt.wallet.held[tid]
        assert hold > 0

        async def seen_in_process() -> dict[str, Any] | None:
            snap = await build_snapshot(two.rt)
            other = instance(snap, one.rt.wallet.origin)
            if other is None or not other["streams"]:
                return None
            return snap

        snap = await within(BOUND, seen_in_process)
        mine, other = instance(snap, two.rt.wallet.origin), instance(snap, one.rt.wallet.origin)
        assert mine is not None and mine["self"] and mine["inflight"] == 0
        assert other is not None and not other["self"] and other["inflight"] == 1
        assert 0 <= other["lease_age"] <= BOUND and other["lease_left"] > 0
        (stream,) = other["streams"]
        assert stream["id"] == request_id and stream["tenant"] == "acme"
        assert stream["model"] == "claude-sonnet-4-5" and stream["account"]
        assert set(stream) == {
            "id",
            "tenant",
            "model",
            "account",
            "state",
            "started",
            "input_tokens",
            "output_tokens",
        }

        # balances and holds are the cluster's: the other instance's hold shows here
        async def held_here() -> dict[str, Any] | None:
            snap = await build_snapshot(two.rt)
            t = next(t for t in snap["tenants"] if t["id"] == tid)
            return t if t["held_micro"] == hold else None

        t = await within(BOUND, held_here)
        assert t["balance_micro"] == 1_000_000 and t["available_micro"] == 1_000_000 - hold

        # over the console API, as ``gatewaytui attach`` reads it
        async def seen_over_http() -> dict[str, Any] | None:
            r = await http.get(two.base_url + "/admin/snapshot", headers={"authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200
            other = instance(r.json(), one.rt.wallet.origin)
            return r.json() if other and [s["id"] for s in other["streams"]] == [request_id] else None

        remote = await within(BOUND, seen_over_http)
        assert {i["id"] for i in remote["cluster"]["instances"]} == {
            one.rt.wallet.origin,
            two.rt.wallet.origin,
        }
        assert remote["cluster"]["error"] is None

        r = await slow
        assert r.status_code == 200

    async def gone() -> bool:
        other = instance(await build_snapshot(two.rt), one.rt.wallet.origin)
        return other is not None and other["inflight"] == 0 and other["streams"] == []

    await within(BOUND, gone)


@on_postgresql
async def test_a_stopped_instance_leaves_the_cluster_section(pair: tuple[Any, Any]) -> None:
    one, two = pair
    await within(BOUND, lambda: _both(two.rt, one.rt))
    await one.gateway.stop()
    snap = await build_snapshot(two.rt)
    assert [i["id"] for i in snap["cluster"]["instances"]] == [two.rt.wallet.origin]


# SQLite only: an embedded store has no cluster (the PostgreSQL case is the test above)
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_an_embedded_store_has_no_cluster_section(gateway: Any) -> None:
    assert (await build_snapshot(gateway.rt))["cluster"] is None


async def _first(inflight: dict[str, Any]) -> str | None:
    return next(iter(inflight), None)


async def _both(rt: Any, other: Any) -> bool:
    snap = await build_snapshot(rt)
    return {i["id"] for i in snap["cluster"]["instances"]} == {rt.wallet.origin, other.wallet.origin}


# ------------------------------------------------------------------ the console's Instances panel

CLUSTER = {
    "error": None,
    "instances": [
        {
            "id": f"inst-{n}",
            "host": host,
            "pid": pid,
            "url": url,
            "started_at": 0.0,
            "lease_age": age,
            "lease_left": 30.0 - (age or 0),
            "self": n == 0,
            "inflight": live,
            "streams": [],
        }
        for n, (host, pid, url, age, live) in enumerate(
            [
                ("gw-a", 4101, "https://gw-a.internal:8080", None, 2),
                ("gw-b", 4102, "https://gw-b.internal:8080", 3.2, 17),
                ("gw-c.example.org", 88231, "", 12.0, 0),
            ]
        )
    ],
}


class ClusterSource(SeededSource):
    """The seeded console's source, its snapshot showing a cluster of ``len(cluster["instances"])``."""

    def __init__(self, db: str, cluster: dict[str, Any]) -> None:
        super().__init__(db)
        self.cluster = cluster

    async def snapshot(self) -> dict[str, Any]:
        return {**await super().snapshot(), "cluster": self.cluster}


def cluster_app(db: str, cluster: dict[str, Any]) -> ConsoleApp:
    return ConsoleApp(ClusterSource(db, cluster), refresh_ms=60_000, theme="textual-dark")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_overview_lists_every_instance_of_a_cluster(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    freeze(monkeypatch)
    app = cluster_app(str(tmp_path / "console.db"), CLUSTER)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        table = app.screen.query_one("#instances", LiveTable)
        assert app.screen.query_one("#instances-title").display
        assert table.row_count == 3 and table.region.height >= 4  # the header and three rows show
        assert headers_whole(table) == []
        assert table.get_cell("inst-0", "instance").plain == "▸ gw-a:4101"  # this instance
        assert table.get_cell("inst-2", "instance").plain.rstrip("…") in "  gw-c.example.org:88231"
        assert table.get_cell("inst-1", "live").plain == "17"
        assert table.get_cell("inst-1", "lease").plain == "3s"
        assert table.get_cell("inst-0", "lease").plain == "-"
        assert [p for t in app.screen.query(LiveTable) for p in headers_whole(t)] == []


async def test_the_panel_goes_when_one_instance_is_left(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze(monkeypatch)
    app = cluster_app(str(tmp_path / "console.db"), CLUSTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.screen.query_one("#instances", LiveTable).row_count == 3
        app.source.cluster = {"error": None, "instances": CLUSTER["instances"][:1]}
        await ready(pilot)
        assert not app.screen.query("#instances") and not app.screen.query("#instances-title")
        app.source.cluster = CLUSTER
        await ready(pilot)
        assert app.screen.query_one("#instances", LiveTable).row_count == 3


def test_overview_with_a_cluster_snapshot(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, snap_compare: Any
) -> None:
    freeze(monkeypatch)
    app = cluster_app(str(tmp_path / "console.db"), CLUSTER)

    async def run_before(pilot: Any) -> None:
        await ready(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
