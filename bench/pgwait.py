"""One hot tenant on PostgreSQL: admissions per second and the lock waits on its credit row.

    python -m bench.pgwait [--workers 1 --workers 2] [--connections 128] [--duration 10] [--rounds 2]

Starts the fake upstream, a throwaway PostgreSQL cluster and, for each ``--workers`` value, a gateway on
its own fresh database (``--workers N`` processes on one port), then loads it with wrk (non-streamed,
Anthropic passthrough, every request on the one bench tenant, so every admission and every settlement
updates the same ``credit`` row). While wrk runs, a separate connection samples ``pg_stat_activity``
every ``--interval`` seconds: how many of the gateway's backends were running a statement (``active``)
and how many of those were waiting for a lock (``wait_event_type = 'Lock'``: on the credit row, its
transaction, or the writer's advisory lock), with the statement they waited in (admission, settlement
batch, other). Admissions per second are the credit holds the database granted during the run (``hold``
entries in the ledger, written at settlement, plus the holds still open), over the run's seconds. CPU ms per request is the gateway's process tree, as in ``python -m bench``.

Rounds alternate the targets, as the main bench does. Results: a table on stdout, and
``results.json`` in ``bench/results/pgwait-<timestamp>/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # ``python bench/pgwait.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, procs  # noqa: E402
from bench.run import Target, call_for  # noqa: E402

SAMPLE_SQL = (
    "SELECT wait_event_type, wait_event, query FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'"
)
GRANTED_SQL = "SELECT (SELECT COUNT(*) FROM ledger WHERE kind = 'hold') + (SELECT COUNT(*) FROM credit_holds)"


def statement_kind(query: str) -> str:
    """Which of the gateway's statements a backend is running."""
    q = query.lstrip().upper()
    if "INSERT INTO CREDIT_HOLDS" in q or "GATEWAYTUI_ADMIT" in q:
        return "admission"
    if q.startswith(
        ("INSERT INTO REQUESTS", "INSERT INTO LEDGER", "BEGIN", "SAVEPOINT", "RELEASE", "COMMIT")
    ):
        return "settlement"
    return "other"


class Sampler:
    """Samples the database's active backends on its own thread until ``stop``."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.samples: list[list[tuple[str | None, str | None, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgwait-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(SAMPLE_SQL).fetchall()
                self.samples.append([(r[0], r[1], statement_kind(r[2] or "")) for r in rows])
                self._stop.wait(self.interval)

    def summary(self) -> dict[str, Any]:
        n = max(1, len(self.samples))
        active = [len(s) for s in self.samples]
        waiting = [[row for row in s if row[0] == "Lock"] for s in self.samples]
        by_kind: dict[str, float] = {}
        by_event: dict[str, float] = {}
        for rows in waiting:
            for _, event, kind in rows:
                by_kind[kind] = by_kind.get(kind, 0) + 1 / n
                by_event[event or "?"] = by_event.get(event or "?", 0) + 1 / n
        total_active = sum(active)
        return {
            "samples": len(self.samples),
            "active_mean": total_active / n,
            "lock_waiting_mean": sum(len(w) for w in waiting) / n,
            "samples_with_lock_wait": sum(1 for w in waiting if w) / n,
            "lock_share_of_active": sum(len(w) for w in waiting) / total_active if total_active else 0.0,
            "lock_waiting_by_statement": by_kind,
            "lock_waiting_by_event": by_event,
        }


def holds_granted(url: str) -> int:
    """Credit holds granted so far: settled or released (their ledger entry) and still open."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(GRANTED_SQL).fetchone()
        return int(row[0]) if row else 0


