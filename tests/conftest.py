"""Shared fixtures: a fake upstream on loopback and a real gateway under Hypercorn pointed at it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gatewaytui import config as configmod
from gatewaytui.host import Gateway
from gatewaytui.ops import tenants as tenant_ops

# a Fernet key, not a passphrase: a passphrase costs a scrypt derivation (~0.4 s) per gateway start
# (tests/test_vault.py and tests/test_cli.py cover the passphrase road)
os.environ.setdefault("GATEWAYTUI_SECRET_KEY", "Z2F0ZXdheXR1aS10ZXN0LXN1aXRlLXZhdWx0LWtleSE=")
# the demo keeps its database under the user's data directory: one of its own per test worker, never the
# real one (gatewaytui --demo run by a test, and anything it starts, inherit this)
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="gatewaytui-test-data-")

DEFAULT_MODELS: list[dict[str, Any]] = [
    {
        "name": "claude-sonnet-4-5",
        "provider": "anthropic",
        "aliases": ["auto"],
        "input_per_mtok": 3.0,
        "output_per_mtok": 15.0,
        "cache_read_per_mtok": 0.30,
        "cache_write_per_mtok": 3.75,
        "cache_write_1h_per_mtok": 6.0,
    },
    {
        "name": "claude-haiku-4-5",
        "provider": "anthropic",
        "input_per_mtok": 1.0,
        "output_per_mtok": 5.0,
        "cache_read_per_mtok": 0.10,
        "cache_write_per_mtok": 1.25,
    },
    {
        "name": "gpt-4o",
        "provider": "openai",
        "input_per_mtok": 2.5,
        "output_per_mtok": 10.0,
        "cache_read_per_mtok": 1.25,
    },
    {
        "name": "gpt-5",
        "provider": "openai",
        "api": "responses",
        "input_per_mtok": 1.25,
        "output_per_mtok": 10.0,
        "cache_read_per_mtok": 0.125,
    },
    {
        "name": "gemini-2.5-flash",
        "provider": "gemini",
        "input_per_mtok": 0.30,
        "output_per_mtok": 2.50,
        "cache_read_per_mtok": 0.075,
    },
    {
        "name": "kimi-k2",
        "provider": "openrouter",
        "upstream": "moonshotai/kimi-k2",
        "input_per_mtok": 0.6,
        "output_per_mtok": 2.5,
    },
    {
        "name": "local-llama",
        "provider": "openai-compatible",
        "upstream": "llama-3.1-8b",
        "input_per_mtok": 0.1,
        "output_per_mtok": 0.1,
    },
]


def default_accounts(base_url: str) -> list[dict[str, Any]]:
    return [
        {"label": "anthropic-1", "provider": "anthropic", "base_url": base_url, "api_key": "key-anthropic-1"},
        {"label": "openai-1", "provider": "openai", "base_url": base_url, "api_key": "key-openai-1"},
        {"label": "gemini-1", "provider": "gemini", "base_url": base_url, "api_key": "key-gemini-1"},
        {
            "label": "openrouter-1",
            "provider": "openrouter",
            "base_url": base_url + "/api",
            "api_key": "key-openrouter-1",
        },
        {
            "label": "compat-1",
            "provider": "openai-compatible",
            "base_url": base_url + "/v1",
            "api_key": "key-compat-1",
        },
    ]


@dataclass
class GatewayHandle:
    gateway: Gateway

    @property
    def rt(self) -> Any:
        return self.gateway.rt

    @property
    def base_url(self) -> str:
        return self.gateway.base_url

    async def mint(
        self, tenant: str = "acme", *, usd: float | None = 10.0, kind: str = "payg", **kw: Any
    ) -> str:
        """A fresh tenant key (the secret), the tenant created if new; credits it with ``usd`` first when given."""
        if usd:
            await tenant_ops.credit(self.rt, tenant, int(round(usd * 1_000_000)), create=True)
        _, secret = await tenant_ops.mint_key(self.rt, tenant, kind=kind, create=True, **kw)
        return secret

    async def flush(self) -> None:
        """Wait until every queued database write is committed."""
        await self.rt.write(lambda conn: None)


@pytest.fixture
async def upstream() -> AsyncIterator[Any]:
    from gatewaytui.demo.upstream import FakeUpstream, serve

    fake = FakeUpstream()
    async with serve(fake) as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture
async def make_gateway(
    tmp_path: Any, upstream: Any
) -> AsyncIterator[Callable[..., Awaitable[GatewayHandle]]]:
    started: list[Gateway] = []

    async def factory(
        *,
        accounts: list[dict[str, Any]] | None = None,
        models: list[dict[str, Any]] | None = None,
        db: str | None = None,
        **sections: Any,
    ) -> GatewayHandle:
        data: dict[str, Any] = {
            "server": {
                "host": "127.0.0.1",
                "port": 0,
                "keepalive_interval": 2.0,
                "graceful_timeout": 5.0,
                **sections.pop("server", {}),
            },
            "database": {"path": db or str(tmp_path / "gateway.db"), "flush_interval_ms": 5},
            "accounts": accounts if accounts is not None else default_accounts(upstream.base_url),
            "models": models if models is not None else DEFAULT_MODELS,
            **sections,
        }
        cfg = configmod.parse(data)
        gw = Gateway(cfg)
        await gw.start()
        started.append(gw)
        return GatewayHandle(gw)

    yield factory
    for gw in reversed(started):
        await gw.stop()


@pytest.fixture
async def gateway(make_gateway: Callable[..., Awaitable[GatewayHandle]]) -> GatewayHandle:
    return await make_gateway()
