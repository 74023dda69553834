"""Content blocks both ways: a client's blocks as internal parts, internal parts as an upstream's
blocks (None where Anthropic has no home for one)."""

from __future__ import annotations

from typing import Any

from ...model import Document, GatewayError, Image, Opaque, Part, Text, Thinking, ToolCall, ToolResult
from ..base import expect_type, require, uncarry
from .spec import NAME

SOURCE_TYPES = ("base64", "url", "text", "content")


def _decode_source(block: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The block's source; None for a source type the gateway does not translate (``file`` ids...)."""
    source = expect_type(block.get("source"), dict, f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        expect_type(source.get("data"), str, f"{path}.source.data")
    elif kind == "url":
        expect_type(source.get("url"), str, f"{path}.source.url")
    elif kind not in SOURCE_TYPES:
        require(isinstance(kind, str), f"{path}.source.type: field required", f"{path}.source.type")
        return None
    return source


def decode_block(b: Any, path: str) -> Part:
    kind = expect_type(b, dict, path).get("type")
    cc = b.get("cache_control")
    if kind == "text":
        return Text(expect_type(b.get("text"), str, f"{path}.text"), cc)
    src = _decode_source(b, path) if kind in ("image", "document") else None
    if kind in ("image", "document") and src is None:
        return Opaque(NAME, b)  # e.g. a Files API id: Anthropic resolves it, no other upstream can
    if kind == "image":
        assert src is not None
        return Image(
            media_type=src.get("media_type"), data=src.get("data"), url=src.get("url"), cache_control=cc
        )
    if kind == "document":
        assert src is not None
        if src.get("type") == "text":
            return Document(
                media_type="text/plain", text=src.get("data"), title=b.get("title"), cache_control=cc
            )
        if src.get("type") == "content":
            texts = [c.get("text", "") for c in src.get("content") or [] if isinstance(c, dict)]
            return Document(
                media_type="text/plain", text="\n".join(texts), title=b.get("title"), cache_control=cc
            )
        return Document(
            media_type=src.get("media_type") or "application/pdf",
            data=src.get("data"),
            url=src.get("url"),
            title=b.get("title"),
            cache_control=cc,
        )
    if kind == "tool_use":
        args = b.get("input")
        return ToolCall(
            id=expect_type(b.get("id"), str, f"{path}.id"),
            name=expect_type(b.get("name"), str, f"{path}.name"),
            arguments=args if isinstance(args, dict) else {},
            cache_control=cc,
        )
    if kind == "tool_result":
        content = b.get("content")
        parts: list[Text | Image | Document] = []
        if isinstance(content, str):
            parts = [Text(content)]
        elif isinstance(content, list):
            for j, c in enumerate(content):
                part = decode_block(c, f"{path}.content.{j}")
                if isinstance(part, (Text, Image, Document)):
                    parts.append(part)
        elif content is not None:
            raise GatewayError("invalid_request", f"{path}.content: expected string or array")
        return ToolResult(
            call_id=expect_type(b.get("tool_use_id"), str, f"{path}.tool_use_id"),
            content=parts,
            is_error=bool(b.get("is_error")),
            cache_control=cc,
        )
    if kind == "thinking":
        carried = uncarry(b.get("signature"))
        if carried is not None:  # reasoning another provider produced, handed back by the client
            family, mark, value = carried
            if mark == "r":
                return Thinking(redacted=value, family=family)
            return Thinking(text=b.get("thinking") or "", signature=value, family=family)
        return Thinking(text=b.get("thinking") or "", signature=b.get("signature"), family=NAME)
    if kind == "redacted_thinking":
        return Thinking(redacted=b.get("data"), family=NAME)
    require(isinstance(kind, str), f"{path}.type: field required", f"{path}.type")
    return Opaque(NAME, b)


def text_block(t: Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": t.text}
    if t.cache_control:
        block["cache_control"] = t.cache_control
    return block


def _source(media_type: str | None, data: str | None, url: str | None) -> dict[str, Any]:
    if data is not None:
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def encode_part(p: Part, *, for_history: bool = True) -> dict[str, Any] | None:
    """One internal part as an Anthropic content block (None when Anthropic has no home for it)."""
    block: dict[str, Any] | None
    if isinstance(p, Text):
        if not p.text.strip():
            return None  # Anthropic rejects empty text blocks
        return text_block(p)
    if isinstance(p, Image):
        block = {"type": "image", "source": _source(p.media_type, p.data, p.url)}
    elif isinstance(p, Document):
        if p.text is not None:
            block = {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": p.text},
            }
        else:
            block = {"type": "document", "source": _source(p.media_type, p.data, p.url)}
        if p.title:
            block["title"] = p.title
    elif isinstance(p, ToolCall):
        block = {"type": "tool_use", "id": p.id, "name": p.name, "input": p.arguments}
    elif isinstance(p, ToolResult):
        content = [b for b in (encode_part(c) for c in p.content) if b is not None]
        block = {"type": "tool_result", "tool_use_id": p.call_id, "content": content or ""}
        if p.is_error:
            block["is_error"] = True
    elif isinstance(p, Thinking):
        if p.family != NAME:
            return None  # signatures from other providers cannot be verified by Anthropic
        if p.redacted is not None:
            return {"type": "redacted_thinking", "data": p.redacted}
        if not p.signature:
            return None
        return {"type": "thinking", "thinking": p.text, "signature": p.signature}
    else:
        return p.data if p.family == NAME else None
    cc = getattr(p, "cache_control", None)
    if cc:
        block["cache_control"] = cc
    return block
