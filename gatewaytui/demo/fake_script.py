"""What the fake upstream says: a wire-neutral view of a request, the test directives, and the reply plan.

Each ``fake_<wire>`` module reads its wire body into a ``Conversation``; ``plan_reply`` decides the answer
(text, thinking, tool calls, usage) with the deterministic rules documented in ``upstream``; the wire module
then renders the ``Plan`` in its own format. ``shape_stream`` applies the stream directives (pace, cut,
stall, in-band error) to the rendered frames.

This module deliberately does not use the gateway's own model or protocol modules: the fake is the
independent oracle those modules are tested against.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


class Invalid(Exception):
    """A request the real provider would reject with 400; rendered in the wire's error envelope."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Abort(Exception):
    """Raised inside a stream to break the HTTP response off mid-body (``[cut:N abort]``)."""


@dataclass(slots=True)
class ToolSpec:
    name: str
    schema: Any = None
    custom: bool = False  # a Responses ``custom`` (free-form input) tool


@dataclass(slots=True)
class Conversation:
    """The parts of a request that drive the scripted answer, whatever the wire."""

    model: str
    stream: bool = False
    text_chars: int = 0  # characters of all counted text (see the token formula)
    last_user_text: str = ""  # text of the most recent user message that has any text
    tool_results: list[str] | None = None  # set when the final turn carries tool results
    images: int = 0
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"  # "auto" | "none" | "required"
    forced_tool: str | None = None
    parallel: bool = True
    thinking: bool = False
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # wire-specific flags (summary, alt, ...)

    def count(self, text: Any) -> None:
        if isinstance(text, str):
            self.text_chars += len(text)


# ---------------------------------------------------------------------------------------------- directives

_DIRECTIVE = re.compile(
    r"\[(fault|cut|stall|pace|chunks|error-event|empty|usage|sleep)(?=[:\s\]])(?::([^\]\s]*))?([^\]]*)\]"
)
_USAGE_KEYS = {"in", "out", "cache_read", "cache_write", "cache_write_1h", "reasoning"}


@dataclass(slots=True)
class Fault:
    status: int
    retry_after: float | None = None
    retry_after_ms: int | None = None
    quota: bool = False
    times: int | None = None


@dataclass(slots=True)
class Directives:
    fault: Fault | None = None
    cut: int | None = None
    abort: bool = False
    stall: int | None = None
    pace_ms: int = 0
    chunks: int | None = None
    error_event: int | None = None
    empty: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    sleep_ms: int = 0


def strip_directives(text: str) -> str:
    return _DIRECTIVE.sub("", text)


def parse_directives(text: str) -> Directives:
    """Read every ``[name:arg opts]`` directive in ``text``; a malformed one raises ``Invalid``."""
    out = Directives()
    for match in _DIRECTIVE.finditer(text):
        name, arg, rest = match.group(1), match.group(2), match.group(3).split()
        opts = {name: value for name, _, value in (o.partition("=") for o in rest)}
        try:
            _apply(out, name, arg, opts)
        except (ValueError, TypeError):
            raise Invalid(f"fake upstream: malformed directive {match.group(0)!r}") from None
    return out


def _apply(out: Directives, name: str, arg: str | None, opts: dict[str, str]) -> None:
    if name == "fault":
        out.fault = Fault(
            status=int(arg or ""),
            retry_after=float(opts["retry-after"]) if "retry-after" in opts else None,
            retry_after_ms=int(opts["retry-after-ms"]) if "retry-after-ms" in opts else None,
            quota="quota" in opts,
            times=int(opts["times"]) if "times" in opts else None,
        )
    elif name == "cut":
        out.cut, out.abort = int(arg or ""), "abort" in opts
    elif name == "stall":
        out.stall = int(arg or 0)
    elif name == "pace":
        out.pace_ms = int(arg or "")
    elif name == "chunks":
        out.chunks = int(arg or "")
        if out.chunks < 1:
            raise ValueError
    elif name == "error-event":
        out.error_event = int(arg or 0)
    elif name == "empty":
        out.empty = True
    elif name == "usage":
        unknown = set(opts) - _USAGE_KEYS
        if unknown:
            raise ValueError(unknown)
        out.usage = {k: int(v) for k, v in opts.items()}
    elif name == "sleep":
        out.sleep_ms = int(arg or "")