def measure(
    proc: procs.Proc, key: str, url: str, *, connections: int, seconds: float, interval: float
) -> dict[str, Any]:
    c = call_for(Target(proc.name, proc, key), "anthropic", stream=False)
    sampler = Sampler(url, interval)
    granted0 = holds_granted(url)
    cpu0 = proc.cpu_seconds()
    sampler.start()
    t0 = time.monotonic()
    r = load.run_wrk(proc.base + c.path, c.body, c.headers, connections=connections, seconds=seconds)
    elapsed = time.monotonic() - t0
    sampler.stop()
    cpu_ms = (proc.cpu_seconds() - cpu0) * 1000 / max(1, r.requests)
    time.sleep(1.0)  # the last settlements reach the ledger (the writer's batches)
    admitted = holds_granted(url) - granted0
    return {
        **r.as_dict(),
        "cpu_ms": cpu_ms,
        "admissions": admitted,
        "admissions_per_s": admitted / elapsed,
        **sampler.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.pgwait",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workers", type=int, action="append", help="gateway processes (repeatable; default 1 and 2)"
    )
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--interval", type=float, default=0.01, help="seconds between pg_stat_activity samples")
    p.add_argument("--out", help="results directory (default bench/results)")
    args = p.parse_args(argv)
    if load.wrk_path() is None:
        print("error: wrk is required: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2
    procs.raise_fd_limit()
    run_dir = (Path(args.out) if args.out else procs.RESULTS) / time.strftime("pgwait-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    up = procs.upstream(run_dir)
    up.start()
    targets: list[tuple[str, procs.Proc, str, str]] = []
    results: dict[str, Any] = {"machine": procs.machine(), "args": vars(args), "runs": {}}
    try:
        for workers in args.workers or [1, 2]:
            url = procs.pg_cluster().new_database()
            variant = "postgresql-workers2" if workers == 2 else "postgresql"
            gw, key = procs.gateway(run_dir / f"gw-{workers}", up.port, variant=variant, database_url=url)
            if workers not in (1, 2):
                gw.argv += ["--workers", str(workers)]
            gw.start()
            targets.append((f"{workers} worker{'s' if workers > 1 else ''}", gw, key, url))
        for _, gw, key, _ in targets:  # warm up: connections opened, statements prepared
            c = call_for(Target(gw.name, gw, key), "anthropic", stream=False)
            load.run_wrk(gw.base + c.path, c.body, c.headers, connections=16, seconds=2)
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for name, gw, key, url in order:
                m = measure(
                    gw, key, url, connections=args.connections, seconds=args.duration, interval=args.interval
                )
                results["runs"].setdefault(name, []).append(m)
                print(
                    f"  round {rnd + 1} {name:10s} {m['rps']:7.0f} req/s  {m['admissions_per_s']:7.0f} admissions/s"
                    f"  cpu {m['cpu_ms']:.3f} ms/req  backends active {m['active_mean']:.2f},"
                    f" waiting on a lock {m['lock_waiting_mean']:.2f} ({m['lock_share_of_active']:.0%};"
                    f" in {m['samples_with_lock_wait']:.0%} of samples)",
                    flush=True,
                )
    finally:
        for _, gw, _, _ in targets:
            gw.stop()
        up.stop()
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(render(results, args.connections))
    return 0


def render(results: dict[str, Any], connections: int) -> str:
    def med(runs: list[dict[str, Any]], k: str) -> float:
        return statistics.median(r[k] for r in runs)

    lines = [
        f"| one hot tenant, c={connections}, non-streamed | req/s | admissions/s | CPU ms/request"
        " | backends running a statement | of them waiting on a lock | samples with a lock wait | waiting in | waiting for |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, runs in results["runs"].items():
        kinds: dict[str, float] = {}
        for r in runs:
            for k, v in r["lock_waiting_by_statement"].items():
                kinds[k] = kinds.get(k, 0) + v / len(runs)
        events: dict[str, float] = {}
        for r in runs:
            for k, v in r["lock_waiting_by_event"].items():
                events[k] = events.get(k, 0) + v / len(runs)
        where = ", ".join(f"{k} {v:.2f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) or "none"
        on = ", ".join(f"{k} {v:.2f}" for k, v in sorted(events.items(), key=lambda kv: -kv[1])) or "none"
        lines.append(
            f"| PostgreSQL, {name} | {med(runs, 'rps'):,.0f} | {med(runs, 'admissions_per_s'):,.0f}"
            f" | {med(runs, 'cpu_ms'):.2f} | {med(runs, 'active_mean'):.2f} | {med(runs, 'lock_waiting_mean'):.2f}"
            f" ({med(runs, 'lock_share_of_active'):.0%}) | {med(runs, 'samples_with_lock_wait'):.0%} | {where} | {on} |"
        )
    lines.append("")
    lines.append(
        "Medians over rounds. Backends: the gateway's PostgreSQL connections running a statement, mean over"
        " pg_stat_activity samples; waiting on a lock: wait_event_type 'Lock' (mean per sample, and share"
        " of the running ones); waiting in: the statement, waiting for: the lock (transactionid: a row another"
        " transaction changed, such as the credit row; tuple: queued behind another waiter for that row;"
        " advisory: the writers' batch lock), both as mean waiting backends per sample. Admissions/s counts"
        " the requests in flight when wrk stops, which wrk does not."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
