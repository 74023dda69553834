"""Running the ``gatewaytui`` command as a real subprocess, for the CLI tests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# a passphrase (the scrypt road); the suite's other tests use a Fernet key (see conftest)
ENV = {**os.environ, "GATEWAYTUI_SECRET_KEY": "cli-test-secret"}
COMMAND = [sys.executable, "-m", "gatewaytui.cli"]


def cli(
    *args: str, cfg: Path | None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``gatewaytui [--config cfg] args...``, waited for."""
    config = ["--config", str(cfg)] if cfg is not None else []
    return subprocess.run(
        [*COMMAND, *config, *args],
        capture_output=True,
        text=True,
        env=ENV if env is None else env,
        cwd=cwd,
        timeout=60,
    )


async def acli_run(
    cfg: Path | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess, without blocking the event loop (a gateway may run on it)."""
    config = ["--config", str(cfg)] if cfg is not None else []
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *config,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV if env is None else env,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


async def acli(cfg_path: Path, *args: str) -> str:
    """The CLI's stdout; it must succeed."""
    done = await acli_run(cfg_path, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def write_config(tmp_path: Path, upstream_url: str = "http://127.0.0.1:9", extra: str = "") -> Path:
    cfg = tmp_path / "gatewaytui.toml"
    cfg.write_text(f"""
[server]
host = "127.0.0.1"
port = 0
[database]
path = "state.db"
flush_interval_ms = 5
[[accounts]]
label = "anthropic-1"
provider = "anthropic"
base_url = "{upstream_url}"
api_key = "key-anthropic-1"
[[models]]
name = "claude-sonnet-4-5"
provider = "anthropic"
aliases = ["auto"]
input_per_mtok = 3.0
output_per_mtok = 15.0
{extra}""")
    return cfg


async def poll_until(fn: Callable[[], Awaitable[Any]], wanted: Any, attempts: int = 50) -> Any:
    result = None
    for _ in range(attempts):
        result = await fn()
        if result == wanted:
            return result
        await asyncio.sleep(0.1)
    return result


def wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 30) -> str:
    """The first group of the first stderr line matching ``pattern``."""
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise AssertionError(f"no line matching {pattern!r}; got: {''.join(seen)[-2000:]}")


def gateway_process(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """``gatewaytui args...`` running in the background (stderr readable line by line)."""
    return subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV if env is None else env,
        cwd=cwd,
    )


def stop(proc: subprocess.Popen[str], sig: int = 2) -> int:
    os.kill(proc.pid, sig)
    return proc.wait(timeout=30)