# ---------------------------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Usage:
    """Token counts in Anthropic's terms: ``input`` excludes cache reads and writes; ``output`` includes
    ``reasoning``. Each wire maps these into its own fields."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0  # 5-minute cache writes
    cache_write_1h: int = 0
    reasoning: int = 0

    @property
    def cache_writes(self) -> int:
        return self.cache_write + self.cache_write_1h

    @property
    def prompt_total(self) -> int:
        """Everything the model read: OpenAI ``prompt_tokens`` / Gemini ``promptTokenCount``."""
        return self.input + self.cache_read + self.cache_writes


@dataclass(slots=True)
class Call:
    name: str
    arguments: Any
    custom: bool = False

    @property
    def json(self) -> str:
        """The arguments as the wire string (a custom tool's input is the string itself)."""
        if self.custom:
            return (
                self.arguments if isinstance(self.arguments, str) else orjson.dumps(self.arguments).decode()
            )
        return orjson.dumps(self.arguments).decode()

    def fragments(self) -> list[str]:
        """The argument string in at least three pieces (fewer only when it is shorter than three)."""
        text = self.json
        return split_even(text, max(3, math.ceil(len(text) / 10)))


@dataclass(slots=True)
class Plan:
    thinking: str | None
    text: str
    deltas: list[str]
    calls: list[Call]
    usage: Usage
    truncated: bool  # the answer hit the request's max tokens


def input_tokens(conv: Conversation) -> int:
    return max(1, math.ceil(conv.text_chars / 4))


def words(text: str | None) -> int:
    return len(text.split()) if text else 0


def plan_reply(conv: Conversation, directives: Directives) -> Plan:
    snippet = " ".join(strip_directives(conv.last_user_text).split())[:60]
    calls = _choose_calls(conv)
    if conv.tool_results is not None:
        text = "The tool returned: " + "; ".join(conv.tool_results)
    elif calls:
        text = "I will call " + " and ".join(c.name for c in calls) + "."
    else:
        seen = f"I see {conv.images} image{'s' if conv.images != 1 else ''}. " if conv.images else ""
        text = f"Hello from the fake upstream! {seen}You said: {snippet}"
    if directives.chunks and len(text) < directives.chunks:
        text += " more" * math.ceil((directives.chunks - len(text)) / 5)
    thinking = f"The user wrote: {snippet}. I should answer politely." if conv.thinking else None
    reasoning = words(thinking)
    output = max(1, words(text) + reasoning + 10 * len(calls))
    truncated = conv.max_tokens is not None and output > conv.max_tokens
    if truncated:
        limit = conv.max_tokens or 0
        calls = []
        text = " ".join(text.split()[: max(0, limit - reasoning)])
        output, reasoning = limit, min(reasoning, limit)
    u = directives.usage
    usage = Usage(
        input=u.get("in", input_tokens(conv)),
        output=u.get("out", output),
        cache_read=u.get("cache_read", 0),
        cache_write=u.get("cache_write", 0),
        cache_write_1h=u.get("cache_write_1h", 0),
        reasoning=u.get("reasoning", reasoning),
    )
    deltas = split_even(text, directives.chunks) if directives.chunks else word_pieces(text)
    return Plan(thinking, text, deltas, calls, usage, truncated)


def _choose_calls(conv: Conversation) -> list[Call]:
    if not conv.tools or conv.tool_choice == "none" or conv.tool_results is not None:
        return []
    lowered = conv.last_user_text.lower()
    if conv.tool_choice != "required" and conv.forced_tool is None and "tool" not in lowered:
        return []
    by_name = {t.name: t for t in conv.tools}
    if conv.forced_tool in by_name:
        chosen = [by_name[conv.forced_tool]]
    else:
        named = sorted(
            (lowered.find(t.name.lower()), i) for i, t in enumerate(conv.tools) if t.name.lower() in lowered
        )
        chosen = [conv.tools[i] for _, i in named] + [t for t in conv.tools if t.name.lower() not in lowered]
    want = 2 if conv.parallel and ("two tools" in lowered or "parallel" in lowered) else 1
    while len(chosen) < want:
        chosen.append(chosen[0])
    return [
        Call(t.name, "Paris" if t.custom else synthesise(t.schema), custom=t.custom) for t in chosen[:want]
    ]


def synthesise(schema: Any) -> Any:
    """A value matching a JSON schema (or Gemini's OpenAPI subset): strings "Paris", numbers 1,
    booleans true; an object gets its ``required`` properties, or all of them when none are required."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return synthesise(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower() if kind else ("object" if "properties" in schema else "string")
    if kind == "object":
        props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required")
        names = (
            [n for n in required if n in props] if isinstance(required, list) and required else list(props)
        )
        return {name: synthesise(props[name]) for name in names}
    if kind == "array":
        return [synthesise(schema.get("items"))]
    return {"string": "Paris", "number": 1, "integer": 1, "boolean": True, "null": None}.get(kind, "Paris")


def word_pieces(text: str) -> list[str]:
    """Stream deltas of ``text``: one per word, each keeping its trailing whitespace."""
    return re.findall(r"\S+\s*", text)


def split_even(text: str, n: int) -> list[str]:
    """``text`` in ``n`` consecutive non-empty pieces of near-equal length (fewer if it is shorter)."""
    n = max(1, min(n, len(text)))
    if not text:
        return []
    bounds = [round(i * len(text) / n) for i in range(n + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(n)]


# ---------------------------------------------------------------------------------------------- helpers


@dataclass(slots=True)
class Reply:
    """One HTTP answer: a whole ``body``, or a ``stream`` of byte chunks (already paced)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(obj))


