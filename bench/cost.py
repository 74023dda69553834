"""Instructions per request, counted by callgrind: ``python -m bench --cost``.

Wall-clock figures on a shared 2-core machine move by more than the few percent some questions need
("do the metrics cost anything noticeable?"). Instruction counts do not: a callgrind-run process executes
the same instructions however loaded the machine is. So this runs the gateway under
``valgrind --tool=callgrind`` (instrumentation off during start-up and warm-up, switched on with
``callgrind_control``), sends N sequential requests per scenario on one keep-alive connection, lets the
process go idle (its writer thread journals, background tasks run), and dumps the counters: a dump's total
divided by N is what one request costs the gateway process, every thread included (the fake upstream and
the client are other processes, not counted).

Two gateways are counted, the one as configured and ``no-metrics`` (``[metrics] enabled = false``); in the
first, the per-request metrics hook (``Metrics.settled``) is called through ``operator.call`` (a C function
nothing else in the process calls), so callgrind's inclusive count for ``_operator_call`` is exactly what
the metrics hook executed: the exact share, next to the with/without difference of the whole processes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.calls import Target, call_for

# name -> (scenario, stream): the figures' request shapes (50-delta streams)
SCENARIOS = {
    "passthrough": ("anthropic", False),
    "translated": ("translated", False),
    "streamed": ("anthropic", True),
    "translated streamed": ("translated", True),
}
PROBE = "_operator_call"  # the C function the metrics hook is called through (bench.gwlaunch --cost-probe)
SETTLE_S = 1.0  # idle seconds before a dump: the writer thread and follow-up tasks finish the last request


@dataclass
class Count:
    """One scenario's dump: instructions in total, and inside the metrics hook."""

    requests: int
    total: int
    probe: int

    @property
    def per_request(self) -> float:
        return self.total / self.requests

    @property
    def probe_per_request(self) -> float:
        return self.probe / self.requests


def valgrind_argv(out_dir: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",  # start-up and warm-up run uninstrumented
        f"--callgrind-out-file={out_dir / 'callgrind.out.%p'}",
        "--dump-instr=no",
        "--compress-strings=no",
        "--compress-pos=no",
    ]


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=300)


def inclusive(path: Path, function: str) -> tuple[int, int]:
    """(the dump's total Ir, the inclusive Ir of ``function``) from an uncompressed callgrind file."""
    total = 0
    incl = 0
    inside = False  # in the cost lines of ``fn=function``
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
        elif line.startswith("fn="):
            inside = line[3:].strip() == function
        elif inside and line[:1].isdigit():
            parts = line.split()
            if len(parts) >= 2:
                incl += int(parts[1])  # a self cost, or (after a calls= line) the call's inclusive cost
    return total, incl


def start(run_dir: Path, upstream_port: int, variant: str) -> tuple[procs.Proc, str]:
    proc, key = procs.gateway(run_dir, upstream_port, variant=variant)
    cfg = run_dir / "gateway.toml"
    probe = [] if variant == "no-metrics" else ["--cost-probe"]
    proc.argv = [
        *valgrind_argv(run_dir),
        procs.py(),
        "-m",
        "bench.gwlaunch",
        *probe,
        "--config",
        str(cfg),
        "--no-ui",
        "--log-level",
        "warning",
    ]
    proc.env = {**proc.env, "PYTHONHASHSEED": "0"}  # the same dict layouts run to run
    proc.start(timeout=600)
    return proc, key


def send(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> None:
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"POST {path}: HTTP {resp.status}: {data[:300]!r}")


