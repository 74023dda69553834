"""Where key budgets and token rates are set (issue 17): the CLI (as a subprocess), the console/admin action
``mint_key`` and ``set_tenant_tpm``, ``POST /tenant/keys`` (bounded by the calling key) and the config's
``[limits] tenant_tpm_default``. One validator (the ``mint_key`` spec's limit fields) whoever asks."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_util import acli, cli, poll_until, write_config
from conftest import GatewayHandle

from gatewaytui import config as configmod
from gatewaytui.host import Gateway
from gatewaytui.ops import tenants as tenant_ops
from gatewaytui.store import keys as key_store

ADMIN_ENV = "GATEWAYTUI_TEST_ADMIN_TOKEN"
TOKEN = "admin-token-for-the-limit-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def ask(max_tokens: int = 50, text: str = "hi") -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }


async def send(h: httpx.AsyncClient, secret: str, body: dict[str, Any]) -> httpx.Response:
    return await h.post("/v1/messages", json=body, headers={"x-api-key": secret})


# ------------------------------------------------------------------------------------------------ the CLI


async def test_cli_budgets_and_token_rates_reach_a_running_gateway(tmp_path: Path, upstream: Any) -> None:
    cfg_path = write_config(tmp_path, upstream.base_url)
    gw = Gateway(configmod.load(cfg_path))
    await gw.start()
    try:
        made = await acli(
            cfg_path,
            *(
                "keys",
                "create",
                "--tenant",
                "acme",
                "--create",
                "--budget-usd",
                "1",
                "--budget-period",
                "day",
            ),
            *("--tpm", "5000"),
        )
        assert "budget $1.000000 per day, 5,000 tokens/min" in made
        secret = made.strip().splitlines()[-1]
        await acli(cfg_path, "credits", "add", "--tenant", "acme", "--usd", "5")
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:

            async def status(max_tokens: int = 20) -> int:
                return (await send(h, secret, ask(max_tokens))).status_code

            assert await poll_until(status, 200) == 200
            listed = (await h.get("/tenant/keys", headers={"x-api-key": secret})).json()["data"][0]
            assert (listed["budget_usd"], listed["budget_period"], listed["tpm"]) == (
                "$1.000000",
                "day",
                5000,
            )
            assert await status(100_000) == 402, "its worst case alone is above the whole budget"
            # the tenant's own token rate, from the CLI: 300 tokens a minute is less than one worst case
            assert "at most 300 tokens per minute" in await acli(
                cfg_path, "tenants", "tpm", "--tenant", "acme", "300"
            )
            line = next(
                ln for ln in (await acli(cfg_path, "tenants", "list")).splitlines() if ln.startswith("acme\t")
            )
            assert line.endswith("\t300 tpm")
            assert await poll_until(lambda: status(250), 400) == 400
            r = await send(h, secret, ask(250))
            assert "above this tenant's limit of 300 tokens per minute" in r.json()["error"]["message"]
            assert "token rate cleared" in await acli(
                cfg_path, "tenants", "tpm", "--tenant", "acme", "--clear"
            )
            assert await poll_until(status, 200) == 200
    finally:
        await gw.stop()


@pytest.mark.parametrize(
    "args,says",
    [
        (("keys", "create", "--tenant", "a", "--create", "--budget-usd", "five"), "--budget-usd"),
        (
            ("keys", "create", "--tenant", "a", "--create", "--budget-usd", "0"),
            "budget_micro' must be at least 1",
        ),
        (
            ("keys", "create", "--tenant", "a", "--create", "--budget-usd", "1", "--budget-period", "week"),
            "budget period",
        ),
        (
            ("keys", "create", "--tenant", "a", "--create", "--budget-usd", "1", "--budget-period", "0h"),
            "budget period",
        ),
        (
            ("keys", "create", "--tenant", "a", "--create", "--budget-period", "day"),
            "--budget-period needs --budget-usd",
        ),
        (("keys", "create", "--tenant", "a", "--create", "--tpm", "0"), "'tpm' must be at least 1"),
        (("tenants", "tpm", "--tenant", "a", "0"), "'tpm' must be at least 1"),
        (("tenants", "tpm", "--tenant", "a"), "one of the arguments"),
        (("tenants", "tpm", "--tenant", "nobody", "1000"), "no tenant named 'nobody'"),
    ],
)
def test_cli_refuses_bad_limits(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    cfg = write_config(tmp_path)
    assert cli("credits", "add", "--tenant", "a", "--usd", "1", "--create", cfg=cfg).returncode == 0
    result = cli(*args, cfg=cfg)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert cli("keys", "list", cfg=cfg).stdout == "", "nothing was minted"


def test_cli_rolling_budget_is_stored(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    made = cli(
        "keys",
        "create",
        "--tenant",
        "a",
        "--create",
        "--budget-usd",
        "2.5",
        "--budget-period",
        "24h",
        cfg=cfg,
    )
    assert made.returncode == 0, made.stderr
    assert "budget $2.500000 per 24h" in made.stdout

    row = (
        sqlite3.connect(tmp_path / "state.db")
        .execute("SELECT budget_micro, budget_period, tpm FROM api_keys")
        .fetchone()
    )
    assert row == (2_500_000, "24h", None)


# ------------------------------------------------------------------------------------------- HTTP: admin


@pytest.fixture
async def admin_gw(make_gateway: Any, monkeypatch: Any) -> GatewayHandle:
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    return await make_gateway(server={"admin_token_env": ADMIN_ENV})


@pytest.fixture
async def http(admin_gw: GatewayHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admin_gw.base_url, timeout=30) as h:
        yield h


async def test_admin_mints_keys_with_budgets_and_sets_tenant_rates(
    admin_gw: GatewayHandle, http: httpx.AsyncClient
) -> None:
    r = await http.post(
        "/admin/console/mint_key",
        headers=AUTH,
        json={
            "tenant": "globex",
            "create": True,
            "budget_micro": 2_000_000,
            "budget_period": "month",
            "tpm": 9000,
        },
    )
    assert r.status_code == 200, r.text
    key = r.json()["result"]["key"]
    assert (key["budget_micro"], key["budget_period"], key["tpm"]) == (2_000_000, "month", 9000)
    r = await http.post(
        "/admin/console/set_tenant_tpm", headers=AUTH, json={"tenant": "globex", "tpm": 50_000}
    )
    assert r.status_code == 200 and r.json()["result"]["tpm"] == 50_000
    snap = (await http.get("/admin/snapshot", headers=AUTH)).json()
    globex = next(t for t in snap["tenants"] if t["name"] == "globex")
    assert globex["tpm"] == 50_000 and globex["tokens_last_minute"] == 0
    shown = globex["keys"][0]
    assert (shown["budget_usd"], shown["spent_usd"], shown["remaining_usd"]) == (
        "$2.000000",
        "$0.000000",
        "$2.000000",
    )
    for bad, says in [
        ({"budget_micro": 5, "budget_period": "fortnight"}, "budget period"),
        ({"budget_period": "day"}, "needs budget_micro"),
        ({"budget_micro": "5"}, "must be int"),
        ({"tpm": 0}, "at least 1"),
    ]:
        r = await http.post("/admin/console/mint_key", headers=AUTH, json={"tenant": "globex", **bad})
        assert r.status_code == 400 and says in r.json()["error"]["message"], (bad, r.text)
    r = await http.post("/admin/console/set_tenant_tpm", headers=AUTH, json={"tenant": "globex", "tpm": -1})
    assert r.status_code == 400


# ------------------------------------------------------------------------------------------ HTTP: tenant


async def test_a_tenant_sets_limits_on_its_own_keys_within_its_callers(
    admin_gw: GatewayHandle, http: httpx.AsyncClient
) -> None:
    free = await admin_gw.mint("acme")
    r = await http.post(
        "/tenant/keys",
        headers={"x-api-key": free},
        json={"label": "ci", "budget_micro": 1_000_000, "budget_period": "24h", "tpm": 2000},
    )
    assert r.status_code == 201, r.text
    child = r.json()["key"]
    assert (child["budget_micro"], child["budget_period"], child["tpm"]) == (1_000_000, "24h", 2000)
    listed = (await http.get(f"/tenant/keys/{child['id']}", headers={"x-api-key": free})).json()
    assert (listed["budget_usd"], listed["remaining_usd"], listed["tpm"]) == ("$1.000000", "$1.000000", 2000)

    _, bounded = await tenant_ops.mint_key(
        admin_gw.rt, "acme", budget_micro=500_000, budget_period="day", tpm=1000
    )
    refused = [
        ({"tpm": 1001}, 403, "tpm: at most 1000"),
        ({"budget_micro": 500_001}, 403, "budget_micro: at most 500000"),
        ({"budget_micro": 100, "budget_period": "month"}, 403, "budget_period: must be day"),
        ({"budget_micro": 100, "budget_period": "year"}, 400, "budget period"),
        ({"budget_period": "day"}, 400, "needs budget_micro"),
    ]
    for body, status, says in refused:
        r = await http.post("/tenant/keys", headers={"x-api-key": bounded}, json=body)
        assert r.status_code == status and says in r.json()["error"]["message"], (body, r.text)
    r = await http.post("/tenant/keys", headers={"x-api-key": bounded}, json={"label": "inherits"})
    inherited = r.json()["key"]
    assert (inherited["budget_micro"], inherited["budget_period"], inherited["tpm"]) == (500_000, "day", 1000)
    r = await http.post(
        "/tenant/keys",
        headers={"x-api-key": bounded},
        json={"budget_micro": 1000, "budget_period": "day", "tpm": 10},
    )
    smaller = r.json()["key"]
    assert (smaller["budget_micro"], smaller["tpm"]) == (1000, 10)
    rows = await admin_gw.rt.read(lambda c: key_store.listing(c))
    assert len(rows) == 5, "nothing refused was minted"


# ------------------------------------------------------------------------------------------------ config


async def test_the_configured_tenant_rate_applies_to_tenants_without_their_own(make_gateway: Any) -> None:
    gw = await make_gateway(limits={"tenant_tpm_default": 300})
    secret = await gw.mint("acme")
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as h:
        r = await send(h, secret, ask(500))
        assert r.status_code == 400 and "this tenant's limit of 300" in r.json()["error"]["message"]
        await tenant_ops.set_tenant_tpm(gw.rt, "acme", 100_000)  # its own limit replaces the default
        assert (await send(h, secret, ask(500))).status_code == 200


def test_limits_config_is_checked() -> None:
    assert configmod.parse({"limits": {"tenant_tpm_default": 5}}).limits.tenant_tpm_default == 5
    with pytest.raises(configmod.ConfigError, match="must be >= 0"):
        configmod.parse({"limits": {"tenant_tpm_default": -1}})
    with pytest.raises(configmod.ConfigError, match="unknown key"):
        configmod.parse({"limits": {"tenant_tpm": 5}})
