"""Secrets never leak: plant known upstream credentials and tenant keys, drive every error path, then grep
everything the gateway produced — responses, logs (captured and written to a file), the database file with
its WAL, and every event published on the bus. The canaries must not appear anywhere.

Upstream keys must be at rest only encrypted (``enc1:``), tenant keys only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import DEFAULT_MODELS, until

from gatewaytui.ops import accounts as account_ops
from gatewaytui.pool.enroll import enroll

UPSTREAM = {
    "anthropic": "sk-ant-CANARY0anthropic0Zq81",
    "openai": "sk-proj-CANARY1openai1Wm27",
    "gemini": "AIzaCANARY2gemini2Lp55",
    "openrouter": "sk-or-CANARY3openrouter3Tt09",
    "openai-compatible": "sk-CANARY4compat4Hh44",
}
OAUTH_TOKEN = "oauth-CANARY5access5Qq31"
OAUTH_REFRESH = "oauth-CANARY6refresh6Rr86"
ADDED_KEY = "sk-ant-CANARY7added7Vv12"
ADMIN_TOKEN = "admin-CANARY8token8Bb77"
ALL_UPSTREAM = [*UPSTREAM.values(), OAUTH_TOKEN, OAUTH_REFRESH, ADDED_KEY]


def accounts(base_url: str) -> list[dict[str, Any]]:
    paths = {"anthropic": "", "openai": "", "gemini": "", "openrouter": "/api", "openai-compatible": "/v1"}
    return [
        {"label": f"{p}-1", "provider": p, "base_url": base_url + paths[p], "api_key": key}
        for p, key in UPSTREAM.items()
    ]


def echo(key: str) -> dict[str, Any]:
    """An upstream error body that repeats the credential it was sent (some providers do)."""
    text = f"Incorrect API key provided: {key}. You can find your API key at https://example.invalid/{key}"
    return {
        "type": "error",
        "error": {"type": "authentication_error", "message": text, "code": key},
        "detail": key,
        "request_id": key,
    }


INBAND_ANTHROPIC = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
    b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"invalid key KEY"}}\n\n'
)
INBAND_OPENAI = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"error":{"message":"invalid key KEY","type":"server_error","param":null,"code":"KEY"}}\n\n'
)
INBAND_GEMINI = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"index":0}]}\r\n\r\n'
    b'data: {"error":{"code":500,"message":"invalid key KEY","status":"INTERNAL"}}\r\n\r\n'
)


class Recorder:
    """Everything that went back to clients."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def add(self, r: httpx.Response) -> httpx.Response:
        self.blobs.append(r.content)
        self.blobs.append(repr(sorted(r.headers.multi_items())).encode())
        return r


@pytest.fixture
def logfile(tmp_path: Path) -> Any:
    path = tmp_path / "gateway.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    root.setLevel(old)
    handler.close()


def leaks(blob: bytes, secrets: list[str]) -> list[str]:
    found = []
    for s in secrets:
        for form in (s.encode(), s.encode().hex().encode()):
            at = blob.find(form)
            if at >= 0:
                found.append(f"{s} in ...{blob[max(0, at - 150) : at + 60]!r}")
    return found


