"""Per-key RPM windows shared by the instances of a PostgreSQL store, within a second.

The keyring's sliding one-minute window stays in memory (no database round trip per request); each
instance also counts its admissions per key and second, and every ``SYNC_S`` seconds writes them to
``key_rates`` and reads what the other instances admitted in the last minute. A key's limit is checked
against its own window plus the others' counts, so across N instances a key can exceed its RPM only by what
the others admitted in the last ``2 * SYNC_S`` seconds (one write, one read), never by N times its limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from ..store import credit as credit_store

log = logging.getLogger("gatewaytui.billing")

SYNC_S = 0.5
WINDOW_S = 60


class SharedRates:
    def __init__(self, wallet: Any) -> None:
        self.wallet = wallet  # the SharedWallet: its connection pool and instance id
        self._pending: dict[tuple[str, int], int] = defaultdict(int)
        self._others: dict[str, list[tuple[int, int]]] = {}

    def record(self, key_id: str) -> None:
        self._pending[(key_id, int(time.time()))] += 1

    def count(self, key_id: str) -> int:
        """Requests other instances admitted for this key in the last minute (as of the last sync)."""
        rows = self._others.get(key_id)
        if not rows:
            return 0
        cutoff = int(time.time()) - WINDOW_S
        return sum(n for second, n in rows if second > cutoff)

    async def sync(self) -> None:
        pending, self._pending = self._pending, defaultdict(int)
        me = self.wallet.origin
        now = int(time.time())
        try:
            async with self.wallet.pool.connection() as conn:
                await credit_store.record_rates(conn, me, pending, now - 2 * WINDOW_S)
                others = await credit_store.other_rates(conn, me, now - WINDOW_S)
        except Exception:
            for k, n in pending.items():  # counted next time
                self._pending[k] += n
            raise
        self._others = others

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SYNC_S)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store is down: local windows still apply
                log.debug("rate window sync failed: %s", exc)
