"""A throwaway PostgreSQL cluster for the tests: initdb in a temp dir, postgres on a free loopback port.

One cluster per test session (per xdist worker); a migrated template database, from which each test gets
its own database (``CREATE DATABASE ... TEMPLATE``). A copy costs a tenth of a second or more on a busy
machine, so the next test's database is copied on a thread of the cluster's own while the current test
runs, and a test's database is dropped there too. Run as root, the server runs as the ``postgres`` user
(PostgreSQL refuses root). Binaries: ``pg_config --bindir``, else the Debian package's
``/usr/lib/postgresql/<n>/bin``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEBIAN_BINDIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def bindir() -> Path | None:
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += DEBIAN_BINDIRS
    for c in candidates:
        if (c / "initdb").exists() and (c / "postgres").exists():
            return c
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    TEMPLATE = "gatewaytui_template"

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin = bin_dir
        self.data = root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.as_postgres = os.geteuid() == 0
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="pgcluster")  # spare copies and drops
        self._pending: list[Future[Any]] = []
        self._spare: Future[str] | None = None  # the next test's database, being copied

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.as_postgres else list(args)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            self._cmd(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ),
            check=True,
            capture_output=True,
        )
        self.launch()
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.TEMPLATE}")
        from gatewaytui.store import db as dbmod

        dbmod.migrate(self.url(self.TEMPLATE))
        self._spare = self._submit(self._copy)

    def launch(self) -> None:
        """Start (or restart) the server on its port and wait until it accepts connections."""
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the server's own log, open for its life
        self.proc = subprocess.Popen(
            self._cmd(
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=400",
                "-c",
                "shared_buffers=32MB",
            ),
            stdout=log,
            stderr=log,
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError((self.root / "postgres.log").read_text()[-2000:]) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, as when the server goes down. Returns once the
        postmaster itself is gone (a busy server can take a while: after 10 s it gets SIGQUIT, the immediate
        shutdown, then SIGKILL), so a following ``launch`` never meets its lock file. A copy or a drop in
        progress on the cluster's thread finishes first."""
        if self.proc is None:
            return
        self._settle()
        try:  # the postmaster itself (under runuser, self.proc is runuser, which does not forward it)
            pid: int | None = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig) if pid is not None else self.proc.send_signal(sig)
            except OSError:
                pass
            if self._gone(pid, timeout=10):
                break
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _gone(self, pid: int | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid is None or self.proc is None or pid == self.proc.pid:  # our own child: poll reaps it
                if self.proc is None or self.proc.poll() is not None:
                    return True
            else:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
                except PermissionError:
                    pass
            time.sleep(0.05)
        return False

    def _submit(self, job: Callable[..., T], *args: object) -> Future[T]:
        future = self._jobs.submit(job, *args)
        self._pending = [f for f in self._pending if not f.done()] + [future]
        return future

    def _settle(self) -> None:
        """Wait for the copies and drops on the cluster's thread (their errors are the caller's to meet)."""
        for future in self._pending:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - a spare that failed is made again when asked for
                pass
        self._pending.clear()

    def drop_database(self, url: str) -> None:
        """Drop a test's database, on the cluster's thread (the next test need not wait for it)."""
        self._submit(self._drop, url.rsplit("/", 1)[1])

    def _drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def new_database(self) -> str:
        """A fresh, migrated database (a copy of the template); its URL. The copy made ahead is taken, and
        the next one started; when that copy failed (the server was down), one is made now."""
        spare, self._spare = self._spare, self._submit(self._copy)
        try:
            if spare is not None:
                return spare.result()
        except Exception:  # noqa: BLE001 - made again below
            pass
        return self._copy()

    def _copy(self) -> str:
        import psycopg

        name = "gw_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+; before, the only way) copies the template's files, where the
            # default WAL_LOG logs every block: faster for a small template, fsync being off
            strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {self.TEMPLATE}{strategy}")
        return self.url(name)
