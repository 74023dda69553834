"""Enrolment: a new upstream account stored (secrets encrypted), put in the pool, announced.

Both ways an account arrives end here: the operator's ``add_account`` action (``gatewaytui.ops``), after
its spec checked the input, and a completed OAuth sign-in (``gatewaytui.oauth``). The CLI, which writes
the database directly while the gateway may run, shares ``insert_row``. The host is described by a
protocol, so this module depends on no runtime (the runtime builds the OAuth manager, which enrolls).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..bus import EventBus
from ..providers import registry
from ..store import accounts as account_store
from ..vault import Vault
from .account import Account
from .pool import Pool

T = TypeVar("T")


class EnrollHost(Protocol):
    """What enrolment needs of the running gateway (``gatewaytui.runtime.Runtime`` has it)."""

    vault: Vault | None
    pool: Pool
    bus: EventBus

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    def account_from_row(self, row: dict[str, Any], state: dict[str, Any] | None = None) -> Account: ...


def default_base_url(provider: str) -> str:
    """The provider's public API base URL ("" for a provider without one, e.g. openai-compatible)."""
    try:
        return registry.get(provider).DEFAULT_BASE_URL or ""
    except KeyError:
        return ""


def default_label(provider: str) -> str:
    return f"{provider}-{int(time.time())}"


def insert_row(
    conn: sqlite3.Connection, *, label: str, provider: str, base_url: str | None, **fields: Any
) -> dict[str, Any]:
    """Insert an enabled account; a label already taken is a ``ValueError``."""
    if account_store.by_label(conn, label) is not None:
        raise ValueError(f"an account labelled {label!r} already exists")
    return account_store.insert(
        conn,
        label=label,
        provider=provider,
        base_url=base_url or default_base_url(provider),
        enabled=1,
        source="db",
        **fields,
    )


async def enroll(
    host: EnrollHost,
    *,
    provider: str,
    label: str | None = None,
    api_key: str | None = None,
    oauth: dict[str, Any] | None = None,
    base_url: str | None = None,
    priority: int = 0,
    weight: int = 1,
    models: list[str] | None = None,
    rpm: int | None = None,
) -> dict[str, Any]:
    """Store, pool and announce a new account; returns its public view. Raises ``ValueError`` on a clash."""
    assert host.vault is not None
    vault = host.vault
    name = label or default_label(provider)
    fields = {
        "auth": "oauth" if oauth else "api_key",
        "secret": vault.encrypt(api_key) if api_key else None,
        "oauth": vault.encrypt(json.dumps(oauth)) if oauth else None,
        "priority": priority,
        "weight": weight,
        "models": models or [],
        "rpm": rpm,
    }
    try:
        row = await host.write(
            lambda c: insert_row(c, label=name, provider=provider, base_url=base_url, **fields)
        )
    except sqlite3.IntegrityError as exc:
        raise ValueError(str(exc)) from None
    acc = host.account_from_row(row)
    host.pool.put(acc)
    host.bus.publish("account.added", account=acc.id, label=acc.label, provider=provider)
    return acc.public()
