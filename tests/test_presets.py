"""Tool-tuned routes: presets from config, editable by the operator, applied only under their prefix."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from conftest import GatewayHandle

from gatewaytui.config import ROUTES
from gatewaytui.model import GatewayError
from gatewaytui.ops import routing as routing_ops
from gatewaytui.store import requests as request_store

PRESETS = {
    "claudecode": {"system": "You are tuned for Claude Code.", "defaults": {"temperature": 0.25}},
    "cline": {"system": "You are tuned for Cline."},
}


def upstream_bodies(upstream: Any) -> list[dict[str, Any]]:
    return [
        r.json
        for r in upstream.requests
        if r.path.startswith("/v1/messages") and "count_tokens" not in r.path
    ]


def system_texts(body: dict[str, Any]) -> list[str]:
    system = body.get("system")
    if isinstance(system, str):
        return [system]
    return [b["text"] for b in system or []]


async def send(gw: GatewayHandle, key: str, route: str, **extra: Any) -> anthropic.types.Message:
    prefix = "" if route == "v1" else f"/{route}"
    c = anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url + prefix, max_retries=0)
    return await c.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}], **extra
    )


async def test_preset_prepends_system_and_defaults_only_on_its_route(
    make_gateway: Any, upstream: Any
) -> None:
    gw = await make_gateway(presets=PRESETS)
    key = await gw.mint("acme", usd=2)
    await send(gw, key, "claudecode", system="client system")
    body = upstream_bodies(upstream)[-1]
    assert system_texts(body) == ["You are tuned for Claude Code.", "client system"]
    assert body["temperature"] == 0.25
    await send(gw, key, "claudecode", extra_body={"temperature": 0.9})
    assert upstream_bodies(upstream)[-1]["temperature"] == 0.9  # the client's own setting wins over a default
    await send(gw, key, "v1", system="client system")
    body = upstream_bodies(upstream)[-1]
    assert system_texts(body) == ["client system"] and "temperature" not in body
    await send(gw, key, "cursor")  # a route without a preset sends the request as is
    assert "system" not in upstream_bodies(upstream)[-1]


async def test_preset_text_is_part_of_the_hold(make_gateway: Any) -> None:
    gw = await make_gateway(presets={"cline": {"system": "x" * 20_000}})
    key = await gw.mint("acme", usd=2)
    c = anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url + "/cline", max_retries=0)
    r = await c.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    await gw.flush()
    row = request_store.get(gw.rt.readers.get(), r.headers["request-id"])
    size = int(r.http_request.headers["content-length"])
    assert row is not None and row["hold_micro"] == (size + 20_000) * 6 + 10 * 15  # 1h writes: 6 USD/MTok


async def test_operator_edits_presets_live_and_they_persist(make_gateway: Any, upstream: Any) -> None:
    gw = await make_gateway(presets=PRESETS)
    key = await gw.mint("acme", usd=2)
    await routing_ops.set_preset(gw.rt, "cline", "Edited for Cline.", {"temperature": 0.5})
    await send(gw, key, "cline")
    body = upstream_bodies(upstream)[-1]
    assert system_texts(body) == ["Edited for Cline."] and body["temperature"] == 0.5
    with pytest.raises(GatewayError):
        await routing_ops.set_preset(gw.rt, "vim", "nope")
    await gw.gateway.stop()
    gw2 = await make_gateway(presets=PRESETS)
    await send(gw2, key, "cline")
    assert system_texts(upstream_bodies(upstream)[-1]) == ["Edited for Cline."]


@pytest.mark.parametrize("route", ROUTES)
async def test_count_tokens_under_each_prefix(gateway: GatewayHandle, route: str) -> None:
    sub = await gateway.mint("acme", usd=None, kind="subscription")
    async with httpx.AsyncClient(base_url=gateway.base_url) as h:
        body = {
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "count these words please"}],
        }
        r = await h.post(f"/{route}/v1/messages/count_tokens", headers={"x-api-key": sub}, json=body)
        assert r.status_code == 200 and r.json()["input_tokens"] > 0
        generic = await h.post("/v1/messages/count_tokens", headers={"x-api-key": sub}, json=body)
        assert generic.status_code == 403


async def test_count_tokens_under_a_preset_route_counts_the_preset(make_gateway: Any) -> None:
    gw = await make_gateway(presets={"cline": {"system": "word " * 500}})
    key = await gw.mint("acme", usd=2)
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}]}
    async with httpx.AsyncClient(base_url=gw.base_url, headers={"x-api-key": key}) as http:
        plain = (await http.post("/v1/messages/count_tokens", json=body)).json()["input_tokens"]
        tuned = (await http.post("/cline/v1/messages/count_tokens", json=body)).json()["input_tokens"]
        other = (await http.post("/cursor/v1/messages/count_tokens", json=body)).json()["input_tokens"]
    assert other == plain and tuned >= plain + 500
