"""Tenant key authentication: an in-memory map of key hashes, refreshed when the database changes.

A key unknown to the cache is looked up in the database once (so keys minted by the CLI work at once);
revocations made elsewhere take effect on the next refresh (about a second). Per-key RPM limits are
enforced here with a sliding one-minute window; on a shared store the store counts them instead, for every
instance, in the admission statement (``billing/shared_limits.py``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..model import GatewayError
from ..store import keys as keystore


class Keyring:
    def __init__(self, lookup: Callable[[str], dict[str, Any] | None]) -> None:
        self._by_hash: dict[str, dict[str, Any]] = {}
        self._misses: dict[str, float] = {}
        self._lookup = lookup
        self._windows: dict[str, deque[float]] = {}
        self.shared = False  # on a shared store RPM is the store's (admission), not this process's

    def load(self, rows: list[dict[str, Any]]) -> None:
        self._by_hash = {r["hash"]: r for r in rows}
        self._misses.clear()

    def put(self, row: dict[str, Any]) -> None:
        self._by_hash[row["hash"]] = row
        self._misses.pop(row["hash"], None)

    def authenticate(self, secret: str | None) -> dict[str, Any]:
        if not secret:
            raise GatewayError(
                "authentication",
                "missing API key: send it in x-api-key or Authorization: Bearer "
                "(Gemini clients: x-goog-api-key or ?key=)",
            )
        if len(secret) > 512 or not secret.isprintable():
            raise GatewayError("authentication", "invalid API key")
        digest = keystore.hash_key(secret)
        row = self._by_hash.get(digest)
        if row is None:
            now = time.monotonic()
            if self._misses.get(digest, 0) > now:
                raise GatewayError("authentication", "invalid API key")
            row = self._lookup(digest)
            if row is None:
                if len(self._misses) > 10_000:
                    self._misses.clear()
                self._misses[digest] = now + 1.0
                raise GatewayError("authentication", "invalid API key")
            self._by_hash[digest] = row
        state = keystore.state(row)
        if state != "active":
            raise GatewayError("authentication", f"API key is {state}")
        return row

    def check_rpm(self, key: dict[str, Any]) -> None:
        rpm = key.get("rpm")
        if not rpm or self.shared:
            return
        now = time.monotonic()
        window = self._windows.setdefault(key["id"], deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= rpm:
            retry = max(1.0, window[0] + 60 - now) if window else 1.0
            raise GatewayError(
                "rate_limit", f"this key is limited to {rpm} requests per minute", retry_after=retry
            )
        window.append(now)
