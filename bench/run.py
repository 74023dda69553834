"""One command, one run, every target side by side: ``python -m bench`` (or ``python bench/run.py``).

Targets, all on loopback, measured interleaved (each round visits every target, in a rotated order):
    direct      the fake upstream itself (the limit: what any gateway in front of it can at best reach)
    bare        a bare Quart+Hypercorn constant-reply endpoint (the framework ceiling)
    gatewaytui  ``gatewaytui --no-ui --config <generated>``: full path (auth, decode, resolve, credit hold,
                failover, relay with metering, settlement journaled) with a CLI-minted key and credit
    litellm     LiteLLM proxy (1 worker, no database) on the same fake upstream, when bench/.litellm-venv
                exists (``python -m bench --setup-litellm``)

Figures: non-streamed requests/s at c=1/32/128; streamed requests/s (50-delta streams); added latency
p50/p99 at c=1 over direct; added time to first token at c=1; RSS per open idle stream at N streams;
the translated path (OpenAI client -> Anthropic upstream) as well as the passthrough (Anthropic ->
Anthropic). Ratios are computed from medians of the same run. ``--soak`` runs the soak instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python bench/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import client, load, procs  # noqa: E402
from bench.calls import IDLE_DIRECTIVE, Target, call_for  # noqa: E402

# name, scenario, stream, connections
FIGURES = [
    ("non-streamed c=1", "anthropic", False, 1),
    ("non-streamed c=32", "anthropic", False, 32),
    ("non-streamed c=128", "anthropic", False, 128),
    ("streamed c=32", "anthropic", True, 32),
    ("translated non-streamed c=32", "translated", False, 32),
    ("translated streamed c=32", "translated", True, 32),
]
TTFT_FIGURES = [("TTFT c=1", "anthropic"), ("translated TTFT c=1", "translated")]


# ------------------------------------------------------------------ measurements


def warm(target: Target, seconds: float) -> None:
    for scenario, stream in (
        ("anthropic", False),
        ("anthropic", True),
        ("translated", False),
        ("translated", True),
    ):
        c = call_for(target, scenario, stream=stream)
        load.run_wrk(target.proc.base + c.path, c.body, c.headers, connections=8, seconds=seconds)


def measure_ttft(target: Target, scenario: str, count: int) -> list[float]:
    c = call_for(target, scenario, stream=True)
    return asyncio.run(client.ttft_series("127.0.0.1", target.proc.port, c.path, c.body, c.headers, count))


async def _idle(target: Target, n: int, gateway_inflight: Any) -> dict[str, float]:
    c = call_for(target, "anthropic", stream=True, directive=IDLE_DIRECTIVE)
    warmup = await client.hold_streams("127.0.0.1", target.proc.port, c.path, c.body, c.headers, 20)
    for conn in warmup:
        conn.close()
    await asyncio.sleep(1.5)
    before = target.proc.rss_kb()
    t0 = time.perf_counter()
    conns = await client.hold_streams("127.0.0.1", target.proc.port, c.path, c.body, c.headers, n)
    opened = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    after = target.proc.rss_kb()
    n = max(1, len(conns))  # a peer that could not hold them all is measured on those it held
    for conn in conns:
        conn.close()
    drained = None
    if gateway_inflight is not None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = await asyncio.to_thread(gateway_inflight)
            if left == 0:
                drained = time.monotonic() - (deadline - 30)
                break
            await asyncio.sleep(0.2)
    return {
        "streams": n,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_stream": (after - before) / n,
        "open_s": opened,
        "drained_s": drained if drained is not None else -1.0,
    }


def health_inflight(base: str) -> int:
    import urllib.request

    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        return int(json.loads(r.read())["inflight"])


# ------------------------------------------------------------------ the run


def start_targets(args: argparse.Namespace, run_dir: Path) -> tuple[procs.Proc, list[Target]]:
    up = procs.upstream(run_dir)
    up.start()
    targets = [Target("direct", up)]
    if "bare" in args.targets:
        b = procs.bare(run_dir)
        b.start()
        targets.append(Target("bare", b))
    if "gatewaytui" in args.targets:
        for variant in ["", *(args.variant or [])]:
            gw, key = procs.gateway(
                run_dir / (f"gw-{variant}" if variant else "gw"), up.port, variant=variant
            )
            gw.start()
            targets.append(Target(gw.name, gw, key))
    if "litellm" in args.targets:
        ll = procs.litellm(run_dir, up.port)
        if ll is None:
            print(
                "litellm: not installed (python -m bench --setup-litellm); running without the peer",
                flush=True,
            )
        else:
            ll.start(ready_path="/health/liveliness", timeout=180)
            targets.append(Target("litellm", ll))
    return up, targets


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(args: argparse.Namespace) -> int:
    if load.wrk_path() is None:
        print("error: wrk is required: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    procs.raise_fd_limit()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (Path(args.out) if args.out else procs.RESULTS) / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    info = procs.machine()
    print(
        f"bench run {stamp}: {info['cpu']} x{info['cores']}, {info['wrk']}; output in {run_dir}", flush=True
    )
    up, targets = start_targets(args, run_dir)
    names = [t.name for t in targets]
    if "litellm" in names:
        info["litellm"] = procs.litellm_version()
    results: dict[str, Any] = {
        "machine": info,
        "command": args.command,
        "args": vars(args),
        "figures": {},
        "ttft": {},
        "idle": {},
    }
    try:
        # memory first, before any load: a heap grown by earlier load would hide what a stream costs
        # (its own 20 warm-up streams load what the first request loads lazily)
        for t in targets:
            if t.name in ("gatewaytui", "litellm") and args.idle_streams:
                inflight = (
                    (lambda b=t.proc.base: health_inflight(b)) if t.name.startswith("gatewaytui") else None
                )
                r = asyncio.run(_idle(t, args.idle_streams, inflight))
                results["idle"][t.name] = r
                print(
                    f"  idle streams {t.name}: {r['kb_per_stream']:.1f} KiB/stream "
                    f"({r['rss_before_kb'] / 1024:.0f} -> {r['rss_after_kb'] / 1024:.0f} MB)",
                    flush=True,
                )
        for t in targets:
            warm(t, 1.0 if args.quick else 2.0)
        samples: dict[str, dict[str, list[dict[str, float]]]] = {
            f[0]: {n: [] for n in names} for f in FIGURES
        }
        ttfts: dict[str, dict[str, list[float]]] = {f[0]: {n: [] for n in names} for f in TTFT_FIGURES}
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for fig, scenario, stream, conns in FIGURES:
                if args.only and not any(o in fig for o in args.only):
                    continue
                for t in order:
                    c = call_for(t, scenario, stream=stream)
                    seconds = (
                        max(args.duration, 8.0) if t.name == "litellm" else args.duration
                    )  # its requests take seconds under load
                    cpu0 = t.proc.cpu_seconds()
                    r = load.run_wrk(
                        t.proc.base + c.path, c.body, c.headers, connections=conns, seconds=seconds
                    )
                    cpu_ms = (t.proc.cpu_seconds() - cpu0) * 1000 / max(1, r.requests)
                    samples[fig][t.name].append({**r.as_dict(), "cpu_ms": cpu_ms})
                    flag = f"  ERRORS {r.errors}" if r.errors else ""
                    print(
                        f"  round {rnd + 1} {fig:30s} {t.name:22s} {r.rps:9.0f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms"
                        f"  cpu {cpu_ms:6.3f} ms/req{flag}",
                        flush=True,
                    )
            for fig, scenario in TTFT_FIGURES:
                if args.only and not any(o in fig for o in args.only):
                    continue
                for t in order:
                    series = measure_ttft(t, scenario, args.ttft_count)
                    ttfts[fig][t.name].extend(series)
                    print(
                        f"  round {rnd + 1} {fig:30s} {t.name:22s} TTFT p50 {median(series) * 1000:7.3f} ms",
                        flush=True,
                    )
        for fig in samples:
            results["figures"][fig] = {
                n: {k: median([s[k] for s in v]) for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_ms")}
                | {"errors": sum(s["errors"] for s in v), "samples": v}
                for n, v in samples[fig].items()
                if v
            }
        for fig in ttfts:
            results["ttft"][fig] = {
                n: {
                    "p50_ms": median(v) * 1000,
                    "p99_ms": (sorted(v)[int(0.99 * (len(v) - 1))] * 1000 if v else float("nan")),
                    "n": len(v),
                }
                for n, v in ttfts[fig].items()
                if v
            }
        gw = next((t for t in targets if t.name == "gatewaytui"), None)  # the gateway as configured
        if gw is not None:
            results["gateway_rss_end_kb"] = gw.proc.rss_kb()
    finally:
        for t in reversed(targets):
            t.proc.stop()
    from bench.report import render

    text = render(results)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (run_dir / "results.md").write_text(text)
    print()
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--setup-litellm", action="store_true", help="create bench/.litellm-venv with litellm[proxy] and exit"
    )
    p.add_argument(
        "--targets",
        default="direct,bare,gatewaytui,litellm",
        help="comma-separated subset (direct always runs)",
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; figures are medians over rounds"
    )
    p.add_argument("--duration", type=float, default=4.0, help="seconds per wrk measurement")
    p.add_argument("--ttft-count", type=int, default=200, help="sequential streamed requests per TTFT sample")
    p.add_argument(
        "--idle-streams", type=int, default=1000, help="open idle streams for the RSS figure (0: skip)"
    )
    p.add_argument("--only", action="append", help="run only figures whose name contains this (repeatable)")
    p.add_argument("--quick", action="store_true", help="1 round of 2 s, 50 TTFT samples, 200 idle streams")
    p.add_argument(
        "--variant",
        action="append",
        choices=sorted(procs.VARIANTS),
        help="also run gatewaytui with this lever switched off, as another target (repeatable)",
    )
    p.add_argument("--out", help="results directory (default bench/results)")
    p.add_argument(
        "--cost",
        action="store_true",
        help="count instructions per request under callgrind, metrics on and off (bench/cost.py)",
    )
    p.add_argument("--cost-requests", type=int, default=100, help="--cost: requests per scenario")
    p.add_argument(
        "--cost-warmup", type=int, default=20, help="--cost: uncounted requests per scenario first"
    )
    p.add_argument(
        "--cost-single",
        action="store_true",
        help="--cost: only the gateway as configured (no metrics-off run)",
    )
    p.add_argument("--soak", action="store_true", help="run the soak instead (see --minutes, --rate)")
    p.add_argument("--minutes", type=float, default=1.0, help="soak length (the full soak is --minutes 10)")
    p.add_argument("--rate", type=float, default=100.0, help="soak arrival rate, requests per second")
    p.add_argument(
        "--instances", type=int, default=1, help="soak: gateway processes (more than 1: --store postgresql)"
    )
    p.add_argument(
        "--store", choices=("sqlite", "postgresql"), default="sqlite", help="soak: the gateways' store"
    )
    args = p.parse_args(argv)
    args.command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]).strip()
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.setup_litellm:
        rc = procs.setup_litellm()
        print(
            f"litellm {procs.litellm_version()} in {procs.LITELLM_VENV}" if rc == 0 else "pip failed",
            flush=True,
        )
        return rc
    if args.quick:
        args.rounds, args.duration, args.ttft_count = 1, 2.0, 50
        args.idle_streams = min(args.idle_streams, 200)
    if args.cost:
        from bench.cost import cost

        return cost(args)
    if args.soak:
        from bench.soak import soak

        return soak(args)
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
