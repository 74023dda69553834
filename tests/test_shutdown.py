"""SIGTERM drains: the headless gateway (a real subprocess, ``python -m gatewaytui.cli --no-ui``) stops taking
connections, lets in-flight streams finish within ``graceful_timeout``, cuts those that would not, and settles
every one of them before it exits.

``GatewayProcess`` (also used by ``test_crash``) runs that subprocess against the in-process fake upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import until

from gatewaytui.store import db as dbmod
from gatewaytui.store import keys as key_store
from gatewaytui.store import ledger as ledger_store
from gatewaytui.store import tenants as tenant_store

MODELS_TOML = """
[[models]]
name = "claude-sonnet-4-5"
provider = "anthropic"
input_per_mtok = 3.0
output_per_mtok = 15.0

[[models]]
name = "gpt-4o"
provider = "openai"
input_per_mtok = 2.5
output_per_mtok = 10.0

[[models]]
name = "gemini-2.5-flash"
provider = "gemini"
input_per_mtok = 0.3
output_per_mtok = 2.5
"""


class GatewayProcess:
    """``gatewaytui --no-ui`` in a subprocess, configured by a TOML file, pointed at ``upstream_url``."""

    def __init__(self, tmp: Path, upstream_url: str, **server: Any) -> None:
        self.tmp = tmp
        self.db = tmp / "gateway.db"
        self.config = tmp / "gatewaytui.toml"
        settings = {
            "host": '"127.0.0.1"',
            "port": 0,
            "keepalive_interval": 0.5,
            "graceful_timeout": 5.0,
            **server,
        }
        lines = [
            "[server]",
            *(f"{k} = {v}" for k, v in settings.items()),
            "",
            "[database]",
            'path = "gateway.db"',
            "flush_interval_ms = 20",
            "",
        ]
        for provider in ("anthropic", "openai", "gemini"):
            lines += [
                "[[accounts]]",
                f'label = "{provider}-1"',
                f'provider = "{provider}"',
                f'base_url = "{upstream_url}"',
                f'api_key = "key-{provider}-1"',
                "",
            ]
        self.config.write_text("\n".join(lines) + MODELS_TOML)
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    def seed(self, tenant: str = "acme", usd: int = 50) -> str:
        """Create the tenant with credit and a key, straight in the database (before the gateway runs)."""
        dbmod.migrate(self.db)
        conn = dbmod.connect(self.db)
        try:
            with dbmod.Transaction(conn):
                t, _ = tenant_store.get_or_create(conn, tenant)
                ledger_store.append(conn, t["id"], "topup", usd * 1_000_000, f"topup:{tenant}:seed")
                _, secret = key_store.mint(conn, t["id"])
        finally:
            conn.close()
        return secret

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GATEWAYTUI_LOG": "info"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gatewaytui.cli",
            "--config",
            str(self.config),
            "--no-ui",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(self.tmp),
        )
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            async for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.log.append(line)
                found = re.search(r"listening on (http://\S+)", line)
                if found and not listening.done():
                    listening.set_result(found.group(1))
            if not listening.done():
                listening.set_exception(
                    RuntimeError("gateway exited before listening:\n" + "\n".join(self.log[-30:]))
                )

        self._reader = asyncio.create_task(read())
        self.base_url = await asyncio.wait_for(listening, 30)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        conn = sqlite3.connect(str(self.db))
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()


@pytest.fixture
async def gateway_process(tmp_path: Path, upstream: Any) -> Any:
    made: list[GatewayProcess] = []

    def make(**server: Any) -> GatewayProcess:
        made.append(GatewayProcess(tmp_path, upstream.base_url, **server))
        return made[-1]

    yield make
    for gp in made:
        await gp.close()


def stream_body(path: str, text: str) -> dict[str, Any]:
    if path == "/v1/messages":
        return {
            "model": "claude-sonnet-4-5",
            "max_tokens": 500,
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        }
    if path == "/v1/chat/completions":
        return {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": text}]}
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


STREAM_PATHS = [
    "/v1/messages",
    "/v1/chat/completions",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    "/v1/messages",
    "/v1/chat/completions",
]


async def open_streams(
    base_url: str, key: str, text: str
) -> tuple[list[asyncio.Task[bytes]], list[bytearray]]:
    """Start one stream per path; returns once every one has received its first bytes."""
    received = [bytearray() for _ in STREAM_PATHS]
    started = [asyncio.Event() for _ in STREAM_PATHS]

    async def one(i: int, path: str) -> bytes:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            try:
                async with http.stream(
                    "POST",
                    path,
                    json=stream_body(path, text),
                    headers={"authorization": f"Bearer {key}", "x-goog-api-key": key},
                ) as r:
                    async for chunk in r.aiter_raw():
                        received[i].extend(chunk)
                        started[i].set()
            except httpx.HTTPError:
                pass  # cut by the server: what arrived is in received[i]
            finally:
                started[i].set()
        return bytes(received[i])

    tasks = [asyncio.create_task(one(i, p)) for i, p in enumerate(STREAM_PATHS)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 20)
    assert all(received), "every stream was under way before the signal"
    return tasks, received


def finished(raw: bytes) -> bool:
    return b"message_stop" in raw or b"[DONE]" in raw or b'"finishReason"' in raw


def assert_books_balance(gp: GatewayProcess) -> list[dict[str, Any]]:
    rows = gp.query("SELECT * FROM requests")
    ledger = gp.query("SELECT * FROM ledger")
    for row in rows:
        mine = sorted(e["kind"] for e in ledger if e["request_id"] == row["id"])
        assert mine in (["hold", "settle"], ["hold", "release"]), (row["id"], row["status"], mine)
        assert sum(e["amount_micro"] for e in ledger if e["request_id"] == row["id"]) == -row["cost_micro"]
    conn = dbmod.connect(gp.db)
    try:
        assert ledger_store.unsettled_holds(conn) == []
    finally:
        conn.close()
    topups = sum(e["amount_micro"] for e in ledger if e["kind"] == "topup")
    assert sum(e["amount_micro"] for e in ledger) == topups - sum(r["cost_micro"] for r in rows)
    return rows


async def test_sigterm_lets_inflight_streams_finish_and_settles_them(gateway_process, upstream) -> None:
    gp = gateway_process(graceful_timeout=20.0)
    key = gp.seed()
    await gp.start()
    tasks, _ = await open_streams(gp.base_url, key, "drain me [chunks:40] [pace:25]")
    gp.signal(signal.SIGTERM)
    # new connections are refused while the old ones drain
    async with httpx.AsyncClient(base_url=gp.base_url, timeout=5) as http:
        refused = False
        for _ in range(200):
            try:
                await http.get("/health")
            except httpx.TransportError:
                refused = True
                break
            await asyncio.sleep(0.01)
        assert refused, "the listening socket stays open after SIGTERM"
    bodies = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert await gp.wait() == 0
    assert all(finished(b) for b in bodies), "a stream that fits the grace period is not cut"
    rows = assert_books_balance(gp)
    assert len(rows) == len(STREAM_PATHS) and all(r["status"] == "ok" and r["cost_micro"] > 0 for r in rows)
    assert upstream.completed_streams == len(STREAM_PATHS) and upstream.active_streams == 0
    assert any("draining" in line for line in gp.log)


async def test_sigterm_cuts_streams_at_the_grace_deadline_and_settles_them(gateway_process, upstream) -> None:
    gp = gateway_process(graceful_timeout=0.5)
    key = gp.seed()
    await gp.start()
    tasks, _ = await open_streams(gp.base_url, key, "too long [chunks:400] [pace:25]")  # ~10 s each
    gp.signal(signal.SIGTERM)
    assert await gp.wait(timeout=15) == 0
    bodies = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert not any(finished(b) for b in bodies)
    rows = assert_books_balance(gp)
    assert len(rows) == len(STREAM_PATHS)
    for row in rows:
        assert row["status"] == "cancelled" and row["http_status"] == 499
        assert row["cost_micro"] > 0 and row["output_tokens"] > 0, (
            "billed for what was generated before the cut"
        )
    assert await until(lambda: upstream.active_streams == 0, timeout=10.0), (
        "the upstream streams were not closed"
    )
    assert upstream.cancelled_streams == len(STREAM_PATHS)


# SQLite only: a PostgreSQL store's watcher waits for notifications instead of looking at data_version
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_stopping_waits_for_a_change_look_in_progress(make_gateway: Any, monkeypatch: Any) -> None:
    """The watcher's look at the database runs on a worker thread; stopping must not close the connection
    under it (closing a SQLite connection another thread steps crashes the process)."""
    import threading

    from gatewaytui.runtime import Runtime

    looking, release, looked = threading.Event(), threading.Event(), threading.Event()
    outcome: list[BaseException | bool] = []
    real = Runtime._database_changed

    def slow_look(self: Any, *args: Any) -> bool:
        looking.set()
        release.wait(30)
        try:
            outcome.append(real(self, *args))
        except BaseException as exc:
            outcome.append(exc)
            raise
        finally:
            looked.set()
        return bool(outcome[-1])

    monkeypatch.setattr(Runtime, "_database_changed", slow_look)
    gw = await make_gateway()
    assert await asyncio.to_thread(looking.wait, 30)
    stopping = asyncio.ensure_future(gw.gateway.stop())
    while not (stopping.done() or gw.rt.readers._closed):  # stop has reached the readers (or finished)
        await asyncio.sleep(0.01)
    release.set()
    await stopping
    assert await asyncio.to_thread(looked.wait, 30)
    assert outcome and not isinstance(outcome[0], BaseException), outcome


def _listening_descriptor(port: int) -> int:
    """The number of this process's descriptor listening on ``port``."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with probe:
            try:
                if (
                    probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                    and probe.getsockname()[1] == port
                ):
                    return fd
            except OSError:
                continue
    raise AssertionError(f"no descriptor listens on port {port}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the listening descriptor in /proc")
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_stopping_closes_the_listening_socket_once(make_gateway: Any, monkeypatch: Any) -> None:
    """Hypercorn closes the listening socket when it stops serving; the gateway must not close that descriptor
    number again. Another thread may have been given the number meanwhile (the writer's, a reader's or the
    test cluster's PostgreSQL connection): closing it under that connection sent its statements down a
    socket the next connection reused, into another session (a SELECT answered by another's COMMIT)."""
    import fcntl

    gw = await make_gateway()
    listening = _listening_descriptor(gw.gateway.port)
    reused: list[tuple[int, int]] = []
    real_close = socket.socket.close

    def close_then_reuse(sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd != listening or reused:
            real_close(sock)
            return
        r, w = os.pipe()
        real_close(sock)  # the number is free: another file takes it at once
        reused.append((fcntl.fcntl(r, fcntl.F_DUPFD, fd), os.fstat(r).st_ino))
        os.close(r)
        os.close(w)

    monkeypatch.setattr(socket.socket, "close", close_then_reuse)
    await gw.gateway.stop()
    monkeypatch.undo()
    assert reused, "the listening socket was not closed"
    fd, inode = reused[0]
    if fd != listening:
        pytest.skip(f"another thread took descriptor {listening} first")
    try:
        still = os.fstat(fd).st_ino
    except OSError as exc:
        raise AssertionError(f"stopping closed descriptor {fd}, no longer the gateway's ({exc})") from None
    os.close(fd)
    assert still == inode