@pytest.mark.parametrize("scenario", ["traffic", "probes"])
async def test_canaries_never_leak(
    make_gateway, upstream, tmp_path, monkeypatch, caplog, logfile, scenario
) -> None:
    caplog.set_level(logging.DEBUG)
    for noisy in (
        "httpx",
        "httpcore",
    ):  # as the CLI sets them; at DEBUG they would log this test's own client
        monkeypatch.setattr(logging.getLogger(noisy), "level", logging.WARNING)
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_canary_test")
    monkeypatch.delenv("GATEWAYTUI_SECRET_KEY", raising=False)  # the vault key goes to a 0600 key file
    db = tmp_path / "canary.db"
    gw = await make_gateway(
        accounts=accounts(upstream.base_url),
        db=str(db),
        models=DEFAULT_MODELS,
        server={
            "stream_idle_timeout": 0.3,
            "keepalive_interval": 0.05,
            "first_byte_timeout": 0.5,
            "failover_deadline": 3,
        },
    )
    rt = gw.rt
    sub = rt.bus.subscribe(maxsize=100_000)
    out = Recorder()

    key_file = db.with_suffix(".key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    tenant_key = await gw.mint("acme", usd=5)
    other_key = await gw.mint("globex", usd=5)
    tenant_secrets = [tenant_key, other_key]
    added = await account_ops.add_account(
        rt, provider="anthropic", label="added-1", api_key=ADDED_KEY, base_url=upstream.base_url, priority=-5
    )
    oauth = await enroll(  # as a completed OAuth sign-in stores its account
        rt,
        provider="openai",
        label="oauth-1",
        base_url=upstream.base_url,
        priority=-5,
        oauth={"access_token": OAUTH_TOKEN, "refresh_token": OAUTH_REFRESH, "expires_at": 4_102_444_800},
    )
    assert ADDED_KEY not in orjson.dumps(added).decode() and OAUTH_TOKEN not in orjson.dumps(oauth).decode()

    def me(k: str = tenant_key) -> dict[str, str]:
        return {"authorization": f"Bearer {k}", "x-goog-api-key": k}

    admin_h = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    bodies = {
        "/v1/messages": lambda t, m="claude-sonnet-4-5", s=False: {
            "model": m,
            "max_tokens": 64,
            "stream": s,
            "messages": [{"role": "user", "content": t}],
        },
        "/v1/chat/completions": lambda t, m="gpt-4o", s=False: {
            "model": m,
            "stream": s,
            "messages": [{"role": "user", "content": t}],
        },
        "/v1/responses": lambda t, m="gpt-5", s=False: {"model": m, "stream": s, "input": t},
    }

    async def each_protocol(
        http: httpx.AsyncClient, text: str, *, stream: bool = False, key: str = tenant_key
    ) -> None:
        for path, body in bodies.items():
            for model in (
                "claude-sonnet-4-5",
                "gpt-4o",
                "gpt-5",
                "gemini-2.5-flash",
                "kimi-k2",
                "local-llama",
            ):
                out.add(await http.post(path, json=body(text, model, stream), headers=me(key)))
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        for model in ("gemini-2.5-flash", "claude-sonnet-4-5"):
            out.add(
                await http.post(
                    f"/v1beta/models/{model}:{verb}",
                    json={"contents": [{"role": "user", "parts": [{"text": text}]}]},
                    headers=me(key),
                )
            )

    async def heal() -> None:
        upstream.clear_faults()
        for acc in list(rt.pool.accounts.values()):
            rt.pool.reset(acc)
            if not acc.enabled:
                await account_ops.set_account_enabled(rt, acc.id, True)

    async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as http:
        if scenario == "probes":
            # the operator probing accounts that answer with an echo
            for key in ALL_UPSTREAM:
                upstream.fail_key(key, status=401, body=echo(key))
            for label in ("anthropic-1", "openai-1", "gemini-1", "added-1", "oauth-1"):
                out.add(await http.post(f"/accounts/{label}/refresh", headers=admin_h))
            out.add(await http.get("/accounts/quota/all", headers=admin_h))
            await heal()
        else:
            # the happy path, streamed and not, in every protocol against every provider
            await each_protocol(http, "hello")
            await each_protocol(http, "hello", stream=True)
            # upstream errors that echo the credential: auth, rate limit, server error, bad request
            for status in (401, 403, 429, 500, 400, 404, 529):
                for key in ALL_UPSTREAM:
                    upstream.fail_key(key, status=status, body=echo(key), headers={"x-echo": key})
                await each_protocol(http, f"fail {status}")
                await each_protocol(http, f"fail {status}", stream=True)
                await heal()
            # an upstream that cannot be reached, one that stalls, streams that die, in-band errors
            for directive in (
                "[cut:3 abort]",
                "[cut:3]",
                "[stall:3]",
                "[error-event]",
                "[error-event:3]",
                "[empty]",
                "[fault:500]",
                "[fault:429 retry-after=1]",
                "[cut:1]",
            ):
                await each_protocol(http, f"trouble {directive}", stream=True)
                await each_protocol(http, f"trouble {directive}")
                await heal()
            # in-band errors that repeat the credential after content already went out (passthrough and translated)
            for template in (INBAND_ANTHROPIC, INBAND_OPENAI, INBAND_GEMINI):
                for key in ALL_UPSTREAM:
                    upstream.fail_key(
                        key,
                        status=200,
                        body=template.replace(b"KEY", key.encode()),
                        headers={"content-type": "text/event-stream"},
                    )
                await each_protocol(http, "in-band", stream=True)
                await each_protocol(http, "in-band")
                await heal()
            # a client that leaves mid-stream
            async with http.stream(
                "POST",
                "/v1/messages",
                json=bodies["/v1/messages"]("[chunks:50] [pace:20] go", s=True),
                headers=me(),
            ) as r:
                async for chunk in r.aiter_bytes():
                    out.blobs.append(chunk)
                    break
            # the tenant's own key in places it must not echo back: steering fields, bad JSON, a revoked key
            out.add(
                await http.post(
                    "/v1/messages",
                    json={
                        **bodies["/v1/messages"]("x"),
                        "api_key": other_key,
                        "metadata": {"api_key": other_key},
                    },
                    headers=me(),
                )
            )
            out.add(
                await http.post(
                    "/v1/messages", content=b'{"model": "' + other_key.encode() + b'", oops', headers=me()
                )
            )
            out.add(
                await http.post("/v1/messages", json=bodies["/v1/messages"]("x", other_key), headers=me())
            )
            for k in (other_key + "x", other_key[:-1], other_key.upper(), f"{other_key} {other_key}"):
                out.add(
                    await http.post(
                        "/v1/messages", json=bodies["/v1/messages"]("x"), headers={"x-api-key": k}
                    )
                )
                out.add(await http.get("/tenant/keys", headers={"x-api-key": k}))
                out.add(await http.get("/accounts", headers={"authorization": f"Bearer {k}"}))
                out.add(await http.get(f"/v1beta/models?key={k}"))
            # the tenant API and the admin API, including their error paths
            out.add(await http.get("/tenant/keys", headers=me()))
            out.add(await http.get("/tenant/credits", headers=me()))
            out.add(await http.get("/tenant/usage", headers=me()))
            out.add(await http.get("/v1/models", headers=me()))
            out.add(await http.post("/tenant/keys", json={"kind": "nope"}, headers=me()))
            out.add(await http.post("/tenant/billing/topup", json={"amount_usd": 10}, headers=me()))
            out.add(
                await http.post(
                    "/stripe/webhook", content=b'{"id": "evt_1"}', headers={"stripe-signature": "t=1,v1=00"}
                )
            )
            out.add(await http.get("/health"))
            for path in (
                "/accounts",
                "/accounts/status",
                "/accounts/quota",
                "/accounts/usage",
                "/accounts/models",
                "/accounts/anthropic-1",
                "/accounts/oauth-1",
                "/admin/snapshot",
                "/settings/routing",
            ):
                out.add(await http.get(path, headers=admin_h))
            for rid in [
                r.get("id")
                for r in (await http.get("/admin/snapshot", headers=admin_h)).json()["traffic"]["recent"]
            ][:20]:
                out.add(await http.get(f"/admin/console/requests/{rid}", headers=admin_h))
            out.add(
                await http.post(
                    "/accounts/add",
                    json={"provider": "anthropic", "api_key": ADDED_KEY, "label": "added-1"},
                    headers=admin_h,
                )
            )
            out.add(
                await http.post(
                    "/accounts/add",
                    json={"provider": "openai", "api_key": ADDED_KEY, "base_url": "ftp://x"},
                    headers=admin_h,
                )
            )
            out.add(
                await http.post(
                    "/accounts/add", json={"provider": "nope", "api_key": ADDED_KEY}, headers=admin_h
                )
            )
            out.add(await http.post("/accounts/oauth-1/refresh", headers=admin_h))
            out.add(await http.post("/accounts/anthropic-1/refresh", headers=admin_h))
            out.add(
                await http.post(
                    "/admin/console/add_account",
                    json={"provider": "anthropic", "api_key": 5},
                    headers=admin_h,
                )
            )
            out.add(await http.get("/accounts", headers={"authorization": f"Bearer {ADMIN_TOKEN}x"}))

    assert await until(lambda: not rt.traffic.inflight and upstream.active_streams == 0, timeout=10.0)
    await gw.flush()
    events = sub.drain()
    snapshot_rows = await rt.read(lambda c: [dict(r) for r in c.execute("SELECT * FROM account_state")])
    # read the files while the gateway runs: recent writes are still in the WAL

    assert len(out.blobs) > (400 if scenario == "traffic" else 5)
    found: dict[str, list[str]] = {}
    for i, blob in enumerate(out.blobs):
        for s in leaks(blob, [*ALL_UPSTREAM, ADMIN_TOKEN]):
            found.setdefault(f"response #{i}", []).append(f"{s}: {blob[:300]!r}")
    logs = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    ).encode()
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("canary.db")}
    assert "canary.db" in files and "canary.db-wal" in files
    blobs = {
        "caplog": logs,
        "log file": logfile.read_bytes(),
        "bus": b"\n".join(orjson.dumps(e.to_dict(), default=str) for e in events),
        **files,
        "account_state": orjson.dumps(snapshot_rows, default=str),
    }
    assert logfile.stat().st_size > 0 and len(events) > (100 if scenario == "traffic" else 5)
    for name, blob in blobs.items():
        for s in leaks(blob, [*ALL_UPSTREAM, *tenant_secrets, ADMIN_TOKEN]):
            found.setdefault(name, []).append(s)
    assert not found, found

    # at rest: upstream keys only encrypted, tenant keys only hashed
    database = files["canary.db"] + files["canary.db-wal"]
    assert b"enc1:" in database
    for k in tenant_secrets:
        assert hashlib.sha256(k.encode()).hexdigest().encode() in database
    assert key_file.read_bytes().strip() not in database
