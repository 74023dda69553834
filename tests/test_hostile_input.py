"""Attacks refused: steering fields, malformed JSON, oversized bodies and headers, odd methods, injection
strings in every header and path parameter, cross-tenant access and the admin API without its token.

The rule everywhere: a hostile request gets a 4xx in the caller's own protocol, never a 500, and the
gateway keeps serving. Raw sockets are used where an HTTP client would refuse to send the bytes.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest

from gatewaytui.server import auth as auth_module

ADMIN = "admin-token-for-hostile-tests"
EVIL = "http://127.0.0.1:9/evil"
HOSTILE = {
    "api_base": EVIL,
    "base_url": EVIL,
    "api_key": "sk-evil-steer",
    "azure_endpoint": EVIL,
    "custom_llm_provider": "evil",
}
SCHEMA = {"type": "object", "properties": {"api_key": {"type": "string"}, "base_url": {"type": "string"}}}
EXPECTED_CLIENT_ERRORS = {400, 401, 402, 403, 404, 405, 409, 413, 415, 422, 429, 431}


def anthropic_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def chat_body(text: str = "hi", model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def responses_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-5",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}],
        **extra,
    }


def gemini_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
# (protocol, path, body factory)
ENDPOINTS = [
    ("anthropic", "/v1/messages", anthropic_body),
    ("openai_chat", "/v1/chat/completions", chat_body),
    ("openai_responses", "/v1/responses", responses_body),
    ("gemini", GEMINI, gemini_body),
]
ENDPOINT_IDS = [e[0] for e in ENDPOINTS]


def key_headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "x-goog-api-key": key}


def assert_protocol_error(protocol: str, response: httpx.Response, status: int) -> dict[str, Any]:
    """The error is JSON in the caller's protocol, with the status, and carries a request id."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if protocol == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]
    elif protocol == "gemini":
        assert body["error"]["code"] == status and body["error"]["status"] and body["error"]["message"]
    else:
        assert body["error"]["message"] and body["error"]["type"]
    assert response.headers.get("request-id", "").startswith("req_")
    return body


# ---------------------------------------------------------------- raw HTTP/1.1


