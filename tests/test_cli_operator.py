"""The operator's first hour with the CLI (issue 15): what it refuses, where it looks, what it says.

Each test runs the real command as a subprocess and checks its exit code and its message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_util import ENV, acli, acli_run, cli, gateway_process, stop, wait_for_line, write_config
from cryptography.fernet import Fernet

from gatewaytui import cli as climod
from gatewaytui import config as configmod
from gatewaytui.host import Gateway
from gatewaytui.model import GatewayError
from gatewaytui.ops.actions import run_action
from gatewaytui.pool.enroll import insert_row
from gatewaytui.store import db as dbmod
from gatewaytui.vault import CHECK_SETTING, Vault

UNSET = "GATEWAYTUI_TEST_NEVER_SET_KEY"


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------ upstream secrets


def test_admin_commands_never_need_upstream_secrets(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path, extra=f'[[accounts]]\nlabel = "env-1"\nprovider = "openai"\napi_key_env = "{UNSET}"\n'
    )
    env = {k: v for k, v in ENV.items() if k != UNSET}
    for args in (
        ("keys", "create", "--tenant", "acme", "--create"),
        ("keys", "list"),
        ("credits", "add", "--tenant", "acme", "--usd", "5"),
        ("tenants", "list"),
        ("accounts", "list"),
    ):
        done = cli(*args, cfg=cfg, env=env)
        assert done.returncode == 0, (args, done.stderr)
    # starting the gateway does need it: refused, naming the variable, the file and the line
    started = cli("--no-ui", cfg=cfg, env=env)
    assert started.returncode == 2, started.stderr
    assert f"gatewaytui.toml:22: [[accounts]] #2 api_key_env: environment variable {UNSET} is not set" in (
        started.stderr
    )
    no_traceback(started)


# ------------------------------------------------------------------ which database


def test_a_missing_database_is_an_error_not_a_new_empty_one(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for args in (("keys", "list"), ("tenants", "list"), ("credits", "add", "--tenant", "a", "--usd", "1")):
        done = cli(*args, cfg=cfg)
        assert done.returncode == 2 and f"no database at {tmp_path / 'state.db'}" in done.stderr, done.stderr
        assert "start the gateway once" in done.stderr
        no_traceback(done)
    assert not (tmp_path / "state.db").exists()
    # no config file at all (the demo's situation): the hint names --demo
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**ENV, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("GATEWAYTUI_CONFIG", None)
    done = cli("keys", "list", cfg=None, env=env, cwd=elsewhere)
    assert done.returncode == 2 and "no config file" in done.stderr and "--demo" in done.stderr, done.stderr
    assert not (elsewhere / "gatewaytui.db").exists()
    done = cli("--demo", "keys", "list", cfg=None, env=env, cwd=elsewhere)
    assert done.returncode == 2 and "the demo is not running" in done.stderr, done.stderr
    # the commands that initialise may create it
    made = cli("keys", "create", "--tenant", "first", "--create", cfg=cfg)
    assert made.returncode == 0 and "created tenant first" in made.stdout, made.stderr


def test_the_cli_reaches_the_running_demo_which_starts_fresh_unless_kept(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**ENV, "XDG_DATA_HOME": str(data)}
    env.pop("GATEWAYTUI_CONFIG", None)

    def demo_keys(*flags: str) -> list[str]:
        proc = gateway_process("--demo", "--no-ui", "--port", "0", *flags, env=env, cwd=elsewhere)
        try:
            db = wait_for_line(proc, r"demo: database (\S+)")
            assert Path(db) == data / "gatewaytui" / "demo.db"
            wait_for_line(proc, r"\(shown once\): (gw-\S+)")
            listed = cli("--demo", "keys", "list", cfg=None, env=env, cwd=elsewhere)
            assert listed.returncode == 0, listed.stderr
            second = cli("--demo", "--no-ui", "--port", "0", cfg=None, env=env, cwd=elsewhere)
            assert second.returncode == 2 and "another demo is running" in second.stderr, second.stderr
            # --demo after the command
            after = cli("tenants", "list", "--demo", cfg=None, env=env, cwd=elsewhere)
            assert after.returncode == 0 and after.stdout.startswith("demo\t"), after.stderr
        finally:
            assert stop(proc, signal.SIGINT) == 0
        assert not (elsewhere / "gatewaytui.db").exists()
        return [line for line in listed.stdout.splitlines() if "\tdemo\t" in line]

    assert len(demo_keys()) == 1
    assert len(demo_keys()) == 1  # fresh: the first run's key is gone
    assert len(demo_keys("--keep")) == 2  # kept: the second run's key and this run's


# ------------------------------------------------------------------ the secret key


def test_a_shell_with_another_secret_key_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    first = cli("accounts", "add", "--provider", "openai", "--api-key", "sk-first", "--label", "one", cfg=cfg)
    assert first.returncode == 0, first.stderr
    without = {k: v for k, v in ENV.items() if k != "GATEWAYTUI_SECRET_KEY"}
    refused = cli(
        "accounts", "add", "--provider", "openai", "--api-key", "sk-2", "--label", "two", cfg=cfg, env=without
    )
    assert refused.returncode == 2 and "cannot decrypt: wrong secret key" in refused.stderr, refused.stderr
    assert "$GATEWAYTUI_SECRET_KEY is unset" in refused.stderr
    assert not (tmp_path / "state.key").exists()  # no second key file
    other = {**ENV, "GATEWAYTUI_SECRET_KEY": "another passphrase"}
    refused = cli(
        "accounts", "add", "--provider", "openai", "--api-key", "sk-2", "--label", "two", cfg=cfg, env=other
    )
    assert refused.returncode == 2 and "cannot decrypt: wrong secret key" in refused.stderr, refused.stderr
    no_traceback(refused)
    listed = cli("accounts", "list", cfg=cfg, env=other)  # reading needs no key
    assert listed.returncode == 0 and "\ttwo\t" not in listed.stdout
    started = cli("--no-ui", cfg=cfg, env=other)  # the gateway refuses to start too
    assert started.returncode == 2 and "cannot decrypt: wrong secret key" in started.stderr, started.stderr
    no_traceback(started)


async def test_an_account_that_does_not_decrypt_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database from before the check value, holding one credential under another key: the gateway
    starts (the key opens the other credentials), and that account shows why it is out."""
    monkeypatch.setenv("GATEWAYTUI_SECRET_KEY", Fernet.generate_key().decode())
    cfg = configmod.load(write_config(tmp_path))
    db = cfg.database.path
    dbmod.migrate(db)
    conn = dbmod.connect(db)
    with dbmod.Transaction(conn):
        foreign = Vault(Fernet.generate_key()).encrypt("sk-under-another-key")
        insert_row(conn, label="stray", provider="openai", base_url=None, secret=foreign)
        own = Vault(os.environ["GATEWAYTUI_SECRET_KEY"].encode()).encrypt("sk-under-this-key")
        insert_row(conn, label="own", provider="openai", base_url=None, secret=own)
    conn.close()
    gw = Gateway(cfg)
    await gw.start()
    try:
        accounts = {a["label"]: a for a in gw.rt.pool.snapshot()}
        assert accounts["stray"]["health"] == "disabled"
        assert accounts["stray"]["disabled_reason"].startswith("cannot decrypt: wrong secret key")
        assert accounts["anthropic-1"]["health"] == accounts["own"]["health"] == "healthy"
    finally:
        await gw.stop()
    check = (
        sqlite3.connect(db).execute("SELECT value FROM settings WHERE key = ?", (CHECK_SETTING,)).fetchone()
    )
    assert check is not None  # written once, by the first start


