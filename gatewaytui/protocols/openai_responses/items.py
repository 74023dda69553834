"""Conversation items both ways: a client's ``input`` into internal turns, internal turns into an
upstream's ``input``; and reasoning carried through ``encrypted_content``."""

from __future__ import annotations

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
from ..arguments import arguments_object
from ..base import carry as carry_foreign
from ..base import data_url, expect_type, optional, parse_data_url, require
from ..base import uncarry as uncarry_foreign
from .spec import FAMILY, NAME, STATELESS


class _History:
    """Builds internal messages from Responses items, merging what belongs to one turn."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def _last(self, role: str) -> Message:
        if not self.messages or self.messages[-1].role != role:
            self.messages.append(Message(role, []))  # type: ignore[arg-type]
        return self.messages[-1]

    def assistant(self, part: Part) -> None:
        self._last("assistant").content.append(part)

    def user(self, parts: list[Part]) -> None:
        self._last("user").content.extend(parts)

    def system(self, texts: list[Text]) -> None:
        """Instructions given mid-conversation: a system turn at their position."""
        if texts:
            self._last("system").content.extend(texts)

    def result(self, part: Part) -> None:
        """Tool results go after earlier results and before any other content of the user turn."""
        content = self._last("user").content
        at = 0
        while at < len(content) and isinstance(content[at], ToolResult):
            at += 1
        content.insert(at, part)


def decode_input(items: list[Any], system: list[Text]) -> list[Message]:
    history = _History()
    for i, item in enumerate(items):
        path = f"input.{i}"
        expect_type(item, dict, path)
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                texts = _system_texts(item.get("content"), path)
                if history.messages:
                    history.system(texts)
                else:  # before the conversation: the request's leading instructions
                    system.extend(texts)
            elif role == "user":
                history.user(_decode_content(item.get("content"), path, assistant=False))
            elif role == "assistant":
                for part in _decode_content(item.get("content"), path, assistant=True):
                    history.assistant(part)
            else:
                raise GatewayError(
                    "invalid_request",
                    f"{path}.role: must be user, assistant, system or developer",
                    param=f"{path}.role",
                )
        elif kind == "function_call":
            history.assistant(_decode_call(item, path))
        elif kind == "custom_tool_call":
            call_input = item.get("input")
            history.assistant(
                ToolCall(
                    id=expect_type(item.get("call_id"), str, f"{path}.call_id"),
                    name=expect_type(item.get("name"), str, f"{path}.name"),
                    arguments={"input": expect_type(call_input, str, f"{path}.input")},
                    custom=True,
                )
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            history.result(_decode_output(item, path))
        elif kind == "reasoning":
            history.assistant(_decode_reasoning_item(item, path))
        elif kind == "item_reference":
            raise GatewayError(
                "invalid_request",
                f"{STATELESS}; {path}: item_reference is not supported, send the item itself",
                param=path,
            )
        else:
            require(isinstance(kind, str), f"{path}.type: expected string", f"{path}.type")
            # local_shell_call, web_search_call, compaction, ...: only a Responses upstream understands them
            opaque = Opaque(NAME, {"item": item})
            if kind.endswith("_output"):
                history.user([opaque])
            else:
                history.assistant(opaque)
    return history.messages


def _system_texts(content: Any, path: str) -> list[Text]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    expect_type(content, list, f"{path}.content")
    out = []
    for j, part in enumerate(content):
        expect_type(part, dict, f"{path}.content.{j}")
        require(
            part.get("type") in ("input_text", "text", "output_text"),
            f"{path}.content.{j}.type: system and developer messages take text only",
            f"{path}.content.{j}.type",
        )
        out.append(Text(expect_type(part.get("text"), str, f"{path}.content.{j}.text")))
    return out


def _decode_content(content: Any, path: str, *, assistant: bool) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    expect_type(content, list, f"{path}.content")
    return [_decode_part(p, f"{path}.content.{j}", assistant=assistant) for j, p in enumerate(content)]


def _decode_part(part: Any, path: str, *, assistant: bool = False) -> Part:
    expect_type(part, dict, path)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return Text(expect_type(part.get("text"), str, f"{path}.text"))
    if kind == "refusal" and assistant:
        return Text(expect_type(part.get("refusal"), str, f"{path}.refusal"))
    if kind == "input_image":
        url = part.get("image_url")
        if url is None:
            require(part.get("file_id") is not None, f"{path}: input_image needs image_url or file_id", path)
            return Opaque(NAME, {"part": part})  # an OpenAI Files reference
        expect_type(url, str, f"{path}.image_url")
        detail = optional(part, "detail", str, f"{path}.detail")
        parsed = parse_data_url(url)
        if parsed:
            return Image(media_type=parsed[0], data=parsed[1], detail=detail)
        return Image(url=url, detail=detail)
    if kind == "input_file":
        filename = optional(part, "filename", str, f"{path}.filename")
        file_data = optional(part, "file_data", str, f"{path}.file_data")
        if file_data is not None:
            parsed = parse_data_url(file_data)
            media_type, data = parsed if parsed else (_media_type_for(filename), file_data)
            return Document(media_type=media_type, data=data, filename=filename, title=filename)
        file_url = optional(part, "file_url", str, f"{path}.file_url")
        if file_url is not None:
            return Document(
                media_type=_media_type_for(filename), url=file_url, filename=filename, title=filename
            )
        require(
            part.get("file_id") is not None, f"{path}: input_file needs file_data, file_url or file_id", path
        )
        return Opaque(NAME, {"part": part})
    require(isinstance(kind, str), f"{path}.type: expected string", f"{path}.type")
    return Opaque(NAME, {"part": part})  # input_audio and newer part types: passthrough only


def _media_type_for(filename: str | None) -> str:
    name = (filename or "").lower()
    if name.endswith((".txt", ".md")):
        return "text/plain"
    return "application/pdf"


def _decode_call(item: dict[str, Any], path: str) -> ToolCall:
    arguments = item.get("arguments")
    if arguments is None:
        arguments = ""
    expect_type(arguments, str, f"{path}.arguments")
    return ToolCall(
        id=expect_type(item.get("call_id"), str, f"{path}.call_id"),
        name=expect_type(item.get("name"), str, f"{path}.name"),
        arguments=arguments_object(arguments),
        raw_arguments=arguments,
    )


def _decode_output(item: dict[str, Any], path: str) -> ToolResult:
    call_id = expect_type(item.get("call_id"), str, f"{path}.call_id")
    output = item.get("output")
    is_error = False
    parts: list[Text | Image | Document] = []
    if isinstance(output, dict) and isinstance(output.get("content"), str):  # {content, success} form
        output, is_error = output["content"], output.get("success") is False
    if isinstance(output, str):
        parts = [Text(output)] if output else []
    elif isinstance(output, list):
        for j, p in enumerate(output):
            part = _decode_part(p, f"{path}.output.{j}")
            if not isinstance(part, (Text, Image, Document)):
                raise GatewayError(
                    "invalid_request",
                    f"{path}.output.{j}: tool output parts must be input_text, input_image or input_file",
                    param=f"{path}.output.{j}",
                )
            parts.append(part)
    elif output is not None:
        raise GatewayError(
            "invalid_request", f"{path}.output: expected string or array", param=f"{path}.output"
        )
    return ToolResult(call_id=call_id, content=parts, is_error=is_error)


def _decode_reasoning_item(item: dict[str, Any], path: str) -> Thinking:
    texts = []
    for j, s in enumerate(optional(item, "summary", list, f"{path}.summary") or []):
        expect_type(s, dict, f"{path}.summary.{j}")
        texts.append(expect_type(s.get("text", ""), str, f"{path}.summary.{j}.text"))
    encrypted = optional(item, "encrypted_content", str, f"{path}.encrypted_content")
    return uncarry("\n\n".join(texts), encrypted)


def carry(t: Thinking) -> str | None:
    """The ``encrypted_content`` that brings this reasoning back to whoever can verify it."""
    if t.family == FAMILY or t.family is None:
        return t.signature or None
    return carry_foreign(t.family, t.signature, t.redacted)


def uncarry(text: str, encrypted: str | None) -> Thinking:
    """Inverse of ``carry``: a replayed reasoning item as internal thinking."""
    carried = uncarry_foreign(encrypted)
    if carried is None:
        return Thinking(text=text, signature=encrypted or None, family=FAMILY)
    family, mark, value = carried
    if mark == "r":
        return Thinking(redacted=value, family=family)
    return Thinking(text=text, signature=value, family=family)


def call_item(call: ToolCall, item_id: str | None = None, *, custom: bool | None = None) -> dict[str, Any]:
    """A tool call as an output item (with its item id) or, without one, as an input item."""
    custom = call.custom if custom is None else custom
    item: dict[str, Any] = {"type": "custom_tool_call" if custom else "function_call"}
    if item_id is not None:
        item["id"] = item_id
    item.update(call_id=call.id, name=call.name)
    if custom:
        value = call.arguments.get("input")
        item["input"] = value if isinstance(value, str) else dumps_str(call.arguments)
        return item
    item["arguments"] = call.raw_arguments if call.raw_arguments else dumps_str(call.arguments)
    if item_id is not None:
        item["status"] = "completed"
    return item


def encode_content_part(p: Part) -> dict[str, Any] | None:
    """A user-side part as a Responses input content part (None when it has no home here)."""
    if isinstance(p, Text):
        return {"type": "input_text", "text": p.text}
    if isinstance(p, Image):
        url = data_url(p.media_type or "image/png", p.data) if p.data is not None else p.url
        return {"type": "input_image", "image_url": url, "detail": p.detail or "auto"}
    if isinstance(p, Document):
        if p.text is not None:
            return {"type": "input_text", "text": f"{p.title}\n\n{p.text}" if p.title else p.text}
        if p.data is not None:
            name = (
                p.filename or p.title or ("document.pdf" if p.media_type == "application/pdf" else "document")
            )
            return {"type": "input_file", "filename": name, "file_data": data_url(p.media_type, p.data)}
        return {"type": "input_file", "file_url": p.url}
    if isinstance(p, Opaque) and p.family == NAME and "part" in p.data:
        return p.data["part"]
    return None


def _encode_output(r: ToolResult, custom_calls: set[str]) -> dict[str, Any]:
    kind = "custom_tool_call_output" if r.call_id in custom_calls else "function_call_output"
    output: Any
    if all(isinstance(c, Text) for c in r.content):
        output = r.text()
        if r.is_error:
            output = f"Error: {output}" if output else "Error"
    else:
        output = [b for b in (encode_content_part(c) for c in r.content) if b is not None]
        if r.is_error:
            output.insert(0, {"type": "input_text", "text": "Error:"})
    return {"type": kind, "call_id": r.call_id, "output": output}


def encode_input(req: ChatRequest, custom_tools: set[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    custom_calls: set[str] = set()  # call ids whose results go back as custom_tool_call_output
    for m in req.messages:
        pending: list[dict[str, Any]] = []  # content parts of the message item being built
        for p in m.content:
            if isinstance(p, (Text, Image, Document)) or (isinstance(p, Opaque) and "part" in p.data):
                part = encode_content_part(p)
                if m.role == "assistant" and isinstance(p, Text):
                    part = {"type": "output_text", "text": p.text} if p.text else None
                if part is not None:
                    pending.append(part)
                continue
            _flush(items, m.role, pending)
            if isinstance(p, ToolResult):
                items.append(_encode_output(p, custom_calls))
            elif isinstance(p, ToolCall):
                custom = p.custom or p.name in custom_tools
                if custom:
                    custom_calls.add(p.id)
                items.append(call_item(p, custom=custom))
            elif isinstance(p, Thinking):
                if p.family == FAMILY and p.signature:  # other families cannot be verified by OpenAI
                    summary = [{"type": "summary_text", "text": p.text}] if p.text else []
                    items.append({"type": "reasoning", "summary": summary, "encrypted_content": p.signature})
            elif isinstance(p, Opaque) and p.family == NAME and "item" in p.data:
                items.append(p.data["item"])
        _flush(items, m.role, pending)
    return items


def _flush(items: list[dict[str, Any]], role: str, pending: list[dict[str, Any]]) -> None:
    if pending:  # a mid-conversation system turn goes as a developer message at its position
        role = "developer" if role == "system" else role
        items.append({"type": "message", "role": role, "content": list(pending)})
        pending.clear()
