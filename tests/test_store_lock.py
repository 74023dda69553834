"""One gateway server per SQLite file: a second server process refuses to start and says what to use
instead; the admin CLI keeps working beside the running server."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cli_util import ENV, cli, wait_for_line, write_config

from gatewaytui.store.lock import ServerLock, StoreLocked


def serve(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gatewaytui.cli", "--config", str(cfg), "--no-ui"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def test_second_server_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    first = serve(cfg)
    try:
        url = wait_for_line(first, r"listening on (http://\S+)")
        second = cli("--no-ui", cfg=cfg)  # runs to its end
        assert second.returncode != 0
        assert f"pid {first.pid}" in second.stderr
        assert "already serving the SQLite database" in second.stderr
        assert "PostgreSQL" in second.stderr and "postgresql://" in second.stderr
        # the admin CLI works beside the running server, and the server sees what it wrote
        made = cli("keys", "create", "--tenant", "acme", "--create", cfg=cfg)
        assert made.returncode == 0, made.stderr
        assert cli("credits", "add", "--tenant", "acme", "--usd", "1", cfg=cfg).returncode == 0
        assert httpx.get(url + "/health", timeout=10).status_code == 200
    finally:
        first.send_signal(signal.SIGTERM)
        code = first.wait(timeout=30)
    assert code == 0
    # the lock ends with the server: the next one starts
    third = serve(cfg)
    try:
        wait_for_line(third, r"listening on (http://\S+)")
    finally:
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=30) == 0


def test_lock_is_dropped_by_the_kernel_when_its_holder_dies(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from gatewaytui.store.lock import ServerLock; "
            f"ServerLock({str(db)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLocked, match=f"pid {holder.pid}"):
            ServerLock(db).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    lock = ServerLock(db)
    lock.acquire()  # a lock file left behind by a killed server does not block the next one
    lock.release()


def test_an_unreachable_postgresql_store_is_a_clear_start_failure(tmp_path: Path) -> None:
    from pgcluster import free_port

    cfg = write_config(tmp_path)
    text = cfg.read_text().replace('path = "state.db"', f'url = "postgresql://gw@127.0.0.1:{free_port()}/gw"')
    cfg.write_text(text)
    done = cli("--no-ui", cfg=cfg)
    assert done.returncode != 0
    assert "error: the gateway's store is unreachable" in done.stderr and "Traceback" not in done.stderr
    listed = cli("keys", "list", cfg=cfg)  # the admin CLI says the same
    assert (
        listed.returncode != 0
        and "store is unreachable" in listed.stderr
        and "Traceback" not in listed.stderr
    )