# ------------------------------------------------------------------ typos


def test_typos_are_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, extra="[billing]\nmax_credit_usd = 50\n")
    assert cli("keys", "create", "--tenant", "acme", "--create", cfg=cfg).returncode == 0
    cases = [
        (("credits", "add", "--tenant", "ghost", "--usd", "5"), "no tenant named 'ghost'"),
        (("keys", "create", "--tenant", "ghost"), "no tenant named 'ghost'"),
        (("tenants", "tier", "--tenant", "ghost", "--none"), "no tenant named 'ghost'"),
        (("tenants", "cap", "--tenant", "ghost", "--usd", "1"), "no tenant named 'ghost'"),
        (("keys", "create", "--tenant", "acme", "--models", "gpt-99"), "no model 'gpt-99' on this gateway"),
        (("credits", "add", "--tenant", "acme", "--usd", "50.000001"), "is more than one credit may be ($50"),
    ]
    for args, says in cases:
        done = cli(*args, cfg=cfg)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
        no_traceback(done)
    assert "ghost" not in cli("tenants", "list", cfg=cfg).stdout
    assert cli("credits", "add", "--tenant", "acme", "--usd", "50", cfg=cfg).returncode == 0
    assert (
        cli("keys", "create", "--tenant", "acme", "--models", "auto,claude-sonnet-4-5", cfg=cfg).returncode
        == 0
    )
    made = cli("credits", "add", "--tenant", "ghost", "--usd", "1", "--create", cfg=cfg)
    assert made.returncode == 0 and "balance $1" in made.stdout, made.stderr
    (tmp_path / "d").mkdir()
    default = write_config(tmp_path / "d")  # the default ceiling
    assert cli("keys", "create", "--tenant", "acme", "--create", cfg=default).returncode == 0
    huge = cli("credits", "add", "--tenant", "acme", "--usd", "1000000000", cfg=default)
    assert huge.returncode == 2 and "more than one credit may be ($10000.000000" in huge.stderr, huge.stderr


