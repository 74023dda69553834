"""``kill -9`` under load, then restart: nothing is lost or half-written.

The headless gateway runs as a subprocess with streams and unary requests in flight in every protocol; it is
killed with SIGKILL, restarted on the same database, and then:
- SQLite's ``integrity_check`` is ``ok``;
- every request row has its hold and exactly one settlement or release (no hold is left open);
- the ledger balances: its sum is the top-ups less what the request rows cost, and the restarted gateway
  reports that same balance with nothing held.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from typing import Any

import httpx
import pytest
from test_shutdown import GatewayProcess, assert_books_balance, stream_body

PATHS = [
    "/v1/messages",
    "/v1/chat/completions",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
]


def unary_body(path: str, text: str) -> tuple[str, dict[str, Any]]:
    if "gemini" in path:
        return path.replace(":streamGenerateContent?alt=sse", ":generateContent"), stream_body(path, text)
    return path, {**stream_body(path, text), "stream": False}


@pytest.fixture
async def gp(tmp_path: Any, upstream: Any) -> Any:
    process = GatewayProcess(tmp_path, upstream.base_url, graceful_timeout=5.0)
    yield process
    await process.close()


async def test_kill_9_under_load_then_restart_loses_nothing(gp, upstream) -> None:
    key = gp.seed(usd=100)
    await gp.start()
    headers = {"authorization": f"Bearer {key}", "x-goog-api-key": key}
    done = 0
    streaming = 0
    stop = asyncio.Event()

    async def worker(i: int) -> None:
        nonlocal done, streaming
        async with httpx.AsyncClient(base_url=gp.base_url, timeout=30) as http:
            n = 0
            while not stop.is_set():
                n += 1
                path = PATHS[(i + n) % len(PATHS)]
                text = f"load {i}-{n} [chunks:{5 + (i * 7 + n) % 40}] [pace:{5 + i % 10}]"
                try:
                    if (i + n) % 3:
                        async with http.stream(
                            "POST", path, json=stream_body(path, text), headers=headers
                        ) as r:
                            streaming += 1
                            try:
                                async for _ in r.aiter_raw():
                                    pass
                            finally:
                                streaming -= 1
                    else:
                        url, body = unary_body(path, text)
                        await http.post(url, json=body, headers=headers)
                    done += 1
                except httpx.HTTPError:
                    return  # the gateway died under us

    workers = [asyncio.create_task(worker(i)) for i in range(24)]
    try:
        for _ in range(3000):  # load until enough requests are journaled and streams are in flight
            await asyncio.sleep(0.01)
            if done >= 60 and streaming >= 8:
                break
        assert done >= 60 and streaming >= 8, (done, streaming)
        journaled = gp.query("SELECT COUNT(*) AS n FROM requests")[0]["n"]
        assert journaled > 0
        gp.signal(signal.SIGKILL)
        assert await gp.wait() == -signal.SIGKILL
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 30)

    conn = sqlite3.connect(str(gp.db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()

    await gp.start()  # recovery runs before the gateway listens
    async with httpx.AsyncClient(base_url=gp.base_url, timeout=10) as http:
        credits = (await http.get("/tenant/credits", headers=headers)).json()
        ok = await http.post(
            "/v1/messages",
            json={**stream_body("/v1/messages", "after the crash"), "stream": False},
            headers=headers,
        )
    assert ok.status_code == 200
    gp.signal(signal.SIGTERM)
    assert await gp.wait() == 0

    conn = sqlite3.connect(str(gp.db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    rows = assert_books_balance(gp)
    assert len(rows) >= journaled + 1
    before_last = sum(
        e["amount_micro"]
        for e in gp.query(
            "SELECT amount_micro FROM ledger WHERE request_id IS NULL OR request_id != ?",
            ok.headers["request-id"],
        )
    )
    assert credits["balance_micro"] == before_last, "the restarted gateway derives the same balance"
    assert credits["held_micro"] == 0 and credits["holds"] == []
