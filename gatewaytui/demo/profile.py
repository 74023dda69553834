"""What the demo runs with: its models, and where its database lives.

The demo's database is ``<data dir>/gatewaytui/demo.db`` (``$XDG_DATA_HOME``, else ``~/.local/share``), a
fixed place the admin commands reach with ``--demo`` (``gatewaytui --demo keys list``). Each demo run starts
from an empty database unless ``--keep`` is given. This module is light on purpose: the CLI imports it
without the gateway.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config, ModelConfig
from ..store.lock import ServerLock, StoreLocked

DEMO_DB = "demo.db"


def data_dir() -> Path:
    """Where gatewaytui keeps per-user data (the XDG base directory rule)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gatewaytui"


def database_path() -> Path:
    return data_dir() / DEMO_DB


def demo_config() -> Config:
    """The demo's configuration (its upstream accounts are added when the fake upstream starts)."""
    cfg = Config(demo=True)
    cfg.models = demo_models()
    cfg.routing.default_model = cfg.models[0].name
    cfg.database.path = str(database_path())
    return cfg


class DemoRunning(Exception):
    """Another demo (a gateway server) holds this database."""


def prepare(path: Path, *, keep: bool) -> bool:
    """Make the demo's database ready: removed (with SQLite's side files) unless ``keep``, so a run starts
    fresh; whether a previous run's was removed. Done under the server lock (``store.lock``), so a second
    demo never wipes the database of one that is running: ``DemoRunning`` instead."""
    lock = ServerLock(path)
    try:
        lock.acquire()
    except StoreLocked:
        raise DemoRunning(
            f"another demo is running on {path}; stop it first, or reach it with `gatewaytui --demo keys list`"
        ) from None
    try:
        if keep:
            return False
        found = False
        for suffix in ("", "-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.unlink()
                found = True
        return found
    finally:
        lock.release()  # the server takes it again when it starts


def demo_models() -> list[ModelConfig]:
    return [
        ModelConfig(
            name="claude-sonnet-4-5",
            provider="anthropic",
            aliases=["auto"],
            input_per_mtok=3_000_000,
            output_per_mtok=15_000_000,
            cache_read_per_mtok=300_000,
            cache_write_per_mtok=3_750_000,
            cache_write_1h_per_mtok=6_000_000,
            display_name="Claude Sonnet 4.5 (demo)",
        ),
        ModelConfig(
            name="claude-haiku-4-5",
            provider="anthropic",
            input_per_mtok=1_000_000,
            output_per_mtok=5_000_000,
            cache_read_per_mtok=100_000,
            cache_write_per_mtok=1_250_000,
            cache_write_1h_per_mtok=2_000_000,
        ),
        ModelConfig(
            name="gpt-4o",
            provider="openai",
            input_per_mtok=2_500_000,
            output_per_mtok=10_000_000,
            cache_read_per_mtok=1_250_000,
        ),
        ModelConfig(
            name="gpt-5",
            provider="openai",
            api="responses",
            input_per_mtok=1_250_000,
            output_per_mtok=10_000_000,
            cache_read_per_mtok=125_000,
        ),
        ModelConfig(
            name="gemini-2.5-flash",
            provider="gemini",
            input_per_mtok=300_000,
            output_per_mtok=2_500_000,
            cache_read_per_mtok=75_000,
        ),
    ]
