"""Which requests belong together, so the sticky strategy can keep them on one account.

An upstream's prompt cache lives on one account, so a conversation should keep hitting the account
that served its previous turn. The affinity of a request has two parts:

``session``  who is talking: Claude Code's ``metadata.user_id`` (which embeds its session id), a session
             header, OpenAI's ``prompt_cache_key``, or the ``user`` field.
``prefix``   what is being continued: a hash of the prompt's stable head (system prompt and first message).

The sticky key is both together. A session alone would put a Claude Code session's sub-agents, whose
prompts differ and share no cache with the main conversation, onto one account; a prefix alone is the
fallback when a client identifies no session. The pool also counts a session's requests in flight per
account and steers concurrent ones (parallel sub-agents) onto different accounts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from ..model import ChatRequest, Text

SESSION_HEADERS = ("x-claude-code-session-id", "session_id", "session-id", "x-session-id")
PREFIX_CHARS = 4096  # how much of the prompt's head identifies a conversation


@dataclass(frozen=True, slots=True)
class Affinity:
    key: str  # the sticky key: rank accounts by it
    session: str | None = None  # spread a session's concurrent requests across accounts


def session_of(req: ChatRequest, headers: Mapping[str, str] | None = None) -> str | None:
    if req.user_id:
        return req.user_id
    for name in SESSION_HEADERS:
        value = (headers or {}).get(name)
        if value and value != "[redacted]":
            return value
    cache_key = req.extras.get("prompt_cache_key") if isinstance(req.extras, dict) else None
    if isinstance(cache_key, str) and cache_key:
        return cache_key
    return None


def prefix_hash(req: ChatRequest) -> str | None:
    """A short hash of the system prompt and the first message's text, or None if both are empty."""
    head = req.system_text()[:PREFIX_CHARS]
    first = ""
    if req.messages:
        parts = req.messages[0].content
        first = "".join(p.text for p in parts if isinstance(p, Text))
    first = first[:PREFIX_CHARS]
    if not head and not first:
        return None
    digest = hashlib.blake2b(digest_size=8)
    digest.update(head.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(first.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def sticky_key(req: ChatRequest, session: str | None) -> str | None:
    """The key the sticky strategy ranks accounts by (hashing the prompt's head: asked for only when a
    model has more than one account to choose from)."""
    prefix = prefix_hash(req)
    if session and prefix:
        return f"{session}|{prefix}"
    return session or prefix


def affinity(req: ChatRequest, headers: Mapping[str, str] | None = None) -> Affinity | None:
    session = session_of(req, headers)
    key = sticky_key(req, session)
    return Affinity(key, session) if key else None