def count(
    proc: procs.Proc, key: str, requests: int, warmup: int, only: list[str] | None = None
) -> dict[str, Count]:
    target = Target("gatewaytui", proc, key)
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=600)
    calls = {
        name: call_for(target, sc, stream=stream)
        for name, (sc, stream) in SCENARIOS.items()
        if not only or any(o in name for o in only)
    }
    for c in calls.values():  # lazy imports, caches and pools, uninstrumented
        for _ in range(warmup):
            send(conn, c.path, c.body, c.headers)
    control(proc.pid, "--instr=on")
    for c in calls.values():  # the same, instrumented (callgrind's own first-run work is not guest code)
        for _ in range(3):
            send(conn, c.path, c.body, c.headers)
    time.sleep(SETTLE_S)
    control(proc.pid, "--dump=warm")
    out: dict[str, Count] = {}
    for name, c in calls.items():
        for _ in range(requests):
            send(conn, c.path, c.body, c.headers)
        time.sleep(SETTLE_S)
        before = set(proc.log.parent.glob("callgrind.out.*"))
        control(proc.pid, f"--dump={name}")
        dump = _new_dump(proc, before)
        total, probe = inclusive(dump, PROBE)
        out[name] = Count(requests, total, probe)
        print(
            f"  {proc.name:24s} {name:20s} {out[name].per_request:12,.0f} Ir/request"
            f"  (metrics hook {out[name].probe_per_request:,.0f})",
            flush=True,
        )
    conn.close()
    return out


def _new_dump(proc: procs.Proc, before: set[Path]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = sorted(set(proc.log.parent.glob("callgrind.out.*")) - before, key=_dump_number)
        if new:
            return new[-1]
        time.sleep(0.1)
    raise RuntimeError("callgrind wrote no dump")


def _dump_number(p: Path) -> int:
    m = re.search(r"\.(\d+)$", p.name)
    return int(m.group(1)) if m else 0


def render(results: dict[str, dict[str, Count]], requests: int, command: str, rev: str) -> str:
    on = results["gatewaytui"]
    off = results.get("gatewaytui[no-metrics]", on)
    lines = [
        f"Instructions per request (callgrind, gateway process, every thread; {requests} sequential "
        f"requests per scenario; gatewaytui {rev}; `{command}`)",
        "",
        "| scenario | metrics on | metrics off | difference | metrics hook (exact) | hook share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in on:
        a, b = on[name], off[name]
        diff = a.per_request - b.per_request
        lines.append(
            f"| {name} | {a.per_request:,.0f} | {b.per_request:,.0f} | {diff:+,.0f} ({diff / b.per_request:+.2%})"
            f" | {a.probe_per_request:,.0f} | {a.probe_per_request / a.per_request:.2%} |"
        )
    lines += [
        "",
        "metrics hook: instructions inside `Metrics.settled` (called through `operator.call`; callgrind's "
        "inclusive count of `_operator_call`). difference: the whole process with metrics on minus off "
        "(also holds what varies between two processes: garbage collections, dictionary resizes).",
    ]
    return "\n".join(lines) + "\n"


def cost(args: argparse.Namespace) -> int:
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is required: apt-get install -y valgrind", file=sys.stderr)
            return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (Path(args.out) if args.out else procs.RESULTS) / f"cost-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    up = procs.upstream(run_dir)
    up.start()
    results: dict[str, dict[str, Count]] = {}
    print(f"bench --cost: {args.cost_requests} requests per scenario; output in {run_dir}", flush=True)
    try:
        for variant in ("",) if args.cost_single else ("", "no-metrics"):
            proc, key = start(run_dir / (f"gw-{variant}" if variant else "gw"), up.port, variant)
            try:
                results[proc.name] = count(proc, key, args.cost_requests, args.cost_warmup, args.only)
            finally:
                proc.stop()
    finally:
        up.stop()
    rev = procs.machine()["gatewaytui_rev"]
    text = render(results, args.cost_requests, args.command, rev)
    raw: dict[str, Any] = {n: {s: vars(c) for s, c in per.items()} for n, per in results.items()} | {
        "command": args.command,
        "rev": rev,
    }
    (run_dir / "cost.json").write_text(json.dumps(raw, indent=2))
    (run_dir / "cost.md").write_text(text)
    print()
    print(text)
    return 0
