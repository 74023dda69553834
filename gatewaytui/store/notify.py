"""PostgreSQL only: change notifications from every instance and the CLI (LISTEN/NOTIFY).

The schema's triggers (``m004``) notify channel ``gatewaytui`` with the name of the table a statement
changed. ``listen`` keeps one connection listening and reports the tables to ``on_change``; after a
(re)connection it reports every table, since notifications sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .schema import NOTIFYING_TABLES

log = logging.getLogger("gatewaytui.store")
CHANNEL = "gatewaytui"


async def listen(url: str, on_change: Callable[[set[str]], None]) -> None:
    import psycopg

    delay = 0.2
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            log.warning("change listener cannot connect (%s); retrying", str(exc).strip())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            delay = 0.2
            on_change(set(NOTIFYING_TABLES))
            async for note in conn.notifies():
                on_change({note.payload})
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            log.warning("change listener lost its connection (%s); reconnecting", str(exc).strip())
        finally:
            await conn.close()
