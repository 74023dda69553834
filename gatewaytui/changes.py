"""Changes made behind the running gateway's back, as bus events.

The CLI (and any other process on the same database) writes keys and tenants directly; the runtime's
watcher reads them within a second (``Runtime._watch``). ``Seen`` remembers the key and tenant rows as this
process last knew them, so the watcher can tell what changed elsewhere and publish the same events the
operator actions publish in process (``key.created``, ``key.revoked``, ``tenant.created``,
``tenant.subscription``, ``tenant.caps``, ``tenant.tpm``). The actions record their own writes here
(``saw_key``, ``saw_tenant``) before they publish, so a change made in process is announced once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Event = tuple[str, dict[str, Any]]


class Seen:
    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        self.tenants: dict[int, dict[str, Any]] = {}

    def saw_key(self, row: dict[str, Any]) -> None:
        self.keys[row["id"]] = row

    def saw_tenant(self, row: dict[str, Any]) -> None:
        self.tenants[row["id"]] = row

    def load(self, keys: Iterable[dict[str, Any]], tenants: Iterable[dict[str, Any]]) -> None:
        """What the database holds at start: nothing in it is news."""
        self.keys = {r["id"]: r for r in keys}
        self.tenants = {r["id"]: r for r in tenants}

    def key_changes(self, rows: list[dict[str, Any]]) -> list[Event]:
        """The events for a fresh read of every key (and remember it)."""
        events: list[Event] = []
        for row in rows:
            old = self.keys.get(row["id"])
            about = {"key_id": row["id"], "tenant": row.get("tenant"), "label": row.get("label")}
            if old is None:
                events.append(("key.created", {**about, "kind": row.get("kind")}))
            elif row.get("revoked_at") and not old.get("revoked_at"):
                events.append(("key.revoked", about))
        self.keys = {r["id"]: r for r in rows}
        return events

    def tenant_changes(self, rows: list[dict[str, Any]]) -> list[Event]:
        """The events for a fresh read of every tenant (and remember it)."""
        events: list[Event] = []
        for row in rows:
            old = self.tenants.get(row["id"])
            if old is None:  # created elsewhere (e.g. ``keys create --create``), with nothing set yet
                events.append(("tenant.created", {"tenant_id": row["id"], "name": row["name"]}))
                continue
            about = {"tenant_id": row["id"], "tenant": row["name"]}
            if _differ(old, row, "tier", "subscription_status"):
                status = row.get("subscription_status")
                events.append(("tenant.subscription", {**about, "tier": row.get("tier"), "status": status}))
            if _differ(old, row, "per_call_cap_micro", "model_caps"):
                caps = {"cap_micro": row.get("per_call_cap_micro"), "model_caps": row.get("model_caps")}
                events.append(("tenant.caps", {**about, **caps}))
            if _differ(old, row, "tpm"):
                events.append(("tenant.tpm", {**about, "tpm": row.get("tpm")}))
        self.tenants = {r["id"]: r for r in rows}
        return events


def _differ(old: dict[str, Any], new: dict[str, Any], *fields: str) -> bool:
    return any(old.get(f) != new.get(f) for f in fields)
