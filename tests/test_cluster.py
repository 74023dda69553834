"""Several gateway processes on one PostgreSQL store, as real subprocesses (``gatewaytui --no-ui``) against
the in-process fake upstream: admission exact across instances, revocation seen everywhere within a
second, a killed instance's credit released by lease, a Stripe event delivered twice credited once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_stripe import WEBHOOK_SECRET, event, signed
from test_shutdown import GatewayProcess

from gatewaytui.store import db as dbmod
from gatewaytui.store import keys as key_store
from gatewaytui.store import ledger as ledger_store
from gatewaytui.store import tenants as tenant_store

LEASE = (
    6.0  # seconds: short, so the kill -9 test runs fast (the default is 30), long enough for a busy machine
)
WORST = 15_000  # micro-USD: 1000 tokens out at $15/MTok, input free (see METERED)
METERED = """
[[models]]
name = "metered"
provider = "anthropic"
input_per_mtok = 0.0
output_per_mtok = 15.0
"""


class Node(GatewayProcess):
    """One gateway process of the cluster: its own config file (port 0), the shared PostgreSQL store."""

    def __init__(self, tmp: Path, upstream_url: str, url: str) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp, upstream_url)
        text = self.config.read_text().replace(
            'path = "gateway.db"', f'url = "{url}"\nlease_seconds = {LEASE}'
        )
        self.config.write_text(text + METERED)


@pytest.fixture
async def cluster(tmp_path: Path, upstream: Any, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``start(n)``: n gateway processes on one fresh PostgreSQL database (their URL as ``.url``)."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    url = pg_cluster.new_database()
    nodes: list[Node] = []

    async def start(n: int) -> list[Node]:
        made = [Node(tmp_path / f"node{len(nodes) + i}", upstream.base_url, url) for i in range(n)]
        nodes.extend(made)
        await asyncio.gather(*(node.start() for node in made))
        return made

    start.url = url  # type: ignore[attr-defined]
    yield start
    for node in nodes:
        await node.close()
    pg_cluster.drop_database(url)


def seed(url: str, tenant: str, micro: int) -> tuple[int, str, str]:
    """A tenant with ``micro`` of credit and a key: (tenant id, key id, secret)."""
    conn = dbmod.connect(url)
    try:
        with dbmod.Transaction(conn):
            t, _ = tenant_store.get_or_create(conn, tenant)
            if micro:
                ledger_store.append(conn, t["id"], "topup", micro, f"topup:{tenant}:seed")
            row, secret = key_store.mint(conn, t["id"])
    finally:
        conn.close()
    return int(t["id"]), row["id"], secret


def query(url: str, sql: str, *args: Any) -> list[Any]:
    conn = dbmod.connect(url)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def ask(text: str, *, stream: bool = False, max_tokens: int = 1000) -> dict[str, Any]:
    return {
        "model": "metered",
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


async def test_admission_is_exact_across_three_instances(cluster: Any) -> None:
    nodes = await cluster(3)
    tid, _, key = seed(cluster.url, "crowd", 50_000)  # $0.05; each request may cost up to $0.015
    admitted: list[int] = []
    refused: list[dict[str, Any]] = []

    async def one(i: int, http: httpx.AsyncClient) -> None:
        node = nodes[i % 3]
        body = ask(f"slow {i} [sleep:2500] [usage in=1 out=10]", stream=True)
        async with http.stream(
            "POST", node.base_url + "/v1/messages", json=body, headers={"x-api-key": key}
        ) as r:
            if r.status_code == 200:
                admitted.append(i)
                await r.aread()
            else:
                refused.append({"status": r.status_code, **(await r.aread() and r.json())})

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        await asyncio.gather(*(one(i, http) for i in range(40)))
    assert 1 <= len(admitted) <= 3, (admitted, refused[:3])
    assert len(admitted) + len(refused) == 40
    assert all(r["status"] == 402 and r["error"]["type"] == "billing_error" for r in refused)
    # every hold ended; the ledger charged exactly what was served
    cost = 10 * 15  # 10 output tokens at $15/MTok
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ((balance, held),) = query(cluster.url, "SELECT balance, held FROM credit WHERE tenant_id = ?", tid)
        if held == 0 and balance == 50_000 - len(admitted) * cost:
            break
        await asyncio.sleep(0.1)
    assert (balance, held) == (50_000 - len(admitted) * cost, 0)
    assert query(cluster.url, "SELECT COUNT(*) FROM credit_holds")[0][0] == 0
    (ledger_sum,) = query(cluster.url, "SELECT SUM(amount_micro) FROM ledger WHERE tenant_id = ?", tid)[0]
    assert ledger_sum == balance


async def test_revocation_through_the_cli_is_refused_by_every_instance_within_a_second(cluster: Any) -> None:
    nodes = await cluster(3)
    _, key_id, key = seed(cluster.url, "acme", 1_000_000)
    async with httpx.AsyncClient(timeout=30) as http:
        for node in nodes:  # every instance has the key cached
            r = await http.post(
                node.base_url + "/v1/messages", json=ask("hi", max_tokens=10), headers={"x-api-key": key}
            )
            assert r.status_code == 200, r.text
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gatewaytui.cli",
                "--config",
                str(nodes[0].config),
                "keys",
                "revoke",
                key_id,
            ],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        assert done.returncode == 0, done.stderr
        revoked_at = time.monotonic()

        async def refused_after(node: Node) -> float:
            while True:
                r = await http.post(
                    node.base_url + "/v1/messages", json=ask("hi", max_tokens=10), headers={"x-api-key": key}
                )
                if r.status_code == 401:
                    assert "revoked" in r.json()["error"]["message"]
                    return time.monotonic() - revoked_at
                assert time.monotonic() - revoked_at < 5, "the revocation never reached " + node.base_url
                await asyncio.sleep(0.02)

        delays = await asyncio.gather(*(refused_after(node) for node in nodes))
    assert max(delays) < 1.0, delays


async def test_killed_instance_credit_comes_back_within_the_lease(cluster: Any) -> None:
    doomed, survivor = await cluster(2)
    _, _, key = seed(cluster.url, "acme", WORST)  # room for exactly one request
    async with httpx.AsyncClient(timeout=60) as http:
        stream = http.stream(
            "POST",
            doomed.base_url + "/v1/messages",
            json=ask("long [sleep:60000]", stream=True),
            headers={"x-api-key": key},
        )
        r = await stream.__aenter__()
        assert r.status_code == 200  # admitted: its worst case is held in the store
        refused = await http.post(
            survivor.base_url + "/v1/messages", json=ask("hi [usage in=1 out=1]"), headers={"x-api-key": key}
        )
        assert refused.status_code == 402  # the other instance's hold counts here
        doomed.signal(signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises(httpx.HTTPError):  # its client sees the connection end
            await r.aread()
        await stream.__aexit__(None, None, None)
        while True:
            again = await http.post(
                survivor.base_url + "/v1/messages",
                json=ask("hi [usage in=1 out=1]"),
                headers={"x-api-key": key},
            )
            if again.status_code == 200:
                break
            assert again.status_code == 402, again.text
            assert time.monotonic() - killed_at < LEASE + LEASE / 6 + 3, "the dead instance's hold stayed"
            await asyncio.sleep(0.1)
    released_after = time.monotonic() - killed_at
    assert released_after <= LEASE + LEASE / 6 + 3


async def test_the_same_stripe_event_to_two_instances_credits_once(cluster: Any) -> None:
    first, second = await cluster(2)
    tid, _, _ = seed(cluster.url, "payer", 0)
    session = {
        "id": "cs_cluster_once",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "currency": "usd",
        "amount_total": 2500,
        "payment_intent": "pi_cluster_once",
        "metadata": {"tenant_id": str(tid), "kind": "topup"},
    }
    payload, headers = signed(event("checkout.session.completed", session))
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(
                http.post(node.base_url + "/stripe/webhook", content=payload, headers=headers)
                for node in (first, second, first, second)
            )
        )
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    rows = query(cluster.url, "SELECT amount_micro FROM ledger WHERE tenant_id = ? AND kind = 'topup'", tid)
    assert [r[0] for r in rows] == [25_000_000]
    assert query(cluster.url, "SELECT balance FROM credit WHERE tenant_id = ?", tid)[0][0] == 25_000_000


async def test_workers_serve_one_port_and_stop_together(cluster: Any, tmp_path: Path, upstream: Any) -> None:
    node = Node(tmp_path / "workers", upstream.base_url, cluster.url)
    _, _, key = seed(cluster.url, "acme", 1_000_000)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewaytui.cli",
        "--config",
        str(node.config),
        "--no-ui",
        "--workers",
        "2",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(node.tmp),
    )
    try:
        assert proc.stderr is not None
        urls: list[str] = []
        while len(urls) < 2:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "the supervisor exited early"
            if "listening on" in line:
                urls.append(line.rsplit(" ", 1)[1].strip())
        assert urls[0] == urls[1]  # one port
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(10):  # fresh connections: the kernel spreads them over the workers
                r = await http.post(
                    urls[0] + "/v1/messages",
                    json=ask("hi", max_tokens=10),
                    headers={"x-api-key": key, "connection": "close"},
                )
                assert r.status_code == 200, r.text
        pids = {r[0] for r in query(cluster.url, "SELECT pid FROM instances")}
        assert len(pids) == 2  # two live instances in the cluster
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert query(cluster.url, "SELECT COUNT(*) FROM instances")[0][0] == 0  # both left cleanly
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_workers_need_the_postgresql_store(tmp_path: Path) -> None:
    from cli_util import ENV, write_config

    cfg = write_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "gatewaytui.cli", "--config", str(cfg), "--no-ui", "--workers", "2"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode != 0
    assert "needs the PostgreSQL store" in done.stderr and "postgresql://" in done.stderr