async def raw_request(base_url: str, head: bytes, body: bytes = b"") -> tuple[int | None, bytes]:
    """Send bytes as they are; return (status or None if the server just closed, response bytes)."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), 10)
    except (ConnectionError, OSError):
        data = b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data[9:12]), data


def http_head(method: str, path: str, headers: dict[str, bytes], body_len: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"host: localhost", b"connection: close"]
    for name, value in headers.items():
        lines.append(name.encode() + b": " + value)
    if body_len is not None:
        lines.append(b"content-length: " + str(body_len).encode())
        lines.append(b"content-type: application/json")
    return b"\r\n".join(lines) + b"\r\n\r\n"


# ---------------------------------------------------------------- steering fields


def everywhere(node: Any, depth: int = 0) -> Any:
    """A copy of ``node`` with the steering fields planted in every object (tool schemas aside)."""
    if isinstance(node, dict):
        out = {
            k: (v if k in ("parameters", "input_schema") else everywhere(v, depth + 1))
            for k, v in node.items()
        }
        out.update(HOSTILE)
        return out
    if isinstance(node, list):
        return [everywhere(v, depth + 1) for v in node]
    return node


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


TOOLED = {
    "anthropic": lambda: anthropic_body(
        "hi",
        tools=[{"name": "lookup", "description": "d", "input_schema": SCHEMA}],
        metadata={"user_id": "u1"},
    ),
    "openai_chat": lambda: chat_body(
        "hi",
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}],
        metadata={"k": "v"},
    ),
    "openai_responses": lambda: responses_body(
        "hi", tools=[{"type": "function", "name": "lookup", "parameters": SCHEMA}], metadata={"k": "v"}
    ),
    "gemini": lambda: gemini_body(
        "hi",
        tools=[{"functionDeclarations": [{"name": "lookup", "parameters": SCHEMA}]}],
        generationConfig={"temperature": 0.5},
    ),
}
STEER_CASES = [
    ("anthropic", "/v1/messages", "claude-sonnet-4-5", "anthropic"),
    ("openai_chat", "/v1/chat/completions", "gpt-4o", "openai_chat"),
    ("openai_responses", "/v1/responses", "gpt-5", "openai_responses"),
    ("gemini", GEMINI, "gemini-2.5-flash", "gemini"),
    ("openai_chat", "/v1/chat/completions", "claude-sonnet-4-5", "anthropic"),
    ("anthropic", "/v1/messages", "gpt-4o", "openai_chat"),
    ("openai_responses", "/v1/responses", "claude-sonnet-4-5", "anthropic"),
    ("gemini", "/v1beta/models/gpt-4o:generateContent", "gpt-4o", "openai_chat"),
    ("gemini", "/v1beta/models/claude-sonnet-4-5:generateContent", "claude-sonnet-4-5", "anthropic"),
    ("openai_chat", "/v1/chat/completions", "gemini-2.5-flash", "gemini"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize(
    ("protocol", "path", "model", "upstream_wire"), STEER_CASES, ids=[f"{c[0]}->{c[3]}" for c in STEER_CASES]
)
async def test_steering_fields_never_reach_the_upstream(
    gateway, upstream, protocol, path, model, upstream_wire, stream
) -> None:
    key = await gateway.mint()
    body = TOOLED[protocol]()
    if protocol != "gemini":
        body["model"] = model
        body["stream"] = stream
    elif stream:
        path = path.replace(":generateContent", ":streamGenerateContent") + "?alt=sse"
    hostile = everywhere(body)
    sep = "&" if "?" in path else "?"
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.post(
            f"{path}{sep}api_base={quote(EVIL)}&base_url={quote(EVIL)}",
            json=hostile,
            headers=key_headers(key),
        )
    assert r.status_code == 200, r.text[:500]
    assert len(upstream.requests) == 1, "the request went to the configured upstream, once"
    seen = upstream.requests[0]
    assert b"evil" not in seen.body and "evil" not in str(seen.query) and "evil" not in str(seen.headers)
    leaked = [f"{p}.{k}" for p, k, _ in walk(seen.json) if k in HOSTILE and ".properties" not in p]
    assert not leaked, leaked
    # a tool parameter that happens to be called api_key is data, not a steering field: it is kept
    schemas = [v for p, k, v in walk(seen.json) if k == "properties" and isinstance(v, dict)]
    assert any("api_key" in s and "base_url" in s for s in schemas), seen.json
    credential = (
        seen.headers.get("x-api-key")
        or seen.headers.get("x-goog-api-key")
        or seen.headers.get("authorization", "")
    )
    assert "key-" in credential and key not in credential


async def test_steering_fields_spelled_with_escapes_never_reach_the_upstream(gateway, upstream) -> None:
    """A key spelled with JSON \\u escapes is the same key once parsed: it is stripped like a plain one
    (a body whose text names no hostile key plainly is not walked, so escapes must force the walk)."""
    key = await gateway.mint()
    api_base, base_url = "api\\u005fbase", "base\\u005furl"  # "api_base", "base_url"
    raw = (
        f'{{"model": "claude-sonnet-4-5", "max_tokens": 64, "{api_base}": "{EVIL}", "messages": '
        f'[{{"role": "user", "content": "hi", "{base_url}": "{EVIL}"}}]}}'
    ).encode()
    parsed = orjson.loads(raw)
    assert parsed["api_base"] == parsed["messages"][0]["base_url"] == EVIL
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.post(
            "/v1/messages", content=raw, headers={**key_headers(key), "content-type": "application/json"}
        )
    assert r.status_code == 200, r.text[:500]
    seen = upstream.requests[0]
    assert b"evil" not in seen.body, seen.body


# ---------------------------------------------------------------- size limits


SMALL_LIMIT = {"server": {"max_body_mb": 0.01}}  # 10 485 bytes


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("protocol", "path", "factory"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_oversized_body_is_413_in_the_callers_protocol(
    make_gateway, protocol, path, factory, chunked
) -> None:
    gw = await make_gateway(**SMALL_LIMIT)
    key = await gw.mint()
    payload = orjson.dumps(factory("x" * 20_000))

    async def pieces() -> Any:
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        content: Any = pieces() if chunked else payload
        r = await http.post(
            path, content=content, headers={**key_headers(key), "content-type": "application/json"}
        )
        assert_protocol_error(protocol, r, 413)
        ok = await http.post(path, json=factory("small"), headers=key_headers(key))
        assert ok.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages/count_tokens",
        "/v1beta/models/gemini-2.5-flash:countTokens",
        "/tenant/keys",
        "/accounts/add",
        "/admin/console/credit",
        "/stripe/webhook",
    ],
)
async def test_oversized_body_is_413_on_every_other_route(make_gateway, monkeypatch, path) -> None:
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test")
    gw = await make_gateway(**SMALL_LIMIT)
    key = await gw.mint()
    headers = {
        "authorization": f"Bearer {ADMIN if path.startswith(('/accounts', '/admin')) else key}",
        "x-goog-api-key": key,
    }
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.post(path, content=b'{"x": "' + b"y" * 20_000 + b'"}', headers=headers)
    assert r.status_code == 413, (r.status_code, r.text[:300])


async def test_giant_headers_are_refused_and_the_gateway_keeps_serving(gateway) -> None:
    key = await gateway.mint()
    body = orjson.dumps(anthropic_body())
    for headers in (
        {"x-api-key": key.encode(), "x-filler": b"a" * 100_000},
        {"x-api-key": key.encode(), **{f"x-h{i}": b"b" * 100 for i in range(2_000)}},
        {"x-api-key": b"k" * 100_000},
    ):
        status, data = await raw_request(
            gateway.base_url, http_head("POST", "/v1/messages", headers, len(body)), body
        )
        assert status is None or status in (400, 413, 431), data[:200]
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        for protocol, path, factory in ENDPOINTS:  # under h11's own bound: the gateway's check must catch it
            r = await http.post(path, json=factory(), headers={**key_headers(key), "x-filler": "f" * 40_000})
            assert_protocol_error(protocol, r, 431)
            r = await http.post(path, json=factory(), headers={**key_headers(key), "x-filler": "f" * 100_000})
            assert r.status_code == 431  # from the gateway, or from h11 when the block arrived in pieces
        assert (await http.get("/health")).status_code == 200
        r = await http.post(
            "/v1/messages", json=anthropic_body(), headers={"x-api-key": key, "x-filler": "f" * 8000}
        )
        assert r.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "FOO"])
@pytest.mark.parametrize(("protocol", "path", "factory"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_odd_methods_are_refused_in_the_callers_protocol(
    gateway, protocol, path, factory, method
) -> None:
    key = await gateway.mint()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.request(method, path, json=factory(), headers=key_headers(key))
    # Gemini's GET /v1beta/models/{name} reads a model; with a method after the name it is a 405 too
    assert_protocol_error(protocol, r, 405)


async def test_connect_and_malformed_request_lines_are_refused(gateway) -> None:
    for head in (
        b"CONNECT evil.example:443 HTTP/1.1\r\nhost: evil.example:443\r\nconnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"G\x00T /health HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\nzz\r\n",
    ):
        status, data = await raw_request(gateway.base_url, head)
        assert status is None or 400 <= status < 500, data[:200]
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        assert (await http.get("/health")).status_code == 200


# ---------------------------------------------------------------- malformed JSON


def nested(depth: int) -> bytes:
    return b'{"model": "m", "metadata": ' + b"[" * depth + b"]" * depth + b"}"


MALFORMED: dict[str, Any] = {
    "deep-65": lambda body: body[:-1] + b', "x": ' + b"[" * 65 + b"]" * 65 + b"}",
    "deep-100000": lambda body: body[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep-objects": lambda body: body[:-1] + b', "x": ' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}",
    "lone-surrogate-escape": lambda body: body.replace(b'"hi"', b'"hi \\ud800 there"'),
    "lone-low-surrogate": lambda body: body.replace(b'"hi"', b'"\\udc00"'),
    "surrogate-bytes": lambda body: body.replace(b'"hi"', b'"\xed\xa0\x80"'),
    "invalid-utf8": lambda body: body.replace(b'"hi"', b'"\xff\xfe"'),
    "nan": lambda body: body[:-1] + b', "temperature": NaN}',
    "infinity": lambda body: body[:-1] + b', "temperature": -Infinity}',
    "overflow-float": lambda body: body[:-1] + b', "temperature": 1e400}',
    "duplicate-keys": lambda body: body[:-1] + b', "x": 1, "x": 2}',
    "duplicate-model": lambda body: (
        body[:-1] + b', "model": "other"}' if b'"model"' in body else body[:-1] + b', "contents": []}'
    ),
    "trailing-garbage": lambda body: body + b" {}",
    "bom": lambda body: b"\xef\xbb\xbf" + body,
    "top-level-array": lambda body: b"[" + body + b"]",
    "top-level-string": lambda body: b'"hello"',
    "null": lambda body: b"null",
    "empty": lambda body: b"",
    "truncated": lambda body: body[: len(body) // 2],
}


@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize(("protocol", "path", "factory"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_malformed_json_is_400_in_the_callers_protocol(
    gateway, upstream, protocol, path, factory, case
) -> None:
    key = await gateway.mint()
    payload = MALFORMED[case](orjson.dumps(factory("hi")))
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        r = await http.post(
            path, content=payload, headers={**key_headers(key), "content-type": "application/json"}
        )
    assert_protocol_error(protocol, r, 400)
    assert not upstream.requests


async def test_bad_utf8_a_missing_field_and_no_tokens_are_named_plainly(gateway, upstream) -> None:
    key = await gateway.mint()
    headers = {**key_headers(key), "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        bad = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
        r = await http.post("/v1/chat/completions", content=bad, headers=headers)
        assert r.status_code == 400
        assert r.json()["error"]["message"] == "request body is not valid UTF-8; JSON must be"
        r = await http.post("/v1/chat/completions", json={"model": "gpt-4o"}, headers=headers)
        assert r.status_code == 400
        assert r.json()["error"]["message"] == "messages: expected array, but it is missing or null"
        r = await http.post(
            "/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 5}, headers=headers
        )
        assert (
            r.status_code == 400
            and r.json()["error"]["message"] == "messages: expected array, but it is missing or null"
        )
        # max_tokens 0: Anthropic's API refuses it, as the other protocols' decoders here already did
        zero = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 0,
            "messages": [{"role": "user", "content": "hi"}],
        }
        r = await http.post("/v1/messages", json=zero, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["message"] == "max_tokens: must be >= 1"
        assert r.json()["type"] == "error"
    assert not upstream.requests


HUGE_NUMBERS = [10**30, 2**64 - 1, 2**63, -(2**63), -1, 0, 1e308, -1e308, 5e-324, 2**53 + 1]
NUMBER_FIELDS = {
    "anthropic": ["max_tokens", "temperature", "top_k", "top_p"],
    "openai_chat": [
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "seed",
        "top_p",
        "presence_penalty",
    ],
    "openai_responses": ["max_output_tokens", "temperature", "top_p", "top_logprobs"],
    "gemini": ["maxOutputTokens", "temperature", "candidateCount", "topK", "topP", "seed"],
}


@pytest.mark.parametrize(
    ("protocol", "path", "model", "upstream_wire"), STEER_CASES, ids=[f"{c[0]}->{c[3]}" for c in STEER_CASES]
)
async def test_huge_and_negative_numbers_are_client_errors(
    gateway, protocol, path, model, upstream_wire
) -> None:
    """Numbers no upstream wire can carry (beyond 64 bits once made integers) are the client's error, not a 500."""
    key = await gateway.mint(usd=1000)
    failures = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        for number in HUGE_NUMBERS:
            for field in NUMBER_FIELDS[protocol]:
                if protocol == "gemini":
                    body = gemini_body("hi", generationConfig={field: number})
                else:
                    body = {**TOOLED[protocol](), "model": model, field: number}
                payload = json.dumps(body).encode()  # the standard library writes integers of any size
                r = await http.post(
                    path, content=payload, headers={**key_headers(key), "content-type": "application/json"}
                )
                if r.status_code >= 500:
                    failures.append((field, number, r.status_code, r.text[:200]))
                elif r.status_code != 200:
                    assert_protocol_error(protocol, r, r.status_code)
    assert not failures, failures


ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"a": 1}, "\x00", "𝔘" * 3]


