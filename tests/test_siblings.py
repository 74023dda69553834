"""One scrape of ``--workers`` shows every worker: each worker serves its families on a private unix socket and
the one answering ``/metrics`` merges its siblings' (``telemetry.siblings``). In process: the merge, the
exchange, and a late, dead or garbled sibling left out; as subprocesses: ``gatewaytui --no-ui --workers 2``
on PostgreSQL, scraped through the shared port, with one worker stopped and then killed."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from test_cluster import LEASE, Node, ask, query, seed

from gatewaytui.telemetry.metrics import Labelled, Metrics
from gatewaytui.telemetry.siblings import Gathered, Siblings, SiblingsError, decode, encode

ADMIN = "admin-token-for-siblings"


def registry(instance: str, refused: int) -> CollectorRegistry:
    """A worker's registry: the request counters (``refused`` requests refused at admission), labelled."""
    reg = CollectorRegistry(auto_describe=False)
    metrics = Metrics(None)
    for _ in range(refused):
        metrics.rejected("anthropic", "v1", "", 401)
    reg.register(Labelled(metrics, instance))
    return reg


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    return d


def requests_by_instance(families: list[Any]) -> dict[str, float]:
    (requests,) = [f for f in families if f.name == "gatewaytui_requests"]
    return {s.labels["gateway_instance"]: s.value for s in requests.samples if s.name.endswith("_total")}


async def test_one_worker_answers_for_its_siblings_in_both_formats(run_dir: Path) -> None:
    a = Siblings(registry("gw-a", 2), run_dir, "gw-a", pid=1)
    b = Siblings(registry("gw-b", 3), run_dir, "gw-b", pid=2)
    c = Siblings(registry("gw-c", 5), run_dir, "gw-c", pid=3)
    for s in (a, b, c):
        await s.start()
    try:
        assert oct(os.stat(a.path).st_mode & 0o777) == "0o600"
        for asker in (a, b, c):
            gathered = Gathered(await asker.families())
            text = generate_latest(gathered).decode()
            assert text.count("# TYPE gatewaytui_requests_total counter") == 1
            for parse, body in (
                (text_string_to_metric_families, text),
                (parse_openmetrics, generate_openmetrics(gathered).decode()),  # strict: a repeat would raise
            ):
                fams = list(parse(body))
                assert len({f.name for f in fams}) == len(fams)  # one family per name
                assert requests_by_instance(fams) == {"gw-a": 2.0, "gw-b": 3.0, "gw-c": 5.0}
                errors = [f for f in fams if f.name == "gatewaytui_scrape_worker_errors"]
                assert {s.labels["gateway_instance"] for s in errors[0].samples} == {"gw-a", "gw-b", "gw-c"}
        assert a.errors == b.errors == c.errors == {"timeout": 0, "connection": 0, "invalid": 0}
    finally:
        for s in (a, b, c):
            await s.stop()
    assert not list(run_dir.iterdir())  # each removed its socket


def test_the_exchange_keeps_every_value() -> None:
    gauge = GaugeMetricFamily("g", "help text", labels=("k",))
    gauge.add_metric(("inf",), math.inf)
    gauge.add_metric(("neg",), -math.inf)
    gauge.add_metric(("nan",), math.nan)
    gauge.add_metric(("x",), 0.25)
    (back,) = decode(encode([gauge]))
    assert (back.name, back.documentation, back.type) == ("g", "help text", "gauge")
    values = {s.labels["k"]: s.value for s in back.samples}
    assert values["inf"] == math.inf and values["neg"] == -math.inf and math.isnan(values["nan"])
    assert values["x"] == 0.25


async def test_a_late_dead_or_garbled_sibling_is_left_out_and_counted(run_dir: Path) -> None:
    a = Siblings(registry("gw-a", 1), run_dir, "gw-a", pid=1, timeout=0.5)
    b = Siblings(registry("gw-b", 1), run_dir, "gw-b", pid=2)
    hung = asyncio.Event()

    async def never(_r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        await hung.wait()

    async def garbled(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b'[{"name": "x"}]')
        await w.drain()
        w.close()

    late = await asyncio.start_unix_server(never, path=str(run_dir / "3.sock"))
    bad = await asyncio.start_unix_server(garbled, path=str(run_dir / "4.sock"))
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(run_dir / "5.sock"))  # a worker killed before its supervisor removed the file
    dead.close()
    await a.start()
    await b.start()
    try:
        started = time.monotonic()
        fams = await a.families()
        assert time.monotonic() - started < 2.0  # asked at once, each within its timeout
        assert requests_by_instance(fams) == {"gw-a": 1.0, "gw-b": 1.0}
        assert a.errors == {"timeout": 1, "connection": 1, "invalid": 1}
        text = generate_latest(Gathered(fams)).decode()
        assert 'gatewaytui_scrape_worker_errors_total{cause="timeout",gateway_instance="gw-a"} 1.0' in text
    finally:
        hung.set()
        late.close()
        bad.close()
        await a.stop()
        await b.stop()


async def test_a_run_directory_others_can_enter_is_refused(run_dir: Path) -> None:
    run_dir.chmod(0o755)
    with pytest.raises(SiblingsError, match="0700"):
        await Siblings(registry("gw-a", 0), run_dir, "gw-a", pid=1).start()
    assert not list(run_dir.iterdir())


