"""Model fallbacks (issue 17, item 3): when no account of a model can serve a request before its first byte,
the request is re-encoded for the next model of its chain, served there and billed at that model's price;
never once content reached the client; a key's allow-list and its credit bound the chain.

A real gateway under Hypercorn and the fake upstream; one Anthropic account ("a") and one OpenAI account
("o"), with claude-sonnet-4-5 falling back to gpt-4o.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from gatewaytui import config as configmod
from gatewaytui.billing import pricing
from gatewaytui.catalog import Catalog
from gatewaytui.store import settings as settings_store

ADMIN_ENV = "GATEWAYTUI_TEST_ADMIN_TOKEN"
TOKEN = "admin-token-for-the-fallback-tests"
AUTH = {"authorization": f"Bearer {TOKEN}"}
USAGE = "[usage in=100 out=20]"
CHAIN = [{"model": "claude-sonnet-4-5", "then": ["gpt-4o"]}]


def accounts(base_url: str, **a: Any) -> list[dict[str, Any]]:
    return [
        {"label": "a", "provider": "anthropic", "base_url": base_url, "api_key": "key-a", **a},
        {"label": "o", "provider": "openai", "base_url": base_url, "api_key": "key-o"},
    ]


def seen(upstream: Any) -> list[tuple[str, str | None]]:
    """(path, credential) of every chat request the upstream received."""
    out = []
    for r in upstream.requests:
        cred = r.headers.get("x-api-key") or (r.headers.get("authorization") or "").removeprefix("Bearer ")
        out.append((r.path, cred or None))
    return out


@pytest.fixture
async def gw(make_gateway: Any, upstream: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    return await make_gateway(
        accounts=accounts(upstream.base_url), fallbacks=CHAIN, server={"admin_token_env": ADMIN_ENV}
    )


def client(gw: Any, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key, max_retries=0)


async def row_of(gw: Any, request_id: str) -> dict[str, Any]:
    await gw.flush()
    row = await gw.rt.read(
        lambda c: c.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    )
    return dict(row)


def price_of(gw: Any, model: str) -> pricing.Price:
    return pricing.Price.of(gw.rt.catalog.models[model])


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("status", [500, 429])
async def test_a_model_whose_only_account_fails_is_served_by_its_fallback(
    gw: Any, upstream: Any, stream: bool, status: int
) -> None:
    key = await gw.mint()
    upstream.fail_key("key-a", status=status)
    c = client(gw, key)
    prompt = [{"role": "user", "content": f"Hello there {USAGE}"}]
    try:
        if stream:
            async with c.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=prompt) as s:
                msg = await s.get_final_message()
            request_id = s.response.headers["request-id"]
        else:
            raw = await c.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=50, messages=prompt
            )
            msg, request_id = await raw.parse(), raw.headers["request-id"]
            assert msg.model == "gpt-4o", "the answer names the model that served it"
    finally:
        await c.close()
    assert msg.content[0].text.startswith("Hello from the fake upstream!")
    assert seen(upstream) == [("/v1/messages", "key-a"), ("/v1/chat/completions", "key-o")]
    row = await row_of(gw, request_id)
    assert (row["model"], row["requested_model"], row["status"]) == ("gpt-4o", "claude-sonnet-4-5", "ok")
    assert (row["input_tokens"], row["output_tokens"]) == (100, 20)
    fallback, asked = price_of(gw, "gpt-4o"), price_of(gw, "claude-sonnet-4-5")
    expected = -(-(100 * fallback.input + 20 * fallback.output) // 1_000_000)
    assert row["cost_micro"] == expected == 450, "billed at the fallback's price"
    assert expected != -(-(100 * asked.input + 20 * asked.output) // 1_000_000)
    balance = gw.rt.wallet.balance[gw.rt.keyring.authenticate(key)["tenant_id"]]
    assert balance == 10_000_000 - expected
    detail = (
        await httpx.AsyncClient(base_url=gw.base_url).get(
            f"/admin/console/requests/{request_id}", headers=AUTH
        )
    ).json()
    assert (detail["model"], detail["requested_model"]) == ("gpt-4o", "claude-sonnet-4-5")


async def test_a_disabled_account_is_not_tried_and_the_fallback_serves(
    make_gateway: Any, upstream: Any
) -> None:
    gw = await make_gateway(accounts=accounts(upstream.base_url, enabled=False), fallbacks=CHAIN)
    key = await gw.mint()
    c = client(gw, key)
    try:
        msg = await c.messages.create(
            model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        await c.close()
    assert msg.model == "gpt-4o"
    assert seen(upstream) == [("/v1/chat/completions", "key-o")]


async def test_no_fallback_once_content_reached_the_client(gw: Any, upstream: Any) -> None:
    key = await gw.mint()
    prompt = [{"role": "user", "content": "Tell me a long story please [cut:8]"}]
    received: list[str] = []
    c = client(gw, key)
    try:
        with pytest.raises(anthropic.APIError):
            async with c.messages.stream(model="claude-sonnet-4-5", max_tokens=200, messages=prompt) as s:
                async for text in s.text_stream:
                    received.append(text)
    finally:
        await c.close()
    assert received, "content reached the client before the upstream died"
    assert seen(upstream) == [("/v1/messages", "key-a")], "no other model was asked"


async def test_without_a_fallback_the_client_gets_the_outage(gw: Any, upstream: Any) -> None:
    """The chain is the requested model's own; when its fallback fails too, the 503 says both failed."""
    key = await gw.mint()
    upstream.fail_key("*", status=500)
    async with httpx.AsyncClient(base_url=gw.base_url) as h:
        r = await h.post(
            "/v1/messages",
            headers={"x-api-key": key},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert r.status_code == 503, r.text
    assert "fallbacks could not serve it either (gpt-4o)" in r.json()["error"]["message"]
    assert [p for p, _ in seen(upstream)] == ["/v1/messages", "/v1/chat/completions"]
    tenant = gw.rt.keyring.authenticate(key)["tenant_id"]
    assert gw.rt.wallet.held[tenant] == 0 and gw.rt.wallet.balance[tenant] == 10_000_000


@pytest.mark.parametrize(
    "models,served", [(["claude-sonnet-4-5"], False), (["claude-sonnet-4-5", "gpt-4o"], True)]
)
async def test_a_fallback_must_be_on_the_keys_allow_list(
    gw: Any, upstream: Any, models: list[str], served: bool
) -> None:
    key = await gw.mint(models=models)
    upstream.fail_key("key-a", status=500)
    async with httpx.AsyncClient(base_url=gw.base_url) as h:
        r = await h.post(
            "/v1/messages",
            headers={"x-api-key": key},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    if served:
        assert r.status_code == 200 and r.json()["model"] == "gpt-4o"
    else:
        assert r.status_code == 503, r.text
        assert [p for p, _ in seen(upstream)] == ["/v1/messages"], "gpt-4o is not this key's to use"


async def test_the_hold_grows_to_the_fallbacks_worst_case_or_the_fallback_is_skipped(
    make_gateway: Any, upstream: Any
) -> None:
    """claude-haiku-4-5 ($1/$5) falls back to gpt-4o ($2.5/$10): re-admitted at gpt-4o's worst case, so
    the admitted worst case never exceeds the balance; with credit for haiku's worst case only, skipped."""
    gw = await make_gateway(
        accounts=accounts(upstream.base_url), fallbacks=[{"model": "claude-haiku-4-5", "then": ["gpt-4o"]}]
    )
    upstream.fail_key("key-a", status=500)
    body = {"model": "claude-haiku-4-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
    rich = await gw.mint("rich")
    async with httpx.AsyncClient(base_url=gw.base_url) as h:
        r = await h.post("/v1/messages", headers={"x-api-key": rich}, json=body)
        assert r.status_code == 200, r.text
        row = await row_of(gw, r.headers["request-id"])
        assert row["model"] == "gpt-4o"
        assert 10_000 < row["hold_micro"] < 11_000, "held at gpt-4o's prices: 1000 tokens out at $10/M"
        # credit for the haiku worst case and not for gpt-4o's: the fallback does not fit, 503
        poor = await gw.mint("poor", usd=0.006)
        upstream.requests.clear()
        r = await h.post("/v1/messages", headers={"x-api-key": poor}, json=body)
    assert r.status_code == 503, r.text
    assert "/v1/chat/completions" not in [p for p, _ in seen(upstream)], "gpt-4o's worst case did not fit"
    tenant = gw.rt.keyring.authenticate(poor)["tenant_id"]
    assert gw.rt.wallet.held[tenant] == 0 and gw.rt.wallet.balance[tenant] == 6_000
    await gw.flush()
    if getattr(gw.rt, "shared", False):  # PostgreSQL: the store's holds were resized and ended alike
        await gw.rt.wallet.refresh()
        assert not any(gw.rt.wallet.cluster_held.values()), gw.rt.wallet.cluster_held


async def test_fallbacks_are_edited_at_runtime_and_persist(
    make_gateway: Any, upstream: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    monkeypatch.setenv(ADMIN_ENV, TOKEN)
    db = str(tmp_path / "fb.db")
    gw = await make_gateway(
        accounts=accounts(upstream.base_url), db=db, server={"admin_token_env": ADMIN_ENV}
    )
    async with httpx.AsyncClient(base_url=gw.base_url, headers=AUTH) as h:
        r = await h.post("/settings/routing", json={"fallbacks": {"auto": ["gpt-4o", "gemini-2.5-flash"]}})
        assert r.status_code == 200, r.text
        assert r.json()["fallbacks"] == {"claude-sonnet-4-5": ["gpt-4o", "gemini-2.5-flash"]}
        bad = [
            ({"model": "nope", "then": ["gpt-4o"]}, 404),
            ({"model": "gpt-4o", "then": ["gpt-4o"]}, 400),
            ({"model": "gpt-4o", "then": ["no-such-model"]}, 400),
            ({"model": "gpt-4o", "then": "claude-haiku-4-5"}, 400),
            ({"model": "gpt-4o"}, 400),
        ]
        for args, status in bad:
            r = await h.post("/admin/console/set_fallbacks", json=args)
            assert r.status_code == status, (args, r.text)
        r = await h.post(
            "/admin/console/set_fallbacks", json={"model": "gpt-4o", "then": ["claude-haiku-4-5"]}
        )
        assert r.json()["result"]["fallbacks"]["gpt-4o"] == ["claude-haiku-4-5"]
        r = await h.post("/admin/console/set_fallbacks", json={"model": "claude-sonnet-4-5", "then": None})
        assert r.json()["result"]["fallbacks"] == {"gpt-4o": ["claude-haiku-4-5"]}
        snap = (await h.get("/admin/snapshot")).json()
    assert snap["routing"]["fallbacks"] == [{"model": "gpt-4o", "then": ["claude-haiku-4-5"]}]
    await gw.flush()
    stored = await gw.rt.read(settings_store.all_settings)
    catalog = Catalog(gw.rt.cfg.models, gw.rt.cfg.routing, [configmod.FallbackConfig("auto", ["gpt-4o"])])
    catalog.apply_settings(stored)  # what a restart does: the operator's chains replace the config's
    assert catalog.fallbacks == {"gpt-4o": ["claude-haiku-4-5"]}


@pytest.mark.parametrize(
    "chain,message",
    [
        ({"model": "nope", "then": ["gpt-4o"]}, "no model 'nope'"),
        ({"model": "gpt-4o", "then": []}, "at least one model"),
        ({"model": "gpt-4o", "then": ["gpt-4o"]}, "not as its own fallback"),
        ({"model": "gpt-4o", "then": ["nope"]}, "no model 'nope'"),
    ],
)
def test_config_fallbacks_are_checked(chain: dict[str, Any], message: str) -> None:
    from conftest import DEFAULT_MODELS

    with pytest.raises(configmod.ConfigError, match=message):
        configmod.parse({"models": DEFAULT_MODELS, "fallbacks": [chain]})
    twice = configmod.parse({"models": DEFAULT_MODELS, "fallbacks": [{"model": "gpt-4o", "then": ["auto"]}]})
    assert twice.fallbacks[0].then == ["auto"]
    with pytest.raises(configmod.ConfigError, match="given twice"):
        configmod.parse({"models": DEFAULT_MODELS, "fallbacks": [{"model": "gpt-4o", "then": ["auto"]}] * 2})
