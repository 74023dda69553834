"""Gemini contents both ways: a client's ``contents`` into internal turns (matching id-less
function responses to their calls), internal turns into contents and parts."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ...codec import dumps_str
from ...model import (
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
from ..base import expect_type, parse_data_url, require
from .fields import get_field, opt_field
from .signatures import carry_signature, thinking_from
from .spec import MINTED_ID_PREFIX, NAME, SKIP_SIGNATURE
from .tools import ToolNames


def decode_contents(contents: list[Any]) -> list[Message]:
    messages: list[Message] = []
    calls: list[tuple[str, str]] = []  # every functionCall so far: (id, name)
    last_turn: list[tuple[str, str]] = []  # those of the latest model content
    answered: set[str] = set()
    for ci, content in enumerate(contents):
        path = f"contents[{ci}]"
        expect_type(content, dict, path)
        role = content.get("role") or "user"
        require(
            role in ("user", "model", "function"),
            f"{path}.role: must be 'user' or 'model', got {role!r}",
            path,
        )
        raw_parts = expect_type(content.get("parts") or [], list, f"{path}.parts")
        parts: list[Part] = []
        turn: list[tuple[str, str]] = []
        for pi, raw in enumerate(raw_parts):
            for part in _decode_part(raw, f"{path}.parts[{pi}]", f"call_{ci}_{pi}"):
                if isinstance(part, ToolCall):
                    turn.append((part.id, part.name))
                elif isinstance(part, ToolResult):
                    part.call_id = part.call_id or _match_call(part.name or "", last_turn, calls, answered)
                    part.call_id = part.call_id or f"call_{ci}_{pi}"
                    answered.add(part.call_id)
                parts.append(part)
        if turn:
            calls.extend(turn)
            last_turn = turn
        messages.append(Message("assistant" if role == "model" else "user", parts))
    return messages


def _match_call(
    name: str, last_turn: list[tuple[str, str]], calls: list[tuple[str, str]], answered: set[str]
) -> str:
    """The call an id-less functionResponse answers: by name and position, latest model turn first."""
    for cid, cname in (*last_turn, *calls):
        if cname == name and cid not in answered:
            return cid
    for cid, _ in last_turn:
        if cid not in answered:
            return cid
    return ""


NON_PAYLOAD_KEYS = {
    "thought",
    "thoughtSignature",
    "thought_signature",
    "partMetadata",
    "part_metadata",
    "mediaResolution",
    "media_resolution",
}


def _decode_part(p: Any, path: str, minted_id: str) -> list[Part]:
    expect_type(p, dict, path)
    require(
        bool(p),
        f"{path}: empty part; give text, inlineData, fileData, functionCall or functionResponse",
        path,
    )
    sig = opt_field(p, "thoughtSignature", str, path)
    text = p.get("text")
    if text is not None:
        expect_type(text, str, f"{path}.text")
        if p.get("thought"):
            return [thinking_from(text, sig)]
        out: list[Part] = [thinking_from("", sig)] if sig else []
        return [*out, Text(text)] if text else out
    blob = get_field(p, "inlineData")
    if blob is not None:
        return [_decode_blob(expect_type(blob, dict, f"{path}.inlineData"), p, f"{path}.inlineData")]
    ref = get_field(p, "fileData")
    if ref is not None:
        expect_type(ref, dict, f"{path}.fileData")
        uri = expect_type(get_field(ref, "fileUri"), str, f"{path}.fileData.fileUri")
        mime = opt_field(ref, "mimeType", str, f"{path}.fileData") or ""
        if mime.startswith("image/"):
            return [Image(media_type=mime, url=uri)]
        if mime == "application/pdf":
            return [Document(url=uri)]
        return [Opaque(NAME, p)]
    call = get_field(p, "functionCall")
    if call is not None:
        expect_type(call, dict, f"{path}.functionCall")
        args = call.get("args")
        return [
            ToolCall(
                id=opt_field(call, "id", str, f"{path}.functionCall") or minted_id,
                name=expect_type(call.get("name"), str, f"{path}.functionCall.name"),
                arguments=expect_type(args, dict, f"{path}.functionCall.args") if args is not None else {},
                signature=sig,
            )
        ]
    resp = get_field(p, "functionResponse")
    if resp is not None:
        return [
            _decode_function_response(
                expect_type(resp, dict, f"{path}.functionResponse"), f"{path}.functionResponse"
            )
        ]
    if sig and not set(p) - NON_PAYLOAD_KEYS:
        return [thinking_from("", sig)]  # a signature-only part
    return [Opaque(NAME, p)]  # executableCode, codeExecutionResult, ...


def _decode_blob(blob: dict[str, Any], part: dict[str, Any], path: str) -> Part:
    mime = expect_type(get_field(blob, "mimeType"), str, f"{path}.mimeType")
    data = expect_type(blob.get("data"), str, f"{path}.data")
    if mime.startswith("image/"):
        return Image(media_type=mime, data=data)
    if mime == "application/pdf":
        return Document(data=data)
    if mime.startswith("text/"):
        try:
            text = base64.b64decode(data, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise GatewayError(
                "invalid_request", f"{path}.data: not base64-encoded UTF-8 text", param=path
            ) from None
        return Document(media_type="text/plain", text=text)
    return Opaque(NAME, part)


def _decode_function_response(fr: dict[str, Any], path: str) -> ToolResult:
    name = expect_type(fr.get("name"), str, f"{path}.name")
    response = fr.get("response")
    response = {} if response is None else expect_type(response, dict, f"{path}.response")
    is_error = "error" in response and "output" not in response
    if is_error:
        value = response["error"]
    elif "output" in response:
        value = response["output"]
    else:
        value = response  # any other object is the output, wholesale
    content: list[Text | Image | Document] = []
    if value not in ({}, None, ""):
        content.append(Text(value if isinstance(value, str) else dumps_str(value)))
    for i, raw in enumerate(expect_type(fr.get("parts") or [], list, f"{path}.parts")):
        for part in _decode_part(raw, f"{path}.parts[{i}]", ""):
            if isinstance(part, (Text, Image, Document)):
                content.append(part)
    return ToolResult(
        call_id=opt_field(fr, "id", str, path) or "", content=content, is_error=is_error, name=name
    )


_FETCHABLE = (
    "gs://",
    "https://generativelanguage.googleapis.com/",
    "https://www.youtube.com/",
    "https://youtu.be/",
)
_MAGIC = {
    "iVBOR": "image/png",
    "/9j/": "image/jpeg",
    "R0lGOD": "image/gif",
    "UklGR": "image/webp",
    "JVBER": "application/pdf",
}


def _media(p: Image | Document) -> dict[str, Any]:
    mime = p.media_type
    if p.data is not None:
        mime = mime or next(
            (m for k, m in _MAGIC.items() if p.data.startswith(k)), "application/octet-stream"
        )
        return {"inlineData": {"mimeType": mime, "data": p.data}}
    url = p.url or ""
    parsed = parse_data_url(url)
    if parsed is not None:
        return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
    if url.startswith(_FETCHABLE):
        ref = {"fileUri": url}
        if mime:
            ref = {"mimeType": mime, **ref}
        return {"fileData": ref}
    what = "image" if isinstance(p, Image) else "document"
    raise GatewayError(
        "invalid_request",
        f"Gemini cannot fetch {what} URLs such as {url[:80]!r}; send the {what} inline as base64 "
        "(a data: URL or base64 source) instead",
    )


def _content_part(p: Image | Document) -> dict[str, Any]:
    if isinstance(p, Document) and p.text is not None:
        return {"text": f"{p.title}\n\n{p.text}" if p.title else p.text}
    return _media(p)


def encode_contents(messages: list[Message], names: ToolNames) -> list[dict[str, Any]]:
    turns: list[tuple[str, list[Part]]] = []
    for m in messages:
        role = "model" if m.role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(m.content)
        else:
            turns.append((role, list(m.content)))
    results = {
        p.call_id: p for role, parts in turns if role == "user" for p in parts if isinstance(p, ToolResult)
    }
    call_ids = {p.id for role, parts in turns if role == "model" for p in parts if isinstance(p, ToolCall)}
    out: list[dict[str, Any]] = []
    for i, (role, parts) in enumerate(turns):
        if role == "model":
            calls = [p for p in parts if isinstance(p, ToolCall)]
            if calls and i == len(turns) - 1:
                break  # a trailing model turn whose calls were never answered
            gparts = encode_model_parts(parts, names, for_client=False)
            if gparts:
                out.append({"role": "model", "parts": gparts})
            if calls:  # all answers, in call order and equal in number, in one user content
                answers: list[dict[str, Any]] = []
                media: list[dict[str, Any]] = []
                for call in calls:
                    result = results.get(call.id)
                    text = result.text() if result else "No result was provided for this call."
                    key = "error" if result is None or result.is_error else "output"
                    answers.append({"functionResponse": {"name": names(call.name), "response": {key: text}}})
                    media.extend(
                        _content_part(c)
                        for c in (result.content if result else [])
                        if not isinstance(c, Text)
                    )
                out.append({"role": "user", "parts": answers + media})
            continue
        gparts = []
        for p in parts:
            if isinstance(p, ToolResult):
                if p.call_id not in call_ids:  # answers no call we know: keep its words as text
                    gparts.append({"text": f"[result of tool {p.name or p.call_id}]\n{p.text()}"})
            elif isinstance(p, Text):
                if p.text:
                    gparts.append({"text": p.text})
            elif isinstance(p, (Image, Document)):
                gparts.append(_content_part(p))
            elif isinstance(p, Opaque) and p.family == NAME:
                gparts.append(p.data)
        if not gparts:
            continue
        if out and out[-1]["role"] == "user":
            out[-1]["parts"].extend(gparts)
        else:
            out.append({"role": "user", "parts": gparts})
    return out


def encode_model_parts(
    parts: list[Part], names: ToolNames | None = None, *, for_client: bool, show_thoughts: bool = True
) -> list[dict[str, Any]]:
    """A model turn as Gemini parts. For an upstream: Gemini signatures only, the skip sentinel on an
    unsigned first call. For a client: call ids, other families' signatures in a carrier."""
    out: list[dict[str, Any]] = []
    pending: str | None = None  # a signature-only thinking part: rides on the next part
    first_call = True

    def flush() -> None:
        nonlocal pending
        if pending:
            out.append({"text": "", "thoughtSignature": pending})
        pending = None

    for p in parts:
        if isinstance(p, Thinking):
            foreign = p.family != NAME
            if foreign and not for_client:
                continue
            sig = (carry_signature(p) if p.signature or p.redacted else None) if foreign else p.signature
            if p.text and show_thoughts:
                flush()
                out.append({"text": p.text, "thought": True, **({"thoughtSignature": sig} if sig else {})})
            elif sig:
                flush()
                pending = sig
        elif isinstance(p, Text):
            if p.text or pending:
                out.append({"text": p.text, **({"thoughtSignature": pending} if pending else {})})
                pending = None
        elif isinstance(p, ToolCall):
            call: dict[str, Any] = {"name": names(p.name) if names else p.name, "args": p.arguments}
            if for_client and p.id and not p.id.startswith(MINTED_ID_PREFIX):
                call = {"id": p.id, **call}
            sig = p.signature
            if sig and pending:
                flush()
            sig = sig or pending
            pending = None
            if sig is None and first_call and not for_client:
                sig = SKIP_SIGNATURE
            first_call = False
            out.append({"functionCall": call, **({"thoughtSignature": sig} if sig else {})})
        elif isinstance(p, (Image, Document)):
            flush()
            out.append(_content_part(p))
        elif isinstance(p, Opaque) and p.family == NAME:
            flush()
            out.append(p.data)
    flush()
    return out