async def test_the_console_and_admin_api_refuse_the_same_typos(gateway: Any) -> None:
    """One validator per action: the console actions (and the admin API behind them) share the CLI's rules."""
    await gateway.mint("acme")
    for name, args, kind, says in [
        ("credit", {"tenant": "ghost", "amount_micro": 1}, "not_found", "no tenant named 'ghost'"),
        ("mint_key", {"tenant": "ghost"}, "not_found", "no tenant named 'ghost'"),
        ("mint_key", {"tenant": "acme", "models": ["gpt-99"]}, "invalid_request", "no model 'gpt-99'"),
        ("credit", {"tenant": "acme", "amount_micro": 10**15}, "invalid_request", "more than one credit"),
        (
            "credit",
            {"tenant": "acme", "amount_micro": -(10**15), "kind": "adjustment"},
            "invalid_request",
            "more than one credit",
        ),
    ]:
        with pytest.raises(GatewayError) as info:
            await run_action(gateway.rt, name, args)
        assert (info.value.kind, says in info.value.message) == (kind, True), (name, args, info.value.message)
    made = await run_action(gateway.rt, "credit", {"tenant": "ghost", "amount_micro": 5, "create": True})
    assert made == {"balance_micro": 5}


# ------------------------------------------------------------------ attach


async def test_attach_checks_the_gateway_before_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: Any
) -> None:
    monkeypatch.setenv("GATEWAYTUI_TEST_ATTACH_TOKEN", "the-right-token")
    cfg = configmod.load(write_config(tmp_path, upstream.base_url))
    cfg.server.admin_token_env = "GATEWAYTUI_TEST_ATTACH_TOKEN"
    gw = Gateway(cfg)
    await gw.start()
    try:
        env = {**ENV, "ATTACH_TOKEN": "a-wrong-token"}
        wrong = await acli_run(None, "attach", gw.base_url, "--token-env", "ATTACH_TOKEN", env=env)
        assert wrong.returncode == 2, wrong.stderr
        assert f"{gw.base_url} refused the admin token in $ATTACH_TOKEN (401)" in wrong.stderr
        no_traceback(wrong)
        # the right token passes the check (the console itself is not opened here)
        await asyncio.to_thread(climod.check_console_api, gw.base_url, "the-right-token", "X")
    finally:
        await gw.stop()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**ENV, "ATTACH_TOKEN": "whatever"}
    gone = await acli_run(None, "attach", dead, "--token-env", "ATTACH_TOKEN", env=env)
    assert gone.returncode == 2 and f"cannot reach {dead}: ConnectError" in gone.stderr, gone.stderr
    no_traceback(gone)


