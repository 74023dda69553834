"""``gatewaytui --no-ui --workers N``: N gateway server processes on one port, all cores of a machine.

Each worker is a full ``gatewaytui --no-ui`` process (its own event loop, runtime and connections) bound
to the same port with SO_REUSEPORT; the kernel spreads new connections over them. They share state only
through the PostgreSQL store (admission, ledger, keys, accounts, notifications), so workers require it. The
supervisor reserves the port (bound, never listening: it receives no connections), starts the workers,
restarts one that dies, and on SIGINT/SIGTERM passes the signal on and waits for every worker to drain.

A scrape of the shared port reaches one worker, so the supervisor also makes a private run directory (mode
0700, removed at exit) where each worker listens on a unix socket of its own: the worker answering
``/metrics`` gathers the others' metrics there (``telemetry.siblings``). The supervisor removes a dead
worker's socket before starting its replacement.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from .config import Config
from .telemetry.siblings import socket_path

RESTART_AFTER = 1.0  # seconds before a worker that died is started again


class WorkersError(Exception):
    pass


def check(cfg: Config, workers: int, ui: bool) -> None:
    if workers < 1 or workers > 256:
        raise WorkersError("--workers must be between 1 and 256")
    if workers == 1:
        return
    if ui:
        raise WorkersError(
            "--workers runs headless server processes: add --no-ui (attach a console with `gatewaytui attach URL`)"
        )
    if not cfg.database.shared:
        raise WorkersError(
            f"--workers {workers} needs the PostgreSQL store: the SQLite database {cfg.database.path} serves one "
            'server process. Set [database] url = "postgresql://..." (see "Running several instances" in README.md).'
        )


def reserve(host: str, port: int) -> socket.socket:
    """Bind (without listening) the port the workers will share, resolving port 0 to a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise WorkersError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def supervise(argv: list[str], cfg: Config, workers: int, announce: Callable[[str], None]) -> int:
    """Run ``workers`` copies of ``gatewaytui <argv> --port P --reuse-port --siblings DIR`` until SIGINT/SIGTERM."""
    reservation = reserve(cfg.server.host, cfg.server.port)
    port = reservation.getsockname()[1]
    run_dir = tempfile.mkdtemp(prefix="gatewaytui-workers-")  # mode 0700: only this user's processes
    command = [sys.executable, "-m", "gatewaytui.cli", *argv, "--port", str(port), "--reuse-port"]
    command += ["--siblings", run_dir]
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    procs: list[subprocess.Popen[bytes]] = []
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs.extend(subprocess.Popen(command) for _ in range(workers))
        host = f"[{cfg.server.host}]" if ":" in cfg.server.host else cfg.server.host
        announce(
            f"gatewaytui: {workers} workers (pids {', '.join(str(p.pid) for p in procs)}) on http://{host}:{port}"
        )
        while not stopping:
            time.sleep(0.2)
            for n, proc in enumerate(procs):
                if proc.poll() is not None and not stopping:
                    announce(f"worker {proc.pid} exited with {proc.returncode}; starting another")
                    socket_path(run_dir, proc.pid).unlink(missing_ok=True)  # its siblings stop asking it
                    time.sleep(RESTART_AFTER)
                    if not stopping:
                        procs[n] = subprocess.Popen(command)
        codes = [proc.wait() for proc in procs]
        return 0 if all(c in (0, -signal.SIGINT, -signal.SIGTERM) for c in codes) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reservation.close()
        shutil.rmtree(run_dir, ignore_errors=True)
