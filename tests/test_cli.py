"""The admin CLI and the headless gateway, exercised as real subprocesses."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path

import anthropic
import httpx
import pytest
from cli_util import ENV, acli, cli, poll_until, wait_for_line, write_config

from gatewaytui import config as configmod
from gatewaytui.host import Gateway


def test_keys_credits_accounts_round_trip(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    made = cli(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--create",
        "--kind",
        "subscription",
        "--label",
        "laptop",
        cfg=cfg,
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("gw-") and len(secret) > 30
    listed = cli("keys", "list", cfg=cfg)
    assert listed.returncode == 0
    line = listed.stdout.strip().splitlines()[0]
    key_id, tenant, kind, label, state = line.split("\t")[:5]
    assert (tenant, kind, label, state) == ("acme", "subscription", "laptop", "active") and key_id.startswith(
        "key_"
    )
    assert secret not in listed.stdout
    assert cli("keys", "revoke", key_id, cfg=cfg).returncode == 0
    assert "\trevoked\t" in cli("keys", "list", cfg=cfg).stdout
    credited = cli("credits", "add", "--tenant", "acme", "--usd", "0.000480", cfg=cfg)
    assert credited.returncode == 0 and "(480 micro-USD)" in credited.stdout
    added = cli(
        "accounts", "add", "--provider", "openai", "--api-key", "sk-secret-value", "--label", "oa", cfg=cfg
    )
    assert added.returncode == 0, added.stderr
    accounts = cli("accounts", "list", cfg=cfg).stdout
    assert "\toa\topenai\t" in accounts and "sk-secret-value" not in accounts
    assert b"sk-secret-value" not in (tmp_path / "state.db").read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ("credits", "add", "--tenant", "acme", "--usd", "0.0000001"),
        ("credits", "add", "--tenant", "acme", "--usd", "ten"),
        ("credits", "add", "--tenant", "acme", "--usd", "-5"),
        ("keys", "revoke", "key_doesnotexist"),
        ("keys", "create", "--tenant", "acme", "--kind", "gold"),
        ("accounts", "add", "--provider", "openai-compatible", "--api-key", "k"),
        ("accounts", "add", "--provider", "nope", "--api-key", "k"),
        ("tenants", "tier", "--tenant", "acme", "--tier", "gold"),
        ("tenants", "tier", "--tenant", "acme"),
        ("tenants", "cap", "--tenant", "acme", "--usd", "0"),
        ("tenants", "cap", "--tenant", "acme", "--usd", "lots"),
        ("tenants", "cap", "--tenant", "acme", "--usd", "1", "--model", "no-such-model"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message(tmp_path: Path, args: tuple[str, ...]) -> None:
    cfg = write_config(tmp_path)
    assert cli("keys", "create", "--tenant", "acme", "--create", cfg=cfg).returncode == 0
    result = cli(*args, cfg=cfg)
    assert result.returncode != 0
    assert "error" in result.stderr.lower() and "Traceback" not in result.stderr


async def test_cli_changes_reach_a_running_gateway(tmp_path: Path, upstream) -> None:
    cfg_path = write_config(tmp_path, upstream.base_url)
    gw = Gateway(configmod.load(cfg_path))
    await gw.start()
    try:

        def run(*args: str) -> Awaitable[str]:
            return acli(cfg_path, *args)

        secret = (await run("keys", "create", "--tenant", "live", "--create")).strip().splitlines()[-1]
        await run("credits", "add", "--tenant", "live", "--usd", "1")
        async with anthropic.AsyncAnthropic(api_key=secret, base_url=gw.base_url, max_retries=0) as client:

            async def call() -> int:
                try:
                    await client.messages.create(
                        model="auto", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
                    )
                    return 200
                except anthropic.APIStatusError as exc:
                    return exc.status_code

            assert await poll_until(call, 200) == 200  # credit written by another process is seen
            key_id = (await run("keys", "list")).split("\t")[0]
            await run("keys", "revoke", key_id)
            assert await poll_until(call, 401) == 401
    finally:
        await gw.stop()


async def test_cli_caps_and_tiers_reach_a_running_gateway(tmp_path: Path, upstream) -> None:
    cfg_path = write_config(tmp_path, upstream.base_url)
    cfg_path.write_text(
        cfg_path.read_text()
        + """