def mutations(body: Any) -> Iterator[tuple[str, Any]]:
    """Every way of replacing one node of ``body`` with a value of another type."""

    def paths(node: Any, at: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield (*at, k)
                yield from paths(v, (*at, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield (*at, i)
                yield from paths(v, (*at, i))

    for where in paths(body, ()):
        for value in ODD_VALUES:
            mutated = copy.deepcopy(body)
            node = mutated
            for step in where[:-1]:
                node = node[step]
            node[where[-1]] = value
            yield "/".join(map(str, where)) + f"={value!r}"[:40], mutated


FULL = {
    "anthropic": anthropic_body(
        "hi",
        system=[{"type": "text", "text": "sys"}],
        temperature=0.5,
        stop_sequences=["x"],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        tools=[{"name": "t", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto"},
    ),
    "openai_chat": chat_body(
        "hi",
        temperature=0.5,
        stop=["x"],
        max_tokens=50,
        stream_options={"include_usage": True},
        tools=[{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}],
        response_format={"type": "text"},
    ),
    "openai_responses": responses_body(
        "hi",
        instructions="sys",
        max_output_tokens=50,
        reasoning={"effort": "low"},
        tools=[{"type": "function", "name": "t", "parameters": {"type": "object"}}],
    ),
    "gemini": gemini_body(
        "hi",
        systemInstruction={"parts": [{"text": "sys"}]},
        generationConfig={"temperature": 0.5, "maxOutputTokens": 50, "stopSequences": ["x"]},
        tools=[{"functionDeclarations": [{"name": "t", "parameters": {"type": "object"}}]}],
    ),
}


@pytest.mark.parametrize(("protocol", "path", "factory"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_wrong_types_anywhere_are_client_errors_never_500(gateway, protocol, path, factory) -> None:
    key = await gateway.mint(usd=100)
    failures = []
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        sem = asyncio.Semaphore(16)

        async def one(label: str, body: Any) -> None:
            if isinstance(body, dict):
                body.pop("stream", None)
            async with sem:
                r = await http.post(
                    path,
                    content=orjson.dumps(body),
                    headers={**key_headers(key), "content-type": "application/json"},
                )
            if r.status_code >= 500 or (r.status_code != 200 and r.status_code not in EXPECTED_CLIENT_ERRORS):
                failures.append((label, r.status_code, r.text[:200]))
            elif r.status_code != 200:
                try:
                    assert_protocol_error(protocol, r, r.status_code)
                except AssertionError as exc:
                    failures.append((label, r.status_code, str(exc)[:200]))

        await asyncio.gather(*(one(label, body) for label, body in mutations(FULL[protocol])))
    assert not failures, failures[:20]


# ---------------------------------------------------------------- injection strings in headers and paths


NASTY = [
    b"' OR '1'='1' --",
    b'"; DROP TABLE api_keys; --',
    b"a\x00b",
    b"z" * 10_240,
    b"%00%27",
    b"\xc3\x28\xff",
]
NASTY_IDS = ["sql-quote", "sql-drop", "nul", "10kb", "percent", "bad-utf8"]
HEADER_NAMES = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "x-request-id",
    "user-agent",
    "accept",
    "cookie",
    "x-admin-token",
    "stripe-signature",
    "openai-beta",
    "session_id",
    "x-forwarded-for",
]
KEY_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key"}
ROUTES = [
    ("POST", "/v1/messages", anthropic_body()),
    ("POST", "/v1/chat/completions", chat_body()),
    ("POST", "/v1/responses", responses_body()),
    ("POST", GEMINI, gemini_body()),
    ("POST", "/v1/messages/count_tokens", anthropic_body()),
    ("GET", "/v1/models", None),
    ("GET", "/v1beta/models", None),
    ("GET", "/tenant/keys", None),
    ("GET", "/tenant/credits", None),
    ("GET", "/accounts", None),
    ("GET", "/admin/snapshot", None),
    ("POST", "/stripe/webhook", {"id": "evt"}),
    ("GET", "/health", None),
]


@pytest.fixture
async def live(make_gateway, monkeypatch) -> Any:
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_secret")
    return await make_gateway()


def credential_for(path: str, key: str) -> tuple[str, bytes]:
    if path.startswith(("/accounts", "/admin", "/settings")):
        return "authorization", b"Bearer " + ADMIN.encode()
    return "x-goog-api-key" if "v1beta" in path else "x-api-key", key.encode()


@pytest.mark.parametrize("value", NASTY, ids=NASTY_IDS)
async def test_injection_strings_in_every_header_are_refused_cleanly(live, upstream, value) -> None:
    key = await live.mint()
    failures = []
    sem = asyncio.Semaphore(16)

    async def one(name: str, method: str, path: str, body: Any) -> None:
        headers: dict[str, bytes] = {}
        if name not in KEY_HEADERS:
            cred_name, cred = credential_for(path, key)
            headers[cred_name] = cred
        headers[name] = value
        payload = orjson.dumps(body) if body is not None else b""
        async with sem:
            status, data = await raw_request(
                live.base_url, http_head(method, path, headers, len(payload) if body else None), payload
            )
        if status is None or status >= 500:
            failures.append((name, path, status, data[:160]))
        elif name in KEY_HEADERS and status not in (400, 401) and path != "/health" and name != "api-key":
            failures.append((name, path, status, "a key header carrying junk must be 401"))

    await asyncio.gather(*(one(n, m, p, b) for n in HEADER_NAMES for m, p, b in ROUTES))
    assert not failures, failures[:20]
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        tenants = await http.get("/tenant/keys", headers={"x-api-key": key})
    assert tenants.status_code == 200 and len(tenants.json()["data"]) == 1


PATH_ROUTES = [
    ("POST", "/v1beta/models/{}:generateContent", gemini_body()),
    ("POST", "/v1/models/{}:streamGenerateContent", gemini_body()),
    ("GET", "/v1/models/{}", None),
    ("GET", "/v1beta/models/{}", None),
    ("GET", "/tenant/keys/{}", None),
    ("DELETE", "/tenant/keys/{}", None),
    ("GET", "/v1/usage/{}", None),
    ("GET", "/accounts/{}", None),
    ("PATCH", "/accounts/{}", {"priority": 1}),
    ("DELETE", "/accounts/{}", None),
    ("POST", "/accounts/{}/reset", None),
    ("POST", "/accounts/{}/enable", None),
    ("GET", "/accounts/oauth/{}", None),
    ("GET", "/admin/console/requests/{}", None),
    ("POST", "/admin/console/{}", {}),
    ("POST", "/{}/v1/messages", anthropic_body()),
]
PATH_VALUES = [
    "' OR 1=1 --",
    "1; DROP TABLE ledger",
    "a\x00b",
    "x" * 10_240,
    "../../etc/passwd",
    "%",
    "..",
    "🙂",
    " ",
]


async def test_injection_strings_in_every_path_parameter_are_404_or_400(live, upstream) -> None:
    key = await live.mint()
    failures = []
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as http:
        for method, template, body in PATH_ROUTES:
            for value in PATH_VALUES:
                path = template.format(
                    quote(value, safe="").replace(".", "%2E")
                )  # no client-side dot folding
                cred_name, cred = credential_for(path, key)
                r = await http.request(
                    method,
                    path,
                    content=orjson.dumps(body) if body is not None else None,
                    headers={cred_name: cred.decode(), "content-type": "application/json"},
                )
                if r.status_code not in (400, 404, 405):
                    failures.append((method, template, value[:20], r.status_code, r.text[:160]))
        ledger = await live.rt.read(lambda c: c.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])
    assert not failures, failures[:20]
    assert ledger == 1 and len(live.rt.pool.accounts) == 5  # nothing was dropped, removed or spent
    assert not upstream.requests


# ---------------------------------------------------------------- tenants and the admin API


async def test_a_tenant_reaches_only_its_own_keys_usage_and_requests(gateway) -> None:
    acme, globex = await gateway.mint("acme"), await gateway.mint("globex")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:

        def as_(k: str) -> dict[str, str]:
            return {"authorization": f"Bearer {k}"}

        mine = await http.post("/v1/messages", json=anthropic_body("acme here"), headers=as_(acme))
        theirs = await http.post("/v1/messages", json=anthropic_body("globex here"), headers=as_(globex))
        acme_req, globex_req = mine.headers["request-id"], theirs.headers["request-id"]
        acme_keys = (await http.get("/tenant/keys", headers=as_(acme))).json()["data"]
        globex_keys = (await http.get("/tenant/keys", headers=as_(globex))).json()["data"]
        assert len(acme_keys) == len(globex_keys) == 1 and acme_keys[0]["id"] != globex_keys[0]["id"]
        globex_key_id = globex_keys[0]["id"]

        assert (await http.get(f"/v1/usage/{acme_req}", headers=as_(acme))).status_code == 200
        for method, path in (
            ("GET", f"/v1/usage/{globex_req}"),
            ("GET", f"/tenant/keys/{globex_key_id}"),
            ("DELETE", f"/tenant/keys/{globex_key_id}"),
        ):
            r = await http.request(method, path, headers=as_(acme))
            missing = await http.request(method, path[:-4] + "zzzz", headers=as_(acme))
            assert r.status_code == missing.status_code == 404
            # "not yours" and "does not exist" read the same: no oracle for other tenants' ids
            assert r.json()["error"]["type"] == missing.json()["error"]["type"]
            assert r.json()["error"]["message"].replace(path.rsplit("/", 1)[1], "ID") == missing.json()[
                "error"
            ]["message"].replace(path[:-4].rsplit("/", 1)[1] + "zzzz", "ID")
        still = await http.post("/v1/messages", json=anthropic_body(), headers=as_(globex))
        assert still.status_code == 200, "acme's DELETE must not have revoked globex's key"
        usage = (await http.get("/tenant/usage", headers=as_(acme))).json()
        assert usage["total"]["requests"] == 1 and usage["tenant"] == "acme"
        credits = (await http.get("/tenant/credits", headers=as_(acme))).json()
        assert credits["tenant"] == "acme" and credits["balance_micro"] < 10_000_000


async def test_a_subscription_key_cannot_mint_wider_keys(gateway) -> None:
    sub = await gateway.mint("subco", usd=None, kind="subscription", models=["claude-sonnet-4-5"], rpm=10)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        h = {"authorization": f"Bearer {sub}"}
        for body in ({"kind": "payg"}, {"models": ["gpt-4o"]}, {"rpm": 11}):
            r = await http.post("/tenant/keys", json=body, headers=h)
            assert r.status_code == 403, (body, r.text)
        r = await http.post("/tenant/keys", json={"label": "child"}, headers=h)
        assert r.status_code == 201
        child = r.json()["key"]
        assert (
            child["kind"] == "subscription"
            and child["models"] == ["claude-sonnet-4-5"]
            and child["rpm"] == 10
        )
        r = await http.post("/v1/messages", json=anthropic_body(), headers=h)
        assert r.status_code == 403, "a subscription key may only call the tool routes"


def admin_rules(app_rules: list[Any]) -> list[tuple[str, str]]:
    out = []
    for rule in app_rules:
        if not rule.rule.startswith(("/accounts", "/settings", "/claude", "/admin")):
            continue
        path = (
            rule.rule.replace("<ref>", "anthropic-1")
            .replace("<state>", "st")
            .replace("<request_id>", "req_x")
        )
        path = path.replace("<name>", "credit")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path))
    return out


async def test_every_admin_route_needs_the_admin_token(make_gateway, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    apps: list[Any] = []
    from gatewaytui import host

    real = host.create_app
    monkeypatch.setattr(host, "create_app", lambda rt: apps.append(real(rt)) or apps[-1])
    gw = await make_gateway()
    tenant_key = await gw.mint()
    routes = admin_rules(list(apps[0].url_map.iter_rules()))
    assert len(routes) >= 30, routes
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        for method, path in routes:
            for headers in (
                {},
                {"authorization": "Bearer wrong"},
                {"authorization": f"Bearer {ADMIN}x"},
                {"authorization": f"Bearer {ADMIN[:-1]}"},
                {"x-admin-token": "wrong"},
                {"authorization": f"Bearer {tenant_key}"},
                {"authorization": f"Basic {ADMIN}"},
            ):
                r = await http.request(method, path, headers=headers, content=b"{}")
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
        # with the token, the same routes are reachable (GETs only: nothing is changed here)
        for method, path in routes:
            if method == "GET" and path != "/admin/events":
                r = await http.get(path, headers={"authorization": f"Bearer {ADMIN}"})
                assert r.status_code not in (401, 403), (path, r.status_code)
    monkeypatch.delenv("GATEWAYTUI_ADMIN_TOKEN")
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
        r = await http.get("/accounts", headers={"authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 403, "no token configured: the admin API is off (fail closed)"


async def test_admin_token_is_compared_in_constant_time(gateway, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    compared: list[tuple[bytes, bytes]] = []
    real = auth_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        assert (await http.get("/accounts", headers={"authorization": "Bearer nope"})).status_code == 401
        assert (await http.get("/accounts", headers={"authorization": f"Bearer {ADMIN}"})).status_code == 200
    assert len(compared) == 2 and compared[1] == (ADMIN.encode(), ADMIN.encode())