class Workers:
    """``gatewaytui --no-ui --workers 2`` as a subprocess; its stderr read as it comes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> tuple[list[int], str]:
        self.proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gatewaytui.cli", "--config", str(self.node.config)),
            *("--no-ui", "--workers", "2"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(self.node.tmp),
        )
        self._reader = asyncio.create_task(self._read())
        started = await self.wait_for("workers (pids")
        pids = [int(p) for p in started.split("(pids ", 1)[1].split(")", 1)[0].split(", ")]
        url = started.rsplit(" ", 1)[1].strip()
        await self.wait_for("listening on", count=2)
        return pids, url

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode())

    async def wait_for(self, text: str, count: int = 1, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if text in line]
            if len(found) >= count:
                return found[count - 1]
            assert time.monotonic() < deadline, f"no {text!r} in {''.join(self.lines)}"
            assert self.proc is not None and self.proc.returncode is None, "the supervisor exited early"
            await asyncio.sleep(0.05)

    async def close(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return self.proc.returncode or 0


async def scrape(http: httpx.AsyncClient, url: str, *, openmetrics: bool = False) -> dict[str, Any]:
    """One scrape on a fresh connection (the kernel picks the worker); families by name, each name once."""
    headers = {"authorization": f"Bearer {ADMIN}", "connection": "close"}
    if openmetrics:
        headers["accept"] = "application/openmetrics-text; version=1.0.0"
    r = await http.get(url + "/metrics", headers=headers)
    assert r.status_code == 200, r.text
    parse = parse_openmetrics if openmetrics else text_string_to_metric_families
    fams = list(parse(r.text))
    assert len({f.name for f in fams}) == len(fams), "a family repeated"
    return {f.name: f for f in fams}


def instances(fams: dict[str, Any], family: str = "gatewaytui_in_flight_requests") -> set[str]:
    return {s.labels["gateway_instance"] for s in fams[family].samples}


def served(fams: dict[str, Any]) -> dict[str, float]:
    """Requests answered 2xx per worker."""
    out: dict[str, float] = {}
    for s in fams["gatewaytui_requests"].samples:
        if s.name.endswith("_total") and s.labels["status_class"] == "2xx":
            out[s.labels["gateway_instance"]] = out.get(s.labels["gateway_instance"], 0) + s.value
    return out


def worker_errors(fams: dict[str, Any], cause: str) -> float:
    family = fams["gatewaytui_scrape_worker_errors"]
    return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels["cause"] == cause)


async def test_one_scrape_of_the_shared_port_shows_every_worker(
    tmp_path: Path, upstream: Any, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    url = pg_cluster.new_database()
    node = Node(tmp_path / "workers", upstream.base_url, url)
    # a stopped worker must keep its lease while the test looks at the scrapes the other answers
    node.config.write_text(node.config.read_text().replace(f"lease_seconds = {LEASE}", "lease_seconds = 60"))
    _, _, key = seed(url, "acme", 10_000_000)
    workers = Workers(node)
    try:
        pids, base = await workers.start()
        async with httpx.AsyncClient(timeout=30) as http:
            # traffic until both workers answered requests (fresh connections: the kernel spreads them)
            for _ in range(100):
                r = await http.post(
                    base + "/v1/messages",
                    json=ask("hi", max_tokens=10),
                    headers={"x-api-key": key, "connection": "close"},
                )
                assert r.status_code == 200, r.text
                if len(served(await scrape(http, base))) == 2:
                    break
            both = set(served(await scrape(http, base)))
            assert len(both) == 2
            refused = await http.get(base + "/metrics", headers={"connection": "close"})
            assert (
                refused.status_code == 401 and "gatewaytui_" not in refused.text
            )  # gathered behind the token
            for n in range(8):  # whichever worker answers, it shows both, one family per name
                fams = await scrape(http, base, openmetrics=n % 2 == 1)
                assert set(served(fams)) == both
                for name in ("gatewaytui_in_flight_requests", "gatewaytui_writer_queue_depth"):
                    assert instances(fams, name) == both
                assert worker_errors(fams, "timeout") == worker_errors(fams, "connection") == 0

            ids = {pid: instance for pid, instance in query(url, "SELECT pid, id FROM instances")}
            assert set(ids) == set(pids) and set(ids.values()) == both

            # a hung worker (stopped) is skipped by the scrapes the other answers, after its timeout
            os.kill(pids[0], signal.SIGSTOP)
            try:
                for _ in range(40):
                    try:  # a connection the kernel gave the stopped worker is not answered: try again
                        fams = await asyncio.wait_for(scrape(http, base), 6.0)
                        break
                    except TimeoutError:
                        continue
                else:
                    pytest.fail("no scrape reached the running worker")
                assert instances(fams) == set(served(fams)) == {ids[pids[1]]}
                assert worker_errors(fams, "timeout") >= 1
            finally:
                os.kill(pids[0], signal.SIGCONT)
            while instances(await scrape(http, base)) != both:
                await asyncio.sleep(0.1)

            # a dead worker is left out until its replacement joins; then no further errors
            os.kill(pids[1], signal.SIGKILL)
            for _ in range(20):
                try:  # a connection queued at the killed worker is cut: try again
                    fams = await scrape(http, base)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("no scrape reached the surviving worker")
            assert instances(fams) == {ids[pids[0]]}
            await workers.wait_for(f"worker {pids[1]} exited")
            await workers.wait_for("listening on", count=3)
            (replacement,) = {pid for (pid,) in query(url, "SELECT pid FROM instances")} - set(pids)
            (new_id,) = [i for (i,) in query(url, "SELECT id FROM instances WHERE pid = ?", replacement)]
            fams = await scrape(http, base)
            errors = worker_errors(fams, "connection")
            for _ in range(6):
                fams = await scrape(http, base)
                assert instances(fams) == {ids[pids[0]], new_id}
                assert worker_errors(fams, "connection") == errors
        assert await workers.close() == 0
        assert not [line for line in workers.lines if "Traceback" in line], "".join(workers.lines)
    finally:
        await workers.close()
        pg_cluster.drop_database(url)
