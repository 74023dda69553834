"""Shared fixtures: a fake upstream on loopback and a real gateway under Hypercorn pointed at it."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pgcluster import PgCluster, bindir

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
        """Wait until every queued database write is committed (and, on a shared store, its balances read:
        there, other instances' changes arrive by notification)."""
        await asyncio.sleep(0)  # an answer delivered whole settles at the loop's next turn (settle_soon)
        self.rt.backlog.drain()  # settlements waiting for an idle moment (gatewaytui/backlog.py)
        await self.rt.write(lambda conn: None)
        if self.rt.shared_wallet is not None:
            await self.rt.shared_wallet.refresh()


@pytest.fixture
async def upstream() -> AsyncIterator[Any]:
    from gatewaytui.demo.upstream import FakeUpstream, serve

    fake = FakeUpstream()
    async with serve(fake) as base_url:
        fake.base_url = base_url
        yield fake


# Test modules whose store-touching tests run against both stores (each test twice: [sqlite] and
# [postgresql]); ``--store postgresql`` runs every gateway of the suite on PostgreSQL instead.
BOTH_STORES = {
    "test_ledger",
    "test_writer",
    "test_billing",
    "test_billing_concurrency",
    "test_billing_subscription",
    "test_tenant_api",
    "test_admin_api",
    "test_stripe",
    "test_cli",
    "test_key_limits",
    "test_billing_bounds",
    "test_tui_bodies",
}


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--store",
        choices=("auto", "sqlite", "postgresql"),
        default="auto",
        help="auto: the modules in conftest.BOTH_STORES on both stores, the rest on SQLite; "
        "sqlite / postgresql: every test on that store",
    )
    parser.addoption(
        "--store-only",
        action="store_true",
        help="run only the tests that touch the store (their fixture closure holds the `store` fixture, "
        "directly or through make_gateway/gateway) and are not pinned to a store; "
        "with --store postgresql: CI's PostgreSQL pass",
    )


def touches_store(item: Any, store: str) -> bool:
    """Whether ``--store-only`` keeps a test: its fixture closure (its own fixtures and theirs: make_gateway,
    gateway, ...) holds the ``store`` fixture, and, with ``--store sqlite|postgresql``, that option chooses
    its store. A test pinned to a store (``@pytest.mark.parametrize("store", ["sqlite"], indirect=True)``:
    specific to it) runs on that store in every pass, so a ``--store-only`` pass would only repeat it."""
    if "store" not in getattr(item, "fixturenames", ()):
        return False
    return store == "auto" or "store" not in getattr(getattr(item, "callspec", None), "params", {})


@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    """A throwaway PostgreSQL cluster for this test process (``pgcluster.py``), in a temp dir of its own
    (pytest's are private to root, and the server runs as ``postgres``)."""
    found = bindir()
    if found is None:
        pytest.skip(
            "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin): "
            "apt-get install postgresql (.ci/run does)"
        )
    root = Path(tempfile.mkdtemp(prefix="gatewaytui-pg-"))
    cluster = PgCluster(root, found)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def store(request: Any) -> Any:
    """The store a test's gateway uses: ``None`` for SQLite (a file in tmp_path), else a fresh PostgreSQL
    database's URL."""
    kind = getattr(request, "param", None) or (
        "postgresql" if request.config.getoption("--store") == "postgresql" else "sqlite"
    )
    if kind == "sqlite":
        yield None
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.new_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture
async def make_gateway(
    tmp_path: Any, upstream: Any, store: Any
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
            "database": {
                "path": db or str(tmp_path / "gateway.db"),
                "flush_interval_ms": 5,
                "spool_dir": str(tmp_path / "spool"),
                **({"url": store} if store and db is None else {}),
                **sections.pop("database", {}),
            },
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


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if not config.getoption("--store-only"):
        return
    store = config.getoption("--store")
    kept = [item for item in items if touches_store(item, store)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not touches_store(item, store)])
        items[:] = kept
