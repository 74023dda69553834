"""Which fake wire answers a request: the route table, credential extraction and the models lists."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from . import fake_anthropic, fake_gemini, fake_openai, fake_responses
from .fake_script import Env, Reply

_GEMINI_PATH = re.compile(
    r"^/(v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$"
)


def route(method: str, path: str, headers: dict[str, str]) -> tuple[ModuleType, str, str | None] | None:
    path = path.rstrip("/") or "/"
    if method == "POST":
        if path == "/v1/messages":
            return fake_anthropic, "messages", None
        if path == "/v1/messages/count_tokens":
            return fake_anthropic, "count_tokens", None
        if path in ("/v1/chat/completions", "/api/v1/chat/completions"):
            return fake_openai, "chat", None
        if path == "/v1/responses":
            return fake_responses, "responses", None
        match = _GEMINI_PATH.match(path)
        if match:
            return fake_gemini, match.group(3), match.group(2)
        return None
    if method != "GET":
        return None
    for prefix, wire in (
        ("/v1beta/models", fake_gemini),
        ("/api/v1/models", fake_openai),
        ("/v1/models", fake_openai),
    ):
        if path == prefix or path.startswith(prefix + "/"):
            if wire is fake_openai and "anthropic-version" in headers:
                wire = fake_anthropic
            rest = path[len(prefix) + 1 :]
            return wire, "models", rest or None
    return None


def guess_wire(path: str, headers: dict[str, str]) -> ModuleType:
    if path.startswith("/v1beta") or "x-goog-api-key" in headers:
        return fake_gemini
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return fake_anthropic
    return fake_openai


def credential(headers: dict[str, str], query: dict[str, str]) -> tuple[str | None, bool]:
    """The account credential a request carries, and whether it came as a bearer token."""
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        if headers.get(name):
            return headers[name], False
    if query.get("key"):
        return query["key"], False
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), True
    return None, False


def stream_type(wire: ModuleType, extra: dict[str, Any]) -> str:
    if wire is fake_gemini and not extra.get("sse"):
        return fake_gemini.CONTENT_TYPE
    return str(wire.STREAM_CONTENT_TYPE)


def models_reply(wire: ModuleType, model_id: str | None, query: dict[str, str], env: Env) -> Reply:
    if model_id is None:
        body = wire.models_body(query)
    else:
        body = wire.model_body(model_id)
        if body is None:
            return wire.error_reply(404, env, f"model: {model_id} not found")
    return Reply.json(200, body, {wire.REQUEST_ID_HEADER: env.request_id} if wire.REQUEST_ID_HEADER else {})
