"""Chat messages both ways: a client's ``messages`` into internal turns, internal turns into an
upstream's ``messages`` (one ``tool`` message per result, attachments moved into user content)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ...codec import dumps_str
from ...model import (
    ChatRequest,
    Document,
    GatewayError,
    Image,
    Message,
    Opaque,
    Part,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
)
from ..arguments import arguments_text, parse_arguments
from ..base import data_url, expect_type, optional, parse_data_url, require
from .spec import NAME, THINKING_FAMILY
from .tools import upstream_call_id


def decode_messages(messages_raw: list[Any], req: ChatRequest) -> None:
    names_by_id: dict[str, str] = {}
    for i, m in enumerate(messages_raw):
        path = f"messages.{i}"
        expect_type(m, dict, path)
        role = m.get("role")
        if role in ("system", "developer"):
            text, cache = _text_of(m.get("content"), f"{path}.content")
            if text and req.messages:  # mid-conversation: a system turn at its position
                req.messages.append(Message("system", [Text(text, cache)]))
            elif text:
                req.system.append(Text(text, cache))
        elif role == "user":
            parts = _decode_user_content(m.get("content"), f"{path}.content")
            last = req.messages[-1] if req.messages else None
            if last is not None and _is_tool_results(last):
                last.content.extend(parts)  # a user turn right after tool results joins them
            elif parts:
                req.messages.append(Message("user", parts))
        elif role == "assistant":
            msg = _decode_assistant(m, path)
            for p in msg.content:
                if isinstance(p, ToolCall):
                    names_by_id[p.id] = p.name
            if msg.content:
                req.messages.append(msg)
        elif role == "tool":
            call_id = expect_type(m.get("tool_call_id"), str, f"{path}.tool_call_id")
            result = ToolResult(
                call_id=call_id,
                content=_decode_tool_content(m.get("content"), f"{path}.content"),
                name=names_by_id.get(call_id),
            )
            last = req.messages[-1] if req.messages else None
            if last is not None and _is_tool_results(last):
                at = sum(1 for p in last.content if isinstance(p, ToolResult))
                last.content.insert(at, result)  # results stay ahead of any text
            else:
                req.messages.append(Message("user", [result]))
        elif role == "function":
            raise GatewayError(
                "invalid_request",
                f"{path}.role: legacy 'function' messages are not supported; use tool",
                param=f"{path}.role",
            )
        else:
            raise GatewayError(
                "invalid_request",
                f"{path}.role: must be one of system, developer, user, assistant, tool",
                param=f"{path}.role",
            )


def _text_of(content: Any, path: str) -> tuple[str, dict[str, Any] | None]:
    """A system/developer/tool content (string or array of text parts) as one string."""
    if isinstance(content, str):
        return content, None
    expect_type(content, list, path)
    texts, cache = [], None
    for j, part in enumerate(content):
        expect_type(part, dict, f"{path}.{j}")
        require(
            part.get("type") == "text", f"{path}.{j}.type: only text parts are allowed here", f"{path}.{j}"
        )
        texts.append(expect_type(part.get("text"), str, f"{path}.{j}.text"))
        cache = part.get("cache_control") or cache
    return "\n".join(texts), cache


def _is_tool_results(m: Message) -> bool:
    return m.role == "user" and bool(m.content) and isinstance(m.content[0], ToolResult)


def _decode_user_content(content: Any, path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    expect_type(content, list, path)
    parts = [_decode_part(p, f"{path}.{j}") for j, p in enumerate(content)]
    return [p for p in parts if not (isinstance(p, Text) and not p.text)]


def _decode_tool_content(content: Any, path: str) -> list[Text | Image | Document]:
    if content is None or isinstance(content, str):
        return [Text(content)] if content else []
    expect_type(content, list, path)
    out: list[Text | Image | Document] = []
    for j, p in enumerate(content):
        part = _decode_part(p, f"{path}.{j}")
        require(isinstance(part, (Text, Image, Document)), f"{path}.{j}: unsupported part in a tool message")
        out.append(part)  # type: ignore[arg-type]
    return out


def _decode_part(p: Any, path: str) -> Part:
    expect_type(p, dict, path)
    kind = p.get("type")
    cc = p.get("cache_control")
    if kind == "text":
        return Text(expect_type(p.get("text"), str, f"{path}.text"), cc)
    if kind == "image_url":
        spec = p.get("image_url")
        if isinstance(spec, str):
            spec = {"url": spec}
        expect_type(spec, dict, f"{path}.image_url")
        url = expect_type(spec.get("url"), str, f"{path}.image_url.url")
        detail = optional(spec, "detail", str, f"{path}.image_url.detail")
        parsed = parse_data_url(url)
        if parsed is not None:
            return Image(media_type=parsed[0], data=parsed[1], detail=detail, cache_control=cc)
        require(
            url.startswith(("http://", "https://")), f"{path}.image_url.url: expected an http(s) or data URL"
        )
        return Image(url=url, detail=detail, cache_control=cc)
    if kind == "file":
        spec = expect_type(p.get("file"), dict, f"{path}.file")
        filename = optional(spec, "filename", str, f"{path}.file.filename")
        file_data = optional(spec, "file_data", str, f"{path}.file.file_data")
        if file_data is None:
            require(
                isinstance(spec.get("file_id"), str),
                f"{path}.file: needs file_data or file_id",
                f"{path}.file",
            )
            return Opaque(NAME, p)  # an OpenAI Files id: only an OpenAI upstream can resolve it
        parsed = parse_data_url(file_data)
        media_type, data = parsed if parsed else (_guess_media_type(filename), file_data)
        if media_type.startswith("text/"):
            text = _b64_text(data)
            if text is not None:
                return Document(
                    media_type="text/plain", text=text, filename=filename, title=filename, cache_control=cc
                )
        return Document(media_type=media_type, data=data, filename=filename, cache_control=cc)
    if kind == "refusal":
        return Text(expect_type(p.get("refusal"), str, f"{path}.refusal"))
    require(isinstance(kind, str), f"{path}.type: field required", f"{path}.type")
    return Opaque(NAME, p)  # input_audio and newer part types: an OpenAI upstream gets them as sent


def _guess_media_type(filename: str | None) -> str:
    ext = (filename or "").rsplit(".", 1)[-1].lower()
    return {"txt": "text/plain", "md": "text/markdown", "csv": "text/csv"}.get(ext, "application/pdf")


def _b64_text(data: str) -> str | None:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _decode_assistant(m: dict[str, Any], path: str) -> Message:
    parts: list[Part] = []
    reasoning = m.get("reasoning_content") or m.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Thinking(text=reasoning, family=THINKING_FAMILY))
    content = m.get("content")
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif content is not None:
        expect_type(content, list, f"{path}.content")
        for j, p in enumerate(content):
            part = _decode_part(p, f"{path}.content.{j}")
            require(
                isinstance(part, Text), f"{path}.content.{j}: assistant content takes text or refusal parts"
            )
            if part.text:  # type: ignore[union-attr]
                parts.append(part)
    refusal = m.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Text(refusal))
    for k, tc in enumerate(optional(m, "tool_calls", list, f"{path}.tool_calls") or []):
        parts.append(_decode_tool_call(tc, f"{path}.tool_calls.{k}"))
    return Message("assistant", parts)


def _decode_tool_call(tc: Any, path: str) -> ToolCall:
    expect_type(tc, dict, path)
    call_id = expect_type(tc.get("id"), str, f"{path}.id")
    if tc.get("type") == "custom":
        spec = expect_type(tc.get("custom"), dict, f"{path}.custom")
        text = optional(spec, "input", str, f"{path}.custom.input") or ""
        name = expect_type(spec.get("name"), str, f"{path}.custom.name")
        return ToolCall(id=call_id, name=name, arguments={"input": text}, raw_arguments=text, custom=True)
    fn = expect_type(tc.get("function"), dict, f"{path}.function")
    name = expect_type(fn.get("name"), str, f"{path}.function.name")
    args = fn.get("arguments")
    if isinstance(args, dict):  # lenient: some clients send the object itself
        return ToolCall(id=call_id, name=name, arguments=args, raw_arguments=dumps_str(args))
    raw = optional(fn, "arguments", str, f"{path}.function.arguments")
    return ToolCall(id=call_id, name=name, arguments=parse_arguments(raw), raw_arguments=raw)


def encode_assistant(m: Message, tool_name: Any, reasoning_history: str | None) -> dict[str, Any] | None:
    text = "".join(p.text for p in m.content if isinstance(p, Text))
    reasoning = "".join(p.text for p in m.content if isinstance(p, Thinking) and p.family == THINKING_FAMILY)
    calls = []
    for p in m.content:
        if not isinstance(p, ToolCall):
            continue
        if p.custom:
            value = p.arguments.get("input")
            call = {
                "type": "custom",
                "custom": {"name": tool_name(p.name), "input": value if isinstance(value, str) else ""},
            }
        else:
            call = {
                "type": "function",
                "function": {"name": tool_name(p.name), "arguments": arguments_text(p)},
            }
        calls.append({"id": upstream_call_id(p.id), **call})
    if not text.strip() and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text if text.strip() else None}
    if reasoning and reasoning_history:
        msg[reasoning_history] = reasoning
    if calls:
        msg["tool_calls"] = calls
    return msg


def encode_system(m: Message) -> dict[str, Any] | None:
    """A mid-conversation system turn as a ``system`` message at its position."""
    text = "\n\n".join(p.text for p in m.content if isinstance(p, Text) and p.text)
    return {"role": "system", "content": text} if text else None


def encode_user(m: Message) -> list[dict[str, Any]]:
    """One internal user turn: a ``tool`` message per result first, then one user message."""
    out: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []
    for p in m.content:
        if not isinstance(p, ToolResult):
            continue
        texts = []
        moved = []
        for c in p.content:
            if isinstance(c, Text):
                texts.append(c.text)
            elif isinstance(c, Document) and c.text is not None:
                texts.append(c.text)
            elif (block := _encode_part(c)) is not None:
                moved.append(block)
        content = "\n".join(texts)
        if p.is_error:
            content = f"Error: {content}" if content else "Error"
        out.append({"role": "tool", "tool_call_id": upstream_call_id(p.call_id), "content": content})
        if moved:  # Chat tool messages take text only: attachments follow as user content
            attachments.append(
                {"type": "text", "text": f"[attachments from tool result {upstream_call_id(p.call_id)}]"}
            )
            attachments.extend(moved)
    rest = [b for b in (_encode_part(p) for p in m.content if not isinstance(p, ToolResult)) if b is not None]
    parts = attachments + rest
    if not parts:
        return out
    if all(b["type"] == "text" for b in parts) and len(parts) == 1:
        out.append({"role": "user", "content": parts[0]["text"]})
    else:
        out.append({"role": "user", "content": parts})
    return out


def _encode_part(p: Part) -> dict[str, Any] | None:
    if isinstance(p, Text):
        return {"type": "text", "text": p.text} if p.text else None
    if isinstance(p, Image):
        url = data_url(p.media_type or "image/png", p.data) if p.data is not None else p.url
        spec: dict[str, Any] = {"url": url}
        if p.detail:
            spec["detail"] = p.detail
        return {"type": "image_url", "image_url": spec}
    if isinstance(p, Document):
        if p.text is not None:
            head = f"{p.title}\n\n" if p.title else ""
            return {"type": "text", "text": head + p.text}
        if p.data is None:
            raise GatewayError(
                "invalid_request",
                "documents by URL cannot be sent to a Chat Completions upstream; inline them as base64",
            )
        filename = p.filename or p.title or "document.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": data_url(p.media_type, p.data)}}
    if isinstance(p, Opaque) and p.family == NAME:
        return p.data
    return None  # thinking, tool calls and other families' blocks have no place in a user message