@dataclass(slots=True)
class Env:
    """Per-request facts a wire module needs to render its answer."""

    seq: int  # request number on this upstream (1, 2, ...)
    now: float  # the upstream clock, seconds since the epoch
    ids: Ids
    key: str | None  # the credential the request carried
    bearer: bool  # it came as ``Authorization: Bearer`` (OAuth-style)
    key_requests: int  # requests this key has made so far, including this one
    request_id: str = ""  # the wire's request id (header and error body agree)
    quota: dict[str, Any] = field(default_factory=dict)  # unified 5h/7d utilisation for Anthropic headers


class Ids:
    """Deterministic, realistic-looking ids for one request (same request number, same ids)."""

    _ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self._n = 0

    def __call__(self, prefix: str, length: int = 24) -> str:
        self._n += 1
        digest = hashlib.sha512(f"{self.seq}/{self._n}/{prefix}".encode()).digest()  # 85 base62 digits
        number = int.from_bytes(digest, "big")
        chars = []
        for _ in range(length):
            number, rem = divmod(number, 62)
            chars.append(self._ALPHABET[rem])
        return prefix + "".join(chars)

    def hex(self, prefix: str, length: int = 32) -> str:
        self._n += 1
        return prefix + hashlib.sha256(f"{self.seq}/{self._n}/{prefix}".encode()).hexdigest()[:length]


def retry_headers(retry_after: float | None, retry_after_ms: int | None) -> dict[str, str]:
    out = {}
    if retry_after is not None:
        out["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        out["retry-after-ms"] = str(retry_after_ms)
    return out


def fake_signature(kind: str, text: str) -> str:
    """A base64 blob standing in for a provider's opaque signature (deterministic in ``text``)."""
    return base64.b64encode(b"fake-" + kind.encode() + b":" + hashlib.sha256(text.encode()).digest()).decode()


def list_field(body: dict[str, Any], key: str) -> list[Any]:
    """An optional array field; anything but an array (or null) is a 400."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{key}: Input should be a valid list")
    return value


def text_of(value: Any, text_types: tuple[str, ...] = ("text",)) -> str:
    """Text of a string, or of the text parts of a content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            p.get("text") or ""
            for p in value
            if isinstance(p, dict) and p.get("type") in text_types and isinstance(p.get("text"), str)
        )
    return ""


async def shape_stream(
    frames: list[bytes], d: Directives, error_frame: Callable[[int], bytes]
) -> AsyncGenerator[bytes, None]:
    """Yield the rendered frames, applying ``[empty]``, ``[error-event:N]``, ``[cut:N]``, ``[stall:N]`` and
    ``[pace:MS]``. A stall waits until the client goes away (the task is cancelled)."""
    if d.empty:
        frames = []
    if d.error_event is not None:
        at = min(d.error_event, len(frames))
        frames = frames[:at] + [error_frame(at)]
    if d.cut is not None:
        frames = frames[: d.cut]
    for i, frame in enumerate(frames):
        if d.stall is not None and i >= d.stall:
            break
        if i and d.pace_ms:
            await asyncio.sleep(d.pace_ms / 1000)
        yield frame
    if d.stall is not None:
        await asyncio.Event().wait()
    if d.abort:
        raise Abort
