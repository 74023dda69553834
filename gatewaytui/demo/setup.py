"""Demo mode: a built-in fake upstream, a seeded demo tenant, and a trickle of live traffic.

``gatewaytui --demo`` (and ``gatewaytui`` with no config file) uses this so a newcomer sees a working
gateway and a live console without any API key. Its configuration and database location are in
``profile`` (the admin commands' ``--demo`` reads them too, without loading any of this).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from typing import Any

import httpx

from ..config import AccountConfig, Config
from ..ops import tenants as tenant_ops
from ..runtime import Runtime
from .profile import demo_models
from .upstream import FakeUpstream, serve

log = logging.getLogger("gatewaytui.demo")

DEMO_TENANT = "demo"
DEMO_CREDIT_MICRO = 25_000_000  # $25 of play money


class DemoUpstream:
    """The fake provider, served on a free loopback port for the life of the demo."""

    def __init__(self) -> None:
        self.upstream = FakeUpstream()
        self._cm: Any = None
        self.base_url = ""

    async def start(self, cfg: Config) -> None:
        self._cm = serve(self.upstream)
        self.base_url = await self._cm.__aenter__()
        if not cfg.accounts:
            cfg.accounts = [
                AccountConfig(
                    label="demo-anthropic-1",
                    provider="anthropic",
                    base_url=self.base_url,
                    api_key="demo-key-a1",
                ),
                AccountConfig(
                    label="demo-anthropic-2",
                    provider="anthropic",
                    base_url=self.base_url,
                    api_key="demo-key-a2",
                ),
                AccountConfig(
                    label="demo-openai", provider="openai", base_url=self.base_url, api_key="demo-key-o1"
                ),
                AccountConfig(
                    label="demo-gemini", provider="gemini", base_url=self.base_url, api_key="demo-key-g1"
                ),
            ]
        else:  # a demo over an existing config: point every account at the fake upstream
            for acc in cfg.accounts:
                acc.base_url = self.base_url
        if not cfg.models:
            cfg.models = demo_models()
        cfg.routing.default_model = cfg.routing.default_model or cfg.models[0].name

    async def stop(self) -> None:
        if self._cm is not None:
            with contextlib.suppress(Exception):
                await self._cm.__aexit__(None, None, None)
            self._cm = None


async def seed(rt: Runtime) -> str:
    """Ensure the demo tenant has credit; mint a fresh demo key (printed once by the caller)."""
    tenant = await tenant_ops.create_tenant(rt, DEMO_TENANT)
    if rt.wallet.balance[tenant["id"]] < DEMO_CREDIT_MICRO // 5:
        await tenant_ops.credit(rt, DEMO_TENANT, DEMO_CREDIT_MICRO, note="demo credit")
    _, secret = await tenant_ops.mint_key(rt, DEMO_TENANT, label="demo")
    return secret


PROMPTS = [
    "Summarise the plot of Hamlet in two sentences",
    "Write a haiku about load balancers",
    "Use the tool to get the weather in Paris",
    "Explain prompt caching like I am five",
    "List three uses of SQLite WAL mode",
]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def traffic(base_url: str, key: str, *, interval: float = 1.2, rounds: int | None = None) -> None:
    """Send a mix of protocols and models through the gateway so the console has something to show."""
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        counter = itertools.count() if rounds is None else range(rounds)
        tasks: set[asyncio.Task[Any]] = set()
        for n in counter:
            task = asyncio.create_task(_one(client, key, rng, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(interval * rng.uniform(0.4, 1.6))
        await asyncio.gather(*tasks, return_exceptions=True)


async def _one(client: httpx.AsyncClient, key: str, rng: random.Random, n: int) -> None:
    prompt = rng.choice(PROMPTS) + f" [pace:{rng.choice([30, 60, 120])}]"
    kind = n % 4
    try:
        if kind == 0:
            body = {
                "model": rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5"]),
                "max_tokens": 400,
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
                "tools": [WEATHER_TOOL],
            }
            async with client.stream("POST", "/v1/messages", json=body, headers={"x-api-key": key}) as r:
                async for _ in r.aiter_bytes():
                    pass
        elif kind == 1:
            body = {
                "model": "gpt-4o",
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
                "stream_options": {"include_usage": True},
            }
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            ) as r:
                async for _ in r.aiter_bytes():
                    pass
        elif kind == 2:
            body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
            await client.post(
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                json=body,
                headers={"x-goog-api-key": key},
            )
        else:
            await client.post(
                "/v1/responses",
                json={"model": "gpt-5", "input": prompt},
                headers={"authorization": f"Bearer {key}"},
            )
    except httpx.HTTPError as exc:
        log.debug("demo request failed: %s", exc)
