"""Sticky routing across instances: a conversation keeps its account whichever instance serves its turn.

Nothing is exchanged for it: the sticky account is the top of a weighted rendezvous ranking of the
conversation's key over the accounts' ids and weights, which every instance reads from the shared store,
so every instance ranks them alike."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import test_cluster
from test_cluster import cluster, query, seed  # noqa: F401  (cluster is a fixture)

EXTRA_ACCOUNTS = "".join(
    f'\n[[accounts]]\nlabel = "anthropic-{n}"\nprovider = "anthropic"\nbase_url = "{{upstream}}"\n'
    f'api_key = "key-anthropic-{n}"\n'
    for n in (2, 3, 4)
)


async def test_a_conversation_keeps_its_account_on_every_instance(
    cluster: Any,  # noqa: F811
    upstream: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # four Anthropic accounts on each instance, the same four in the shared store
    monkeypatch.setattr(
        test_cluster, "METERED", test_cluster.METERED + EXTRA_ACCOUNTS.format(upstream=upstream.base_url)
    )
    nodes = await cluster(2)
    _, _, key = seed(cluster.url, "sticky", 10_000_000)
    conversations = [f"user_{uuid.uuid4().hex}_account__session_{uuid.uuid4()}" for _ in range(16)]
    served: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for turn in range(4):  # one request at a time: nothing in flight to spill over
            for conv in conversations:
                node = nodes[(turn + conversations.index(conv)) % 2]
                r = await http.post(
                    node.base_url + "/v1/messages",
                    headers={"x-api-key": key},
                    json={
                        "model": "metered",
                        "max_tokens": 16,
                        "metadata": {"user_id": conv},
                        "messages": [
                            {"role": "user", "content": f"{conv} turn {t} [usage in=1 out=1]"}
                            if t % 2 == 0
                            else {"role": "assistant", "content": "ok"}
                            for t in range(2 * turn + 1)
                        ],
                    },
                )
                assert r.status_code == 200, r.text
                served.setdefault(conv, []).append(r.headers["request-id"])
    wanted = {rid for ids in served.values() for rid in ids}
    for _ in range(100):  # the usage rows are written in the writers' batches
        rows = dict(query(cluster.url, "SELECT id, account_id FROM requests"))
        if wanted <= rows.keys():
            break
        await asyncio.sleep(0.1)
    homes = {conv: {rows[rid] for rid in ids} for conv, ids in served.items()}
    assert all(len(accounts) == 1 for accounts in homes.values()), homes  # one account, both instances
    assert len(set().union(*homes.values())) >= 2  # and the conversations spread over the accounts
