"""What the demo runs with: its models, and where its database lives.

The demo's database is ``<data dir>/gatewaytui/demo.db`` (``$XDG_DATA_HOME``, else ``~/.local/share``), a
fixed place the admin commands reach with ``--demo`` (``gatewaytui --demo keys list``). Each demo run starts
from an empty database unless ``--keep`` is given. This module is light on purpose: the CLI imports it
without the gateway.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import Config, ModelConfig

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
    """Another demo holds this database."""


def claim(path: Path) -> Any:
    """Hold the demo's lock for the life of the process (the open file is the lock): a second demo would
    otherwise wipe the database of the one running. ``DemoRunning`` if another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held until the process exits
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Unix: no lock, as before
        return lock
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise DemoRunning(
            f"another demo is running on {path}; stop it first, or reach it with `gatewaytui --demo keys list`"
        ) from None
    return lock


def reset(path: Path) -> bool:
    """Delete a demo database (and SQLite's side files) so a run starts fresh; whether there was one."""
    found = False
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.unlink()
            found = True
    return found


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
