"""Soak: constant arrival rate against gatewaytui, with client aborts and upstream faults mixed in.

``python -m bench --soak --minutes 10 --rate 100``. Requests arrive on a fixed schedule whatever the
gateway's answers (open loop), each on its own connection:

- half streamed (20 deltas, paced 5 ms), half not; half Anthropic passthrough, half translated
  (OpenAI client -> Anthropic upstream);
- 5% of upstream answers are faults (the fake upstream's ``faults=5``: HTTP 500 or 429 with
  ``retry-after: 1``, or a connection cut half-way), so failover, cooldowns and mid-stream breaks all
  happen; the gateway has 16 accounts per provider, so cooled-down accounts leave others to fail over to;
- 5% of clients abort: streams after the first token, non-streamed requests while the upstream is
  still thinking (it waits 200 ms).

Every 5 seconds it samples the gateway's RSS (growth is judged after a 90 s warm-up: Hypercorn holds
each closed connection's server task until its keep-alive timer fires, 75 s in gatewaytui) and ``/health`` in-flight count. At the end it waits for
the gateway to go idle, then checks that the counters are back to zero: ``/health`` in-flight and
per-account in-flight, no hold left without its settlement or release in the ledger, hold + settle =
-cost for every request, and the tenant's balance equals top-ups minus recorded costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import client, procs

WARMUP_S = 90.0


def _body(protocol: str, *, stream: bool, directive: str) -> bytes:
    data: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": f"Soak test. {directive}"}],
    }
    if stream:
        data["stream"] = True
    return json.dumps(data, separators=(",", ":")).encode()


async def one(port: int, key: str, rng: random.Random, stats: Counter[str], latencies: list[float]) -> None:
    stream = rng.random() < 0.5
    translated = rng.random() < 0.5
    abort = rng.random() < 0.05
    parts = [
        "[bench chunks=20 faults=5",
        "pace=5" if stream else "",
        "delay=200" if abort and not stream else "",
    ]
    directive = " ".join(p for p in parts if p) + "]"
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    if translated:
        path = "/v1/chat/completions"
    else:
        path = "/v1/messages"
        headers["anthropic-version"] = "2023-06-01"
    body = _body("openai" if translated else "anthropic", stream=stream, directive=directive)
    conn = client.Conn("127.0.0.1", port)
    t0 = time.perf_counter()
    try:
        await conn.open()
        if abort:
            if stream:
                await conn.request(path, body, headers, stop_at_marker=True)
            else:
                conn.send(path, body, headers)
                await asyncio.sleep(0.05)
            stats["client_aborted"] += 1
            return
        r = await asyncio.wait_for(conn.request(path, body, headers, keep=False), timeout=60)
        latencies.append(time.perf_counter() - t0)
        in_band_error = stream and (b'"type":"error"' in r.body or b'"error":{' in r.body)
        if r.status == 200 and not in_band_error:
            stats["ok"] += 1
        elif r.status == 200:
            stats["stream_error_in_band"] += 1
        else:
            stats[f"http_{r.status}"] += 1
    except (client.HTTPError, OSError, TimeoutError) as exc:
        stats[f"client_error:{type(exc).__name__}"] += 1
    finally:
        conn.close()


def _health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def ledger_checks(db: Path | str) -> dict[str, Any]:
    """The money checks, on the SQLite file or (a ``postgresql://`` URL) the shared store."""
    if isinstance(db, str):
        from gatewaytui.store import db as dbmod

        conn: Any = dbmod.connect(db)
    else:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = conn.execute
        # one pass over the ledger grouped by request (a correlated NOT EXISTS is quadratic: no index on request_id)
        per_request = (
            "SELECT request_id, SUM(CASE WHEN kind = 'hold' THEN 1 ELSE 0 END) AS holds,"
            " SUM(CASE WHEN kind IN ('settle', 'release') THEN 1 ELSE 0 END) AS closes, "
            "SUM(amount_micro) AS net FROM ledger WHERE request_id IS NOT NULL GROUP BY request_id"
        )
        unsettled = q(f"SELECT COUNT(*) FROM ({per_request}) AS p WHERE holds > 0 AND closes = 0").fetchone()[
            0
        ]
        mismatched = q(
            f"SELECT COUNT(*) FROM requests r JOIN ({per_request}) l ON l.request_id = r.id WHERE l.net != -r.cost_micro"
        ).fetchone()[0]
        rows = q("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall()
        topups = q("SELECT COALESCE(SUM(amount_micro), 0) FROM ledger WHERE kind = 'topup'").fetchone()[0]
        balance = q("SELECT COALESCE(SUM(amount_micro), 0) FROM ledger").fetchone()[0]
        costs = q("SELECT COALESCE(SUM(cost_micro), 0) FROM requests").fetchone()[0]
        holds = q("SELECT COUNT(*) FROM ledger WHERE kind = 'hold'").fetchone()[0]
        closes = q("SELECT COUNT(*) FROM ledger WHERE kind IN ('settle', 'release')").fetchone()[0]
    finally:
        conn.close()
    return {
        "requests_by_status": dict(rows),
        "unsettled_holds": unsettled,
        "ledger_vs_cost_mismatches": mismatched,
        "holds": holds,
        "settles_and_releases": closes,
        "balance_micro": balance,
        "topups_minus_costs_micro": topups - costs,
    }


async def drive(
    port: int, key: str, base: str, proc: procs.Proc, rate: float, seconds: float
) -> dict[str, Any]:
    rng = random.Random(7)
    stats: Counter[str] = Counter()
    latencies: list[float] = []
    samples: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    next_sample = start
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate) + 1
        while sent < due:
            task = asyncio.create_task(one(port, key, rng, stats, latencies))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if now >= next_sample:
            h = await asyncio.to_thread(_health, base)
            samples.append(
                {
                    "t_s": round(now - start, 1),
                    "rss_mb": round(proc.rss_kb() / 1024, 1),
                    "inflight": h["inflight"],
                    "client_open": len(tasks),
                    "sent": sent,
                    "ok": stats["ok"],
                }
            )
            print(
                f"  t={now - start:6.1f}s rss {samples[-1]['rss_mb']:7.1f} MB  in flight {h['inflight']:4d}  "
                f"sent {sent}  ok {stats['ok']}  errors {sum(v for k, v in stats.items() if k not in ('ok', 'client_aborted'))}",
                flush=True,
            )
            next_sample += 5.0
        await asyncio.sleep(min(0.01, max(0.0, start + sent / rate - time.monotonic())))
    if tasks:
        await asyncio.wait(tasks, timeout=90)
    return {"sent": sent, "stats": dict(stats), "samples": samples, "latencies": latencies}


def soak(args: argparse.Namespace) -> int:
    if getattr(args, "store", "sqlite") == "postgresql" or getattr(args, "instances", 1) > 1:
        if args.store != "postgresql":
            raise SystemExit("--instances N needs --store postgresql (several processes share one store)")
        return cluster_soak(args)
    procs.raise_fd_limit()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (Path(args.out) if args.out else procs.RESULTS) / f"soak-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    print(f"soak {args.minutes:g} min at {args.rate:g} req/s; output in {run_dir}", flush=True)
    up = procs.upstream(run_dir)
    up.start()
    gw, key = procs.gateway(run_dir / "gw", up.port, accounts_per_provider=16)
    gw.start()
    try:
        result = asyncio.run(drive(gw.port, key, gw.base, gw, args.rate, seconds))
        deadline = time.monotonic() + 60
        health = _health(gw.base)
        while health["inflight"] and time.monotonic() < deadline:
            time.sleep(0.5)
            health = _health(gw.base)
        time.sleep(2.0)  # the writer's batches land
        health = _health(gw.base)
        rss_end = gw.rss_kb() / 1024
        checks = ledger_checks(run_dir / "gw" / "gateway.db")
    finally:
        gw.stop()
        up.stop()
    checks["health_inflight"] = health["inflight"]
    checks["accounts_inflight"] = sum(int(a.get("inflight") or 0) for a in health.get("accounts", []))
    samples = result["samples"]
    # warm-up: Hypercorn keeps each closed connection's server task until its keep-alive timer (75 s in
    # gatewaytui) fires, so memory rises with connection churn for that long, then levels off
    warm = [s["rss_mb"] for s in samples if s["t_s"] >= min(WARMUP_S, seconds / 2)] or [
        s["rss_mb"] for s in samples
    ]
    growth = warm[-1] - warm[0] if warm else 0.0
    minutes_measured = (
        max(1e-9, (samples[-1]["t_s"] - next(s["t_s"] for s in samples if s["rss_mb"] == warm[0])) / 60)
        if samples
        else 1.0
    )
    lat = sorted(result["latencies"])
    ok = (
        checks["unsettled_holds"] == 0
        and checks["ledger_vs_cost_mismatches"] == 0
        and checks["health_inflight"] == 0
        and checks["accounts_inflight"] == 0
        and checks["balance_micro"] == checks["topups_minus_costs_micro"]
        and checks["holds"] == checks["settles_and_releases"]
    )
    summary = {
        "machine": procs.machine(),
        "command": args.command,
        "rate": args.rate,
        "minutes": args.minutes,
        "sent": result["sent"],
        "outcomes": result["stats"],
        "latency_p50_ms": statistics.median(lat) * 1000 if lat else None,
        "latency_p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else None,
        "rss_mb": {
            "first": samples[0]["rss_mb"] if samples else None,
            "after_warmup": warm[0] if warm else None,
            "end": round(rss_end, 1),
            "growth_after_warmup_mb": round(growth, 1),
            "growth_mb_per_min": round(growth / minutes_measured, 2),
        },
        "checks": checks,
        "counters_back_to_zero": ok,
        "samples": samples,
    }
    return report(run_dir, summary, render_soak, ok)


def report(run_dir: Path, summary: dict[str, Any], render: Callable[[dict[str, Any]], str], ok: bool) -> int:
    """Write a soak's summary beside its logs, print it rendered, and give the exit status."""
    (run_dir / "soak.json").write_text(json.dumps(summary, indent=2))
    print()
    print(render(summary))
    return 0 if ok else 1


def render_soak(s: dict[str, Any]) -> str:
    c = s["checks"]
    m = s["rss_mb"]
    lines = [
        f"Soak: {s['minutes']:g} min at {s['rate']:g} req/s ({s['sent']} requests), {s['machine']['date']}; `{s['command']}`",
        "",
        "| Check | Result |",
        "|---|---|",
        f"| outcomes (client side) | {', '.join(f'{k} {v}' for k, v in sorted(s['outcomes'].items()))} |",
        f"| latency p50 / p99 (completed) | {s['latency_p50_ms']:.1f} ms / {s['latency_p99_ms']:.1f} ms |"
        if s["latency_p50_ms"]
        else "| latency | – |",
        f"| gateway RSS first / after warm-up / end | {m['first']} / {m['after_warmup']} / {m['end']} MB |",
        f"| RSS growth after warm-up | {m['growth_after_warmup_mb']:+.1f} MB ({m['growth_mb_per_min']:+.2f} MB/min) |",
        f"| /health in flight at the end | {c['health_inflight']} |",
        f"| account in-flight counters at the end | {c['accounts_inflight']} |",
        f"| holds without settlement or release | {c['unsettled_holds']} |",
        f"| holds vs settles+releases | {c['holds']} vs {c['settles_and_releases']} |",
        f"| requests whose hold+settle != -cost | {c['ledger_vs_cost_mismatches']} |",
        f"| ledger balance vs top-ups − costs | {c['balance_micro']} vs {c['topups_minus_costs_micro']} micro-USD |",
        f"| request rows by status | {', '.join(f'{k} {v}' for k, v in sorted(c['requests_by_status'].items()))} |",
        f"| counters back to zero | {'yes ✅' if s['counters_back_to_zero'] else 'NO ❌'} |",
        "",
        "RSS over time (MB): "
        + ", ".join(
            f"{x['t_s']:.0f}s {x['rss_mb']}" for x in s["samples"][:: max(1, len(s["samples"]) // 24)]
        ),
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ several instances on one PostgreSQL store

CLUSTER_LEASE_S = 6.0  # short, so the killed instance's holds are released within the run


def _ports_round_robin(ports: list[int]) -> Any:
    n = 0

    def pick() -> int:
        nonlocal n
        n += 1
        return ports[n % len(ports)]

    return pick


async def drive_cluster(
    gws: list[procs.Proc], key: str, rate: float, seconds: float, pg: Any
) -> dict[str, Any]:
    """The soak's open-loop load spread over the instances, with one kill -9 of an instance (restarted at
    once) a third of the way in and one PostgreSQL restart two thirds in."""
    rng = random.Random(7)
    stats: Counter[str] = Counter()
    latencies: list[float] = []
    samples: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    pick = _ports_round_robin([g.port for g in gws])
    start = time.monotonic()
    next_sample = start
    sent = 0
    killed = restarted_pg = False

    def elapsed() -> float:
        return round(time.monotonic() - start, 1)

    async def kill_and_restart(victim: procs.Proc) -> None:
        assert victim.popen is not None
        os.killpg(victim.popen.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.popen.wait)
        faults.append({"t_s": elapsed(), "fault": f"kill -9 of instance 2 (pid {victim.pid})"})
        await asyncio.to_thread(victim.start)
        faults.append({"t_s": elapsed(), "fault": f"instance 2 restarted (pid {victim.pid})"})

    async def restart_store() -> None:
        faults.append({"t_s": elapsed(), "fault": "PostgreSQL stopped"})
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(pg.launch)
        faults.append({"t_s": elapsed(), "fault": "PostgreSQL started again"})

    fault_tasks: list[asyncio.Task[None]] = []

    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate) + 1
        while sent < due:
            task = asyncio.create_task(one(pick(), key, rng, stats, latencies))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        # the faults run beside the load: requests keep arriving while an instance or the store is down
        if not killed and now - start >= seconds / 3:
            killed = True
            fault_tasks.append(asyncio.create_task(kill_and_restart(gws[1])))
        if not restarted_pg and now - start >= 2 * seconds / 3:
            restarted_pg = True
            fault_tasks.append(asyncio.create_task(restart_store()))
        if now >= next_sample:
            rss = [round(_rss_mb(g), 1) for g in gws]
            samples.append({"t_s": round(now - start, 1), "rss_mb": rss, "sent": sent, "ok": stats["ok"]})
            print(
                f"  t={now - start:6.1f}s rss {' / '.join(f'{r:6.1f}' for r in rss)} MB  sent {sent}  ok {stats['ok']}"
                f"  other {sum(v for k, v in stats.items() if k not in ('ok', 'client_aborted'))}",
                flush=True,
            )
            next_sample += 5.0
        await asyncio.sleep(min(0.01, max(0.0, start + sent / rate - time.monotonic())))
    await asyncio.gather(*fault_tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=90)
    return {"sent": sent, "stats": dict(stats), "samples": samples, "latencies": latencies, "faults": faults}


def _rss_mb(proc: procs.Proc) -> float:
    """A process's RSS, 0 while it is down (killed, not yet restarted)."""
    try:
        return proc.rss_kb() / 1024
    except (OSError, RuntimeError):
        return 0.0


def cluster_checks(url: str) -> dict[str, Any]:
    """The shared store's own counters: holds left in ``credit_holds``, ``credit.held``, and the credit
    balance against the ledger."""
    from gatewaytui.store import db as dbmod

    conn = dbmod.connect(url)
    try:
        q = conn.execute
        return {
            "credit_holds_left": q("SELECT COUNT(*) FROM credit_holds").fetchone()[0],
            "credit_held_micro": q("SELECT COALESCE(SUM(held), 0) FROM credit").fetchone()[0],
            "credit_balance_micro": q("SELECT COALESCE(SUM(balance), 0) FROM credit").fetchone()[0],
            # settlements of requests admitted from a credit slice (billing/slices.py; rows kept an hour)
            "slice_draws": q("SELECT COUNT(*) FROM credit_draws").fetchone()[0],
        }
    finally:
        conn.close()


def cluster_soak(args: argparse.Namespace) -> int:
    """``--soak --instances N --store postgresql``: N gateway processes on one PostgreSQL store."""
    procs.raise_fd_limit()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (Path(args.out) if args.out else procs.RESULTS) / f"soak-cluster-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    n = args.instances
    print(
        f"soak {args.minutes:g} min at {args.rate:g} req/s over {n} instances on PostgreSQL; output in {run_dir}"
    )
    pg = procs.pg_cluster()
    url = pg.new_database()
    up = procs.upstream(run_dir)
    up.start()
    database = {"lease_seconds": CLUSTER_LEASE_S, "spool_dir": str(run_dir / "spool")}
    gws: list[procs.Proc] = []
    key = ""
    try:
        for i in range(n):
            gw, minted = procs.gateway(
                run_dir / f"gw{i + 1}", up.port, accounts_per_provider=16, database_url=url, database=database
            )
            key = key or minted
            gw.start()
            gws.append(gw)
        result = asyncio.run(drive_cluster(gws, key, args.rate, seconds, pg))
        deadline = time.monotonic() + 60
        while sum(_health(g.base)["inflight"] for g in gws) and time.monotonic() < deadline:
            time.sleep(0.5)
        # the writers' batches land; the killed instance's holds go when its lease has run out
        time.sleep(CLUSTER_LEASE_S + CLUSTER_LEASE_S / 6 + 3)
        health = [_health(g.base) for g in gws]
        rss_end = [round(g.rss_kb() / 1024, 1) for g in gws]
        checks = ledger_checks(url)
        checks.update(cluster_checks(url))
    finally:
        for g in gws:
            g.stop()
        up.stop()
    checks["health_inflight"] = sum(h["inflight"] for h in health)
    checks["accounts_inflight"] = sum(
        int(a.get("inflight") or 0) for h in health for a in h.get("accounts", [])
    )
    samples = result["samples"]
    warm_from = min(WARMUP_S, seconds / 2)
    warm = [s for s in samples if s["t_s"] >= warm_from] or samples
    growth = [round(warm[-1]["rss_mb"][i] - warm[0]["rss_mb"][i], 1) if warm else 0.0 for i in range(n)]
    restart_at = next(
        (f["t_s"] for f in result["faults"] if f["fault"].startswith("instance 2 restarted")), 0.0
    )
    after_restart = [s["rss_mb"][1] for s in samples if s["t_s"] >= max(warm_from, restart_at + 30)]
    if n > 1 and len(after_restart) >= 2:  # the restarted instance: from its own warm-up
        growth[1] = round(after_restart[-1] - after_restart[0], 1)
    lat = sorted(result["latencies"])
    ok = (
        checks["unsettled_holds"] == 0
        and checks["ledger_vs_cost_mismatches"] == 0
        and checks["health_inflight"] == 0
        and checks["accounts_inflight"] == 0
        and checks["balance_micro"] == checks["topups_minus_costs_micro"]
        and checks["holds"] == checks["settles_and_releases"]
        and checks["credit_holds_left"] == 0
        and checks["credit_held_micro"] == 0
        and checks["credit_balance_micro"] == checks["balance_micro"]
    )
    summary = {
        "machine": procs.machine(),
        "command": args.command,
        "instances": n,
        "rate": args.rate,
        "minutes": args.minutes,
        "sent": result["sent"],
        "outcomes": result["stats"],
        "faults": result["faults"],
        "latency_p50_ms": statistics.median(lat) * 1000 if lat else None,
        "latency_p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else None,
        "rss_mb": {
            "first": samples[0]["rss_mb"] if samples else None,
            "end": rss_end,
            "growth_after_warmup_mb": growth,
        },
        "checks": checks,
        "money_exact_and_counters_zero": ok,
        "samples": samples,
    }
    return report(run_dir, summary, render_cluster_soak, ok)


def render_cluster_soak(s: dict[str, Any]) -> str:
    c = s["checks"]
    m = s["rss_mb"]
    lines = [
        f"Cluster soak: {s['instances']} instances, {s['minutes']:g} min at {s['rate']:g} req/s ({s['sent']} requests),"
        f" {s['machine']['date']}; `{s['command']}`",
        "",
        "| Check | Result |",
        "|---|---|",
        "| faults | " + "; ".join(f"{f['t_s']:.0f}s {f['fault']}" for f in s["faults"]) + " |",
        f"| outcomes (client side) | {', '.join(f'{k} {v}' for k, v in sorted(s['outcomes'].items()))} |",
        f"| latency p50 / p99 (completed) | {s['latency_p50_ms']:.1f} ms / {s['latency_p99_ms']:.1f} ms |"
        if s["latency_p50_ms"]
        else "| latency | – |",
        f"| RSS per instance first / end | {m['first']} / {m['end']} MB |",
        f"| RSS growth after warm-up, per instance | {', '.join(f'{g:+.1f}' for g in m['growth_after_warmup_mb'])} MB |",
        f"| in flight at the end (/health, accounts) | {c['health_inflight']}, {c['accounts_inflight']} |",
        f"| holds without settlement or release (ledger) | {c['unsettled_holds']} |",
        f"| holds vs settles+releases | {c['holds']} vs {c['settles_and_releases']} |",
        f"| requests whose hold+settle != -cost | {c['ledger_vs_cost_mismatches']} |",
        f"| ledger balance vs top-ups − costs | {c['balance_micro']} vs {c['topups_minus_costs_micro']} micro-USD |",
        f"| credit_holds rows / credit.held left | {c['credit_holds_left']} / {c['credit_held_micro']} |",
        f"| credit.balance vs ledger | {c['credit_balance_micro']} vs {c['balance_micro']} |",
        f"| settlements drawn from a credit slice | {c['slice_draws']} |",
        f"| request rows by status | {', '.join(f'{k} {v}' for k, v in sorted(c['requests_by_status'].items()))} |",
        f"| money exact, counters back to zero | {'yes ✅' if s['money_exact_and_counters_zero'] else 'NO ❌'} |",
    ]
    return "\n".join(lines) + "\n"
