"""The processes a benchmark run starts: fake upstream, bare Quart endpoint, gatewaytui, LiteLLM.

Each runs in its own process group on a free loopback port, with its output in the run directory,
and is stopped by its own pid (never by name). Memory is read from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
LITELLM_VENV = BENCH / ".litellm-venv"
MASTER_KEY = "sk-bench-master"
UPSTREAM_KEY = "bench-upstream-key"

MODELS = {
    # name: (provider, input $/Mtok, output $/Mtok)
    "claude-sonnet-4-5": ("anthropic", 3.0, 15.0),
    "gpt-4o": ("openai", 2.5, 10.0),
    "gemini-2.5-flash": ("gemini", 0.3, 2.5),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    """Resident set size of one process (VmRSS, in KiB: what /proc calls kB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and its children (LiteLLM and Hypercorn may fork workers)."""
    total = rss_kb(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            total += tree_rss_kb(int(child))
        except (OSError, RuntimeError):
            pass
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            total += cpu_seconds(int(child))
        except (OSError, IndexError, ValueError):
            pass
    return total


@dataclass
class Proc:
    name: str
    argv: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/health", timeout: float = 60.0) -> None:
        env = {**os.environ, **self.env}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "wb")
        self.popen = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.base + ready_path, timeout=2) as r:
                    if r.status < 500:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f}s; see {self.log}")

    def rss_kb(self) -> int:
        return tree_rss_kb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)  # the group this process leads (its own workers)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


def py() -> str:
    return sys.executable


def upstream(run_dir: Path) -> Proc:
    port = free_port()
    return Proc(
        "upstream", [py(), "-m", "bench.upstream", "--port", str(port)], port, run_dir / "upstream.log"
    )


def bare(run_dir: Path) -> Proc:
    port = free_port()
    return Proc("bare", [py(), "-m", "bench.bare", "--port", str(port)], port, run_dir / "bare.log")


# ------------------------------------------------------------------ gatewaytui


def gateway_config(
    run_dir: Path,
    port: int,
    upstream_port: int,
    *,
    accounts_per_provider: int = 1,
    metrics: bool = True,
    database_url: str | None = None,
    database: dict[str, Any] | None = None,
) -> Path:
    up = f"http://127.0.0.1:{upstream_port}"
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "",
        "[database]",
        f'path = "{run_dir / "gateway.db"}"',
        *([f'url = "{database_url}"'] if database_url else []),
        *(f"{k} = {json.dumps(v)}" for k, v in (database or {}).items()),
        "",
        "[routing]",
        'default_model = "claude-sonnet-4-5"',
        "",
        "[billing]",
        "max_credit_usd = 1000000",  # the bench tenant's credit must never run out
        "",
        *([] if metrics else ["[metrics]", "enabled = false", ""]),
    ]
    bases = {"anthropic": up, "openai": up + "/v1", "gemini": up}
    for provider, base in bases.items():
        for i in range(1, accounts_per_provider + 1):
            lines += [
                "[[accounts]]",
                f'label = "bench-{provider}-{i}"',
                f'provider = "{provider}"',
                f'base_url = "{base}"',
                f'api_key = "{UPSTREAM_KEY}"',
                "",
            ]
    for name, (provider, inp, out) in MODELS.items():
        lines += [
            "[[models]]",
            f'name = "{name}"',
            f'provider = "{provider}"',
            f"input_per_mtok = {inp}",
            f"output_per_mtok = {out}",
            "",
        ]
    path = run_dir / "gateway.toml"
    path.write_text("\n".join(lines))
    return path


def gateway_cli() -> list[str]:
    exe = Path(sys.executable).with_name("gatewaytui")
    return [str(exe)] if exe.exists() else [py(), "-m", "gatewaytui.cli"]


# lever switched off -> bench.gwlaunch flag ("" = done through the generated config); the postgresql
# variants run on a shared PostgreSQL store (a throwaway cluster, tests/pgcluster.py), one or two workers
VARIANTS = {
    "no-uvloop": "--no-uvloop",
    "httpx-api": "--httpx-api",
    "gc": "--gc",
    "no-metrics": "",
    "postgresql": "",
    "postgresql-workers2": "",
}


@functools.cache
def pg_cluster() -> Any:
    """One throwaway PostgreSQL cluster for the whole bench run (stopped at exit)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pgcluster import PgCluster, bindir

    found = bindir()
    if found is None:
        raise SystemExit(
            "the postgresql variants need PostgreSQL's server binaries (apt-get install postgresql)"
        )
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="gatewaytui-bench-pg-")), found)
    cluster.start()
    atexit.register(lambda: (cluster.stop(), shutil.rmtree(cluster.root, ignore_errors=True)))
    return cluster