# ------------------------------------------------------------------ within a second


async def test_cli_changes_reach_the_running_gateway_within_a_second(tmp_path: Path, upstream: Any) -> None:
    """README: "a running gateway picks the change up within a second" (a promise, so a bounded wait)."""
    cfg_path = write_config(tmp_path, upstream.base_url, extra='[[tiers]]\nname = "pro"\n')
    gw = Gateway(configmod.load(cfg_path))
    await gw.start()
    events = gw.rt.bus.subscribe()
    try:
        made = await acli(cfg_path, "keys", "create", "--tenant", "sub", "--create", "--kind", "subscription")
        secret = made.strip().splitlines()[-1]
        body = {"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(base_url=gw.base_url, headers={"x-api-key": secret}) as client:

            async def status() -> int:
                return (await client.post("/claudecode/v1/messages", json=body)).status_code

            async def reached(wanted: int) -> float:
                start = time.monotonic()
                while time.monotonic() - start < 1.0:
                    if await status() == wanted:
                        return time.monotonic() - start
                    await asyncio.sleep(0.02)
                raise AssertionError(f"the gateway did not answer {wanted} within a second of the change")

            await reached(402)  # a subscription key without a tier (the new key is seen within a second too)
            await acli(cfg_path, "tenants", "tier", "--tenant", "sub", "--tier", "pro")
            await reached(200)
            await acli(cfg_path, "tenants", "tier", "--tenant", "sub", "--none")
            await reached(402)
            key_id = (await acli(cfg_path, "keys", "list")).split("\t")[0]
            await acli(cfg_path, "keys", "revoke", key_id)
            await reached(401)

        # each change also reached the console's event log, as the same events the console's actions
        # publish; a change made in process is announced once, not again when the watcher reads it
        await run_action(gw.rt, "set_tenant_tpm", {"tenant": "sub", "tpm": 777})
        await acli(cfg_path, "tenants", "tpm", "--tenant", "sub", "888")
        seen: list[tuple[str, dict[str, Any]]] = []
        for _ in range(100):  # bounded: the watcher looks every 0.4 s
            seen += [(e.topic, e.data) for e in events.drain() if e.topic.startswith(("tenant.", "key."))]
            if ("tenant.tpm", 888) in [(t, d.get("tpm")) for t, d in seen]:
                break
            await asyncio.sleep(0.05)
        topics = [t for t, _ in seen]
        assert topics == [
            "tenant.created",
            "key.created",
            "tenant.subscription",
            "tenant.subscription",
            "key.revoked",
            "tenant.tpm",
            "tenant.tpm",
        ], seen
        assert seen[0][1]["name"] == "sub" and seen[1][1]["kind"] == "subscription"
        assert [d["tier"] for t, d in seen if t == "tenant.subscription"] == ["pro", None]
        assert seen[4][1]["key_id"] == key_id
        assert [d["tpm"] for t, d in seen if t == "tenant.tpm"] == [777, 888]
    finally:
        events.close()
        await gw.stop()


# ------------------------------------------------------------------ starting the gateway


def test_a_port_in_use_says_so_and_suggests_another(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = cli("--no-ui", "--port", str(port), cfg=cfg)
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr, done.stderr
    no_traceback(done)


def test_config_errors_are_all_reported_in_one_run(tmp_path: Path) -> None:
    cfg = tmp_path / "gatewaytui.toml"
    cfg.write_text('[server]\nport = "x"\nbogus = 1\n[[accounts]]\nlabel = "a"\nprovider = "antropic"\n')
    for args in (("--no-ui",), ("keys", "list")):
        done = cli(*args, cfg=cfg)
        assert done.returncode == 2, done.stderr
        assert "error: 3 problems in the configuration:" in done.stderr, done.stderr
        for line in (
            "gatewaytui.toml:2: [server] port: expected int",
            "gatewaytui.toml:3: [server] bogus: unknown key",
            "gatewaytui.toml:6: [[accounts]] #1 provider: unknown provider 'antropic'",
        ):
            assert line in done.stderr
        no_traceback(done)


# ------------------------------------------------------------------ the default model


@pytest.mark.parametrize(
    ("path", "body", "auth"),
    [
        ("/v1/messages", {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}, "x-api-key"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "authorization"),
        ("/v1/responses", {"input": "hi"}, "authorization"),
    ],
)
async def test_a_request_without_a_model_gets_the_default_model(
    make_gateway: Any, path: str, body: dict[str, Any], auth: str
) -> None:
    gw = await make_gateway(routing={"default_model": "claude-haiku-4-5"})
    key = await gw.mint()
    header = {auth: key if auth == "x-api-key" else f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gw.base_url, headers=header) as client:
        r = await client.post(path, json=body)
        assert r.status_code == 200, r.text
        r = await client.post(path, json={**body, "model": None})  # null: the same as absent
        assert r.status_code == 200, r.text
        empty = await client.post(path, json={**body, "model": ""})
        assert empty.status_code == 400 and "model: must not be empty" in empty.text
    await gw.flush()
    assert {f.model for f in gw.rt.traffic.recent} == {"claude-haiku-4-5"}


async def test_without_a_default_model_a_missing_model_is_a_clear_400(make_gateway: Any) -> None:
    gw = await make_gateway(models=[])
    key = await gw.mint()
    async with httpx.AsyncClient(base_url=gw.base_url) as client:
        r = await client.post(
            "/v1/messages",
            json={"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": key},
        )
        assert r.status_code == 400 and r.json()["type"] == "error", r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "no default model is configured" in r.json()["error"]["message"]
        r = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert r.status_code == 400 and "no default model is configured" in r.json()["error"]["message"], (
            r.text
        )


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the SQLite watcher (PostgreSQL: notifications)
async def test_a_change_read_beside_this_process_own_writes_is_announced_at_the_next_look(
    gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change made elsewhere (the CLI), read while this process submitted a write of its own (a request
    settling), is applied but announced only at the next look; that look must read it again although this
    process's own writes do not move the writer connection's data_version."""
    from gatewaytui.store import db as dbmod
    from gatewaytui.store import tenants as tenant_store

    rt = gateway.rt
    await gateway.mint("acme", usd=1)
    events = rt.bus.subscribe()
    read_state = rt._read_state
    busy = [True]  # the first look after the change reads while a write of this process is submitted

    def reading_beside_a_write(conn: Any) -> Any:
        state = read_state(conn)
        if busy:
            busy.clear()
            rt.writer.submit(lambda c: None)
        return state

    monkeypatch.setattr(rt, "_read_state", reading_beside_a_write)
    other = dbmod.connect(rt.db_path)  # the CLI's connection
    try:
        tenant_store.update(other, tenant_store.by_name(other, "acme")["id"], tier="pro")
    finally:
        other.close()
    topics: list[str] = []
    for _ in range(60):  # bounded: the watcher looks every 0.4 s
        topics += [e.topic for e in events.drain()]
        if "tenant.subscription" in topics:
            break
        await asyncio.sleep(0.05)
    assert not busy, "the watcher never read the change"
    assert "tenant.subscription" in topics, topics
