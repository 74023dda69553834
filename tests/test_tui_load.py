"""Two hundred concurrent streams: the streams table is patched in place, never rebuilt, as tokens flow."""

from __future__ import annotations

import time
from typing import Any

from test_tui_support import SeededSource, flight, ready, store_finished

from gatewaytui.runtime import Runtime
from gatewaytui.tui.app import ConsoleApp
from gatewaytui.tui.widgets import LiveTable

STREAMS = 200


async def two_hundred_streams(rt: Runtime) -> None:
    now = time.time()
    for n in range(STREAMS):
        rt.traffic.open(flight(n, now=now, age=30.0 - n * 0.1, state="streaming", out=n, cost_micro=n * 10))


async def test_two_hundred_streams_are_patched_in_place(tmp_path: Any) -> None:
    source = SeededSource(str(tmp_path / "load.db"), seed=two_hundred_streams)
    app = ConsoleApp(source, refresh_ms=60_000, screen="streams")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = app.screen
        table = screen.query_one("#inflight", LiveTable)
        assert table.row_count == STREAMS
        rebuilds = table.rebuilds
        assert source.rt is not None
        flights = list(source.rt.traffic.inflight.values())

        for f in flights:  # tokens flow
            f.output_tokens += 100
            f.cost_micro += 1_500
        await screen.reload()
        assert table.rebuilds == rebuilds
        assert str(table.get_cell("req_0007", "tokens")) == "107"

        for f in flights[:20]:  # twenty finish, twenty start
            f.state, f.status = "done", 200
            source.rt.traffic.close(f)
        await store_finished(source.rt, flights[:20])  # what settlement writes: the history reads it
        for n in range(STREAMS, STREAMS + 20):
            source.rt.traffic.open(flight(n, now=time.time(), age=0.1, state="waiting"))
        await screen.reload()
        assert table.row_count == STREAMS and table.rebuilds == rebuilds
        assert (
            "req_0000" not in {k.value for k in table.rows} and table.get_row_index("req_0219") == STREAMS - 1
        )
        assert screen.query_one("#recent", LiveTable).row_count == 20


async def test_a_burst_of_bus_events_costs_one_redraw(tmp_path: Any) -> None:
    source = SeededSource(str(tmp_path / "burst.db"), seed=None)
    app = ConsoleApp(source, refresh_ms=60_000, screen="accounts")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        screen = app.screen
        batches: list[set[str]] = []
        screen.on_bus = batches.append  # type: ignore[method-assign]
        assert source.rt is not None
        for n in range(500):
            source.rt.bus.publish("request.finished", id=f"r{n}")
        source.rt.bus.publish("account.cooldown", label="anthropic-1", cause="rate_limit")
        for _ in range(200):  # bounded wait for the pump
            if app.events_seen == 501 and batches:
                break
            await pilot.pause()
        assert app.events_seen == 501
        assert 1 <= len(batches) <= 3  # SourceActivity messages replaced each other in the queue
        assert set().union(*batches) == {"request.finished", "account.cooldown"}
        assert [e["topic"] for e in app.event_log] == ["account.cooldown"]  # high-rate topics are not logged