GATEWAY_ENV = {"GATEWAYTUI_SECRET_KEY": "bench-secret", "GATEWAYTUI_ADMIN_TOKEN": "bench-admin"}


def gateway(
    run_dir: Path,
    upstream_port: int,
    *,
    accounts_per_provider: int = 1,
    variant: str = "",
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
    database: dict[str, Any] | None = None,
) -> tuple[Proc, str]:
    """A configured gatewaytui with a minted tenant key and plenty of credit; returns (process, key).

    ``variant`` switches one lever off for a before/after comparison (see ``VARIANTS``).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if variant and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if database_url is None and variant.startswith("postgresql"):
        database_url = pg_cluster().new_database()
    cfg = gateway_config(
        run_dir,
        port,
        upstream_port,
        accounts_per_provider=accounts_per_provider,
        metrics=variant != "no-metrics",
        database_url=database_url,
        database=database,
    )
    env = {**os.environ, **GATEWAY_ENV}
    base = [*gateway_cli(), "--config", str(cfg)]
    out = subprocess.run(
        [*base, "keys", "create", "--tenant", "bench", "--create", "--label", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = out.stdout.strip().splitlines()[-1].strip()
    subprocess.run(
        [*base, "credits", "add", "--tenant", "bench", "--usd", "1000000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    launch = VARIANTS.get(variant)
    serve = [py(), "-m", "bench.gwlaunch", launch, "--config", str(cfg)] if launch else base
    workers = ["--workers", "2"] if variant.endswith("-workers2") else []
    proc = Proc(
        f"gatewaytui[{variant}]" if variant else "gatewaytui",
        [*serve, "--no-ui", "--log-level", "warning", *workers],
        port,
        run_dir / "gateway.log",
        env={**GATEWAY_ENV, **(extra_env or {})},
    )
    return proc, key


# ------------------------------------------------------------------ LiteLLM (the peer, in its own venv)


def litellm_exe() -> Path | None:
    exe = LITELLM_VENV / "bin" / "litellm"
    return exe if exe.exists() else None


def setup_litellm() -> int:
    """Create bench/.litellm-venv and install ``litellm[proxy]`` there (kept apart from the project venv)."""
    if not (LITELLM_VENV / "bin" / "python").exists():
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade"]
    return subprocess.run([*pip, "litellm[proxy]"]).returncode


def litellm_version() -> str:
    python = LITELLM_VENV / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def litellm(run_dir: Path, upstream_port: int) -> Proc | None:
    exe = litellm_exe()
    if exe is None:
        return None
    up = f"http://127.0.0.1:{upstream_port}"
    cfg = run_dir / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: claude-sonnet-4-5\n"
        f"    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: '{up}', api_key: '{UPSTREAM_KEY}'}}\n"
        "  - model_name: gpt-4o\n"
        f"    litellm_params: {{model: openai/gpt-4o, api_base: '{up}/v1', api_key: '{UPSTREAM_KEY}'}}\n"
        "  - model_name: gemini-2.5-flash\n"
        f"    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: '{up}', api_key: '{UPSTREAM_KEY}'}}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
    )
    port = free_port()
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
        "NO_DOCS": "True",
    }
    argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return Proc("litellm", argv, port, run_dir / "litellm.log", env=env)


# ------------------------------------------------------------------ the machine


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        rev = ""
    wrk = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        if shutil.which("wrk")
        else "missing"
    )
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk.strip(),
        "gatewaytui_rev": rev or "?",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