[[tiers]]
name = "pro"
monthly_usd = 20
"""
    )
    gw = Gateway(configmod.load(cfg_path))
    await gw.start()
    try:

        def run(*args: str) -> Awaitable[str]:
            return acli(cfg_path, *args)

        secret = (await run("keys", "create", "--tenant", "capped", "--create")).strip().splitlines()[-1]
        await run("credits", "add", "--tenant", "capped", "--usd", "5")
        async with anthropic.AsyncAnthropic(api_key=secret, base_url=gw.base_url, max_retries=0) as client:

            async def call() -> int:
                try:
                    await client.messages.create(
                        model="auto", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
                    )
                    return 200
                except anthropic.APIStatusError as exc:
                    return exc.status_code

            assert await poll_until(call, 200) == 200
            assert "cap on claude-sonnet-4-5 $0.000100" in await run(
                "tenants", "cap", "--tenant", "capped", "--usd", "0.0001", "--model", "auto"
            )
            assert await poll_until(call, 400) == 400  # the worst case of 64 output tokens is past the cap
            await run("tenants", "cap", "--tenant", "capped", "--clear", "--model", "claude-sonnet-4-5")
            assert await poll_until(call, 200) == 200
            await run("tenants", "cap", "--tenant", "capped", "--usd", "0.0001")
            assert await poll_until(call, 400) == 400  # the cap on every model
            await run("tenants", "cap", "--tenant", "capped", "--clear")
            assert await poll_until(call, 200) == 200
        assert "now on tier pro" in await run("tenants", "tier", "--tenant", "capped", "--tier", "pro")
        line = next(ln for ln in (await run("tenants", "list")).splitlines() if ln.startswith("capped\t"))
        assert line.split("\t")[1:3] == ["pro", "active"]
        assert "off its tier" in await run("tenants", "tier", "--tenant", "capped", "--none")
        line = next(ln for ln in (await run("tenants", "list")).splitlines() if ln.startswith("capped\t"))
        assert line.split("\t")[1] == "-"
    finally:
        await gw.stop()


def test_headless_gateway_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewaytui.cli", "--config", str(cfg), "--no-ui"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        url = wait_for_line(proc, r"listening on (http://\S+)")
        r = httpx.get(url + "/health", timeout=10)
        assert r.status_code == 200 and r.json()["accounts"][0]["label"] == "anthropic-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def test_demo_mode_prints_url_and_key_and_answers(tmp_path: Path) -> None:
    env = {**ENV, "XDG_DATA_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewaytui.cli", "--demo", "--no-ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        url = wait_for_line(proc, r"base URL (http://\S+)")
        key = wait_for_line(proc, r"\(shown once\): (gw-\S+)")
        with anthropic.Anthropic(api_key=key, base_url=url, max_retries=0) as client:
            msg = client.messages.create(
                model="auto", max_tokens=64, messages=[{"role": "user", "content": "hello demo"}]
            )
        assert msg.content[0].text.startswith("Hello from the fake upstream")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--label", "x" * 101), "add_account: argument 'label' must be at most 100 characters"),
        (("--rpm", "0"), "add_account: argument 'rpm' must be at least 1"),
        (("--base-url", "ftp://example"), "base_url must start with http:// or https://"),
    ],
)
def test_cli_refuses_what_the_console_and_admin_api_refuse(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    """One validator per action: the CLI checks accounts add with the spec the other front ends use."""
    result = cli(
        "accounts", "add", "--provider", "anthropic", "--api-key", "k", *args, cfg=write_config(tmp_path)
    )
    assert result.returncode == 2 and says in result.stderr, result.stderr
    listed = cli("accounts", "list", cfg=write_config(tmp_path))
    assert "anthropic" not in listed.stdout.replace("anthropic-1", "")


def test_announcements_are_one_write_per_line() -> None:
    """With ``--workers N`` the processes share stderr: a message and its newline written apart (print,
    unbuffered) let two workers' lines merge into one (seen in CI: "... listening on ...gatewaytui
    listening on ..."). Each announcement is one write of one whole line."""
    from gatewaytui import cli

    writes: list[str] = []

    class Stream:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    announce = cli._line_to(Stream())
    announce("gatewaytui listening on http://127.0.0.1:8080")
    announce("second")
    assert writes == ["gatewaytui listening on http://127.0.0.1:8080\n", "second\n"]
