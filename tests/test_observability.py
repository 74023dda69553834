"""Observability: ``GET /metrics`` after traffic through every protocol (parsed with prometheus_client),
the JSON request log, traces through the OpenTelemetry SDK, and canaries kept out of all of them."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import default_accounts
from google import genai
from google.genai import types as gtypes
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from gatewaytui.telemetry import Tracing
from gatewaytui.telemetry.requestlog import LOGGER, JsonFormatter

ADMIN = "admin-token-for-metrics"
PROMPT = "CANARY-PROMPT-TEXT-7f3a9 tell me a story"
UPSTREAM_KEY = "sk-ant-CANARY-upstream-9c1e"
FAILING_KEY = "sk-ant-CANARY-failing-4d2b"


def accounts(base_url: str) -> list[dict[str, Any]]:
    out = [a for a in default_accounts(base_url) if a["provider"] != "anthropic"]
    out.append(
        {
            "label": "anthropic-a",
            "provider": "anthropic",
            "base_url": base_url,
            "api_key": FAILING_KEY,
            "priority": 10,
        }
    )
    out.append(
        {"label": "anthropic-b", "provider": "anthropic", "base_url": base_url, "api_key": UPSTREAM_KEY}
    )
    return out


@pytest.fixture
def request_log() -> Iterator[io.StringIO]:
    """The request log as the headless gateway writes it with ``--log-format json``."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(LOGGER)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(old)


async def drive_every_protocol(gw: Any, key: str) -> None:
    a = anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0)
    msg = await a.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    )
    assert msg.content[0].type == "text"
    async with a.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
    ) as s:
        assert await s.get_final_text()
    await a.close()
    o = openai.AsyncOpenAI(api_key=key, base_url=gw.base_url + "/v1", max_retries=0)
    r = await o.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    assert r.choices[0].message.content
    resp = await o.responses.create(model="gpt-5", input=PROMPT)
    assert resp.output_text
    await o.close()
    g = genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=gw.base_url))
    gr = await g.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert gr.text
    await g.aio.aclose()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams: dict[str, Any], family: str, name: str | None = None) -> list[Any]:
    return [s for s in fams[family].samples if name is None or s.name == name]


async def test_metrics_after_traffic_through_every_protocol(
    make_gateway: Any, upstream: Any, monkeypatch: pytest.MonkeyPatch, request_log: io.StringIO
) -> None:
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    upstream.fail_key(FAILING_KEY, 500)  # the first-priority Anthropic account fails: failover to the other
    gw = await make_gateway(accounts=accounts(upstream.base_url), metrics={"tenant_labels": True})
    key = await gw.mint("acme", usd=5.0)
    await drive_every_protocol(gw, key)
    poor = await gw.mint("pauper", usd=None)
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        refused = await http.post(
            "/v1/messages",
            headers={"x-api-key": poor},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": PROMPT}],
            },
        )
        assert refused.status_code == 402
        unauthenticated = await http.post(
            "/v1/chat/completions", headers={"authorization": "Bearer nope"}, json={"model": "gpt-4o"}
        )
        assert unauthenticated.status_code == 401
        scrape = await http.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    fams = families(scrape.text)

    requests = samples(fams, "gatewaytui_requests", "gatewaytui_requests_total")
    served = {
        (s.labels["protocol"], s.labels["route"], s.labels["model"], s.labels["provider"]) for s in requests
    }
    assert {
        ("anthropic", "v1", "claude-sonnet-4-5", "anthropic"),
        ("openai_chat", "v1", "gpt-4o", "openai"),
        ("openai_responses", "v1", "gpt-5", "openai"),
        ("gemini", "v1", "gemini-2.5-flash", "gemini"),
    } <= served
    ok = {s.labels["protocol"]: s for s in requests if s.labels["status_class"] == "2xx"}
    assert ok["anthropic"].value == 2 and ok["anthropic"].labels["account"] == "anthropic-b"
    assert ok["gemini"].labels == {**ok["gemini"].labels, "tenant": "acme", "account": "gemini-1"}
    rejected = {
        (s.labels["status_class"], s.labels["tenant"], s.labels["protocol"]): s.value
        for s in requests
        if s.labels["model"] == ""
    }
    assert rejected[("4xx", "pauper", "anthropic")] == 1  # refused for credit
    assert rejected[("4xx", "", "openai_chat")] == 1  # refused at authentication

    tokens = {(s.labels["model"], s.labels["type"]): s.value for s in samples(fams, "gatewaytui_tokens")}
    assert tokens[("claude-sonnet-4-5", "input")] > 0 and tokens[("gemini-2.5-flash", "output")] > 0
    assert {"input", "output", "cache_read", "cache_write", "reasoning"} <= {t for _, t in tokens}
    cost = {s.labels["model"]: s.value for s in samples(fams, "gatewaytui_cost_micro_usd")}
    assert cost["gpt-4o"] > 0 and cost["claude-sonnet-4-5"] > 0
    assert fams["gatewaytui_cost_micro_usd"].type == "counter"

    assert fams["gatewaytui_request_duration_seconds"].type == "histogram"
    counts = {
        s.labels["protocol"]: s.value
        for s in samples(
            fams, "gatewaytui_request_duration_seconds", "gatewaytui_request_duration_seconds_count"
        )
        if s.labels["status_class"] == "2xx"
    }
    assert counts == {"anthropic": 2, "openai_chat": 1, "openai_responses": 1, "gemini": 1}
    ttft = samples(fams, "gatewaytui_ttft_seconds", "gatewaytui_ttft_seconds_count")
    assert sum(s.value for s in ttft) == 5

    failovers = {
        s.labels["model"]: s.value
        for s in samples(fams, "gatewaytui_failover_attempts", "gatewaytui_failover_attempts_total")
    }
    assert failovers["claude-sonnet-4-5"] >= 1
    errors = samples(fams, "gatewaytui_upstream_errors", "gatewaytui_upstream_errors_total")
    # (on a shared store every sample also carries gateway_instance: test_each_instance_of_a_cluster_...)
    assert any(
        {k: v for k, v in s.labels.items() if k != "gateway_instance"}
        == {"provider": "anthropic", "account": "anthropic-a", "cause": "server", "status_class": "5xx"}
        for s in errors
    ), errors

    health = {
        (s.labels["account"], s.labels["state"]): s.value for s in samples(fams, "gatewaytui_account_health")
    }
    assert health[("anthropic-a", "cooldown")] == 1 and health[("anthropic-b", "healthy")] == 1
    cooldown = {s.labels["account"]: s.value for s in samples(fams, "gatewaytui_account_cooldown_seconds")}
    assert cooldown["anthropic-a"] > 0 and cooldown["anthropic-b"] == 0
    assert "gatewaytui_account_quota_utilisation_ratio" in fams
    for gauge in (
        "gatewaytui_credit_holds_in_flight",
        "gatewaytui_credit_held_micro_usd",
        "gatewaytui_writer_queue_depth",
    ):
        assert fams[gauge].type == "gauge" and samples(fams, gauge)[0].value >= 0
    inflight = {s.labels["kind"]: s.value for s in samples(fams, "gatewaytui_in_flight_requests")}
    assert inflight == {"stream": 0, "unary": 0}

    # the request log: one JSON object per finished request, refusals included
    lines = [json.loads(line) for line in request_log.getvalue().splitlines()]
    assert len(lines) == 7
    first = next(line for line in lines if line["protocol"] == "anthropic" and line["status"] == "ok")
    assert first["event"] == "request" and first["tenant"] == "acme" and first["account"] == "anthropic-b"
    assert first["attempts"] == 2 and first["output_tokens"] > 0 and first["cost_micro_usd"] > 0
    assert first["key_id"] and first["request_id"] and first["time"].endswith("Z")
    assert first["duration_ms"] >= first["ttft_ms"] >= 0 and first["error_cause"] is None
    assert {line["protocol"] for line in lines} == {"anthropic", "openai_chat", "openai_responses", "gemini"}
    causes = sorted(line["error_cause"] for line in lines if line["error_cause"])
    assert causes == ["authentication", "billing"]

    for secret in (key, poor, UPSTREAM_KEY, FAILING_KEY, "CANARY-PROMPT", ADMIN):
        assert secret not in scrape.text
        assert secret not in request_log.getvalue()


async def test_metrics_need_the_admin_token(make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await make_gateway()
    async with httpx.AsyncClient(base_url=gw.base_url) as http:
        monkeypatch.delenv("GATEWAYTUI_ADMIN_TOKEN", raising=False)
        assert (await http.get("/metrics")).status_code == 403  # no admin token configured: never public
        monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
        missing = await http.get("/metrics")
        assert missing.status_code == 401 and "gatewaytui_" not in missing.text
        assert missing.json()["error"]["type"] == "authentication"
        assert (await http.get("/metrics", headers={"authorization": "Bearer wrong"})).status_code == 401
        ok = await http.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200 and "gatewaytui_writer_queue_depth" in ok.text


async def test_scrape_token_and_disabled_metrics(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GATEWAYTUI_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("GW_SCRAPE_TOKEN", "scrape-only-token")
    gw = await make_gateway(metrics={"token_env": "GW_SCRAPE_TOKEN"})
    off = await make_gateway(metrics={"enabled": False}, db=str(tmp_path / "off.db"))
    async with httpx.AsyncClient() as http:
        assert (await http.get(gw.base_url + "/metrics")).status_code == 401
        r = await http.get(gw.base_url + "/metrics", headers={"authorization": "Bearer scrape-only-token"})
        assert r.status_code == 200 and "gatewaytui_in_flight_requests" in r.text
        assert (await http.get(off.base_url + "/metrics")).status_code == 404
    assert off.rt.telemetry.metrics is None


async def test_traces_show_admission_each_attempt_and_settlement(
    make_gateway: Any, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.fail_key(FAILING_KEY, 500)
    gw = await make_gateway(accounts=accounts(upstream.base_url))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw.rt.telemetry.tracing = Tracing(provider)
    key = await gw.mint("acme", usd=5.0)
    async with anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0) as a:
        async with a.messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
        ) as s:
            await s.get_final_text()
        request_id = s.current_message_snapshot.id  # the upstream's id; the gateway's is in the header
    await gw.flush()  # the stream settles once its end is out, its telemetry from the backlog
    spans = exporter.get_finished_spans()
    root = next(sp for sp in spans if sp.name == "gatewaytui.request")
    rid = root.attributes["gatewaytui.request_id"]
    assert rid and rid != request_id
    children = sorted(
        (sp for sp in spans if sp.parent and sp.parent.span_id == root.context.span_id),
        key=lambda sp: sp.start_time,
    )
    assert [sp.name for sp in children] == [
        "gatewaytui.admission",
        "gatewaytui.upstream_attempt",
        "gatewaytui.upstream_attempt",
        "gatewaytui.settlement",
    ]
    failed, answered = children[1], children[2]
    assert failed.attributes["gatewaytui.account"] == "anthropic-a" and not failed.status.is_ok
    assert failed.attributes["gatewaytui.error_cause"] == "server"
    assert answered.attributes["gatewaytui.account"] == "anthropic-b" and answered.status.is_unset
    assert all(sp.context.trace_id == root.context.trace_id for sp in children)
    assert root.start_time <= children[0].start_time and children[-1].end_time <= root.end_time
    assert root.attributes["gatewaytui.attempts"] == 2 and root.attributes["http.response.status_code"] == 200
    text = repr([(sp.name, dict(sp.attributes or {})) for sp in spans])
    for secret in (key, UPSTREAM_KEY, FAILING_KEY, "CANARY-PROMPT"):
        assert secret not in text


def test_tracing_is_off_without_an_endpoint() -> None:
    from gatewaytui.config import OtelConfig

    assert Tracing.from_config(OtelConfig()) is None


def test_headless_json_log_lines(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gatewaytui.cli", "--demo", "--no-ui", "--port", "0"),
            *("--log-format", "json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[dict[str, Any]] = []

    def until(pattern: str) -> str:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            raw = proc.stderr.readline()
            if not raw:
                if proc.poll() is not None:
                    break
                continue
            line = json.loads(raw)  # every line is JSON
            lines.append(line)
            m = re.search(pattern, line.get("message", "") if "event" not in line else "")
            if m:
                return m.group(1)
            if pattern == "request" and line.get("event") == "request":
                return line["request_id"]
        raise AssertionError(f"no line matching {pattern!r}; got {lines!r}")

    try:
        url = until(r"base URL (http://\S+)")
        key = until(r"\(shown once\): (gw-\S+)")
        with anthropic.Anthropic(api_key=key, base_url=url, max_retries=0) as client:
            client.messages.create(
                model="auto", max_tokens=64, messages=[{"role": "user", "content": PROMPT}]
            )
        until("request")
    finally:
        proc.send_signal(2)
        proc.wait(timeout=30)
    request = lines[-1]
    assert request["status"] == "ok" and request["http_status"] == 200 and request["protocol"] == "anthropic"
    assert request["model"] and request["account"] and request["key_id"] and request["tenant"]
    assert request["output_tokens"] > 0 and request["duration_ms"] > 0
    # the demo announces its key once, by design; the request lines never carry it, nor any prompt text
    assert key not in json.dumps([line for line in lines if line.get("event") == "request"])
    assert "CANARY-PROMPT" not in json.dumps(lines)


def test_histograms_are_cumulative_with_sum_and_count() -> None:
    from types import SimpleNamespace

    from gatewaytui.telemetry.metrics import Metrics

    metrics = Metrics(None)
    call = SimpleNamespace(
        flight=SimpleNamespace(account="a-1", tenant="t"),
        model=SimpleNamespace(provider="anthropic"),
        attempts=1,
    )
    base = dict(
        route="v1",
        protocol="anthropic",
        model="m",
        http_status=200,
        cost_micro=5,
        input_tokens=3,
        output_tokens=4,
        cache_read_tokens=1,
        cache_write_5m_tokens=2,
        cache_write_1h_tokens=1,
        reasoning_tokens=0,
    )
    for duration_ms, ttft_ms in ((5.0, 1.0), (300.0, 100.0), (400_000.0, None)):
        metrics.settled(call, {**base, "duration_ms": duration_ms, "ttft_ms": ttft_ms})
    from prometheus_client import generate_latest

    fams = families(generate_latest(metrics.registry).decode())
    d = {(s.name, s.labels.get("le")): s.value for s in fams["gatewaytui_request_duration_seconds"].samples}
    assert d[("gatewaytui_request_duration_seconds_bucket", "0.01")] == 1
    assert d[("gatewaytui_request_duration_seconds_bucket", "0.25")] == 1
    assert d[("gatewaytui_request_duration_seconds_bucket", "0.5")] == 2
    assert d[("gatewaytui_request_duration_seconds_bucket", "300.0")] == 2
    assert d[("gatewaytui_request_duration_seconds_bucket", "+Inf")] == 3
    assert d[("gatewaytui_request_duration_seconds_count", None)] == 3
    assert d[("gatewaytui_request_duration_seconds_sum", None)] == pytest.approx(400.305)
    t = {(s.name, s.labels.get("le")): s.value for s in fams["gatewaytui_ttft_seconds"].samples}
    assert (
        t[("gatewaytui_ttft_seconds_bucket", "0.005")] == 1
        and t[("gatewaytui_ttft_seconds_count", None)] == 2
    )
    assert t[("gatewaytui_ttft_seconds_sum", None)] == pytest.approx(0.101)
    tokens = {s.labels["type"]: s.value for s in fams["gatewaytui_tokens"].samples}
    assert tokens == {"input": 9, "output": 12, "cache_read": 3, "cache_write": 9, "reasoning": 0}
    assert fams["gatewaytui_cost_micro_usd"].samples[0].value == 15


async def test_a_failing_observer_never_reaches_the_request(
    make_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await make_gateway()

    class Broken:
        def settled(self, *args: Any) -> None:
            raise RuntimeError("exporter down")

        def close(self) -> None:
            raise RuntimeError("exporter still down")

    gw.rt.telemetry.tracing = Broken()
    key = await gw.mint("acme", usd=5.0)
    async with anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0) as a:
        msg = await a.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg.content[0].type == "text"
    assert not gw.rt.traffic.inflight and gw.rt.traffic.total == 1  # settled
    await gw.flush()  # its journal and telemetry wait in the backlog for an idle moment
    assert "telemetry failed" in caplog.text


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
async def test_each_instance_of_a_cluster_labels_its_own_metrics(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch, store: Any
) -> None:
    """On a shared store every sample carries ``gateway_instance`` (the id the instance's lease and holds carry),
    so one Prometheus job over several instances keeps their series apart; a lone SQLite gateway adds none."""
    monkeypatch.setenv("GATEWAYTUI_ADMIN_TOKEN", ADMIN)
    gw = await make_gateway()
    key = await gw.mint("acme", usd=1)
    a = anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0)
    await a.messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": PROMPT}]
    )
    await a.close()
    async with httpx.AsyncClient() as http:
        text = (await http.get(gw.base_url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"})).text
    fams = families(text)
    every = [s for f in fams.values() for s in f.samples]
    assert samples(fams, "gatewaytui_requests") and every
    if gw.rt.cfg.database.shared:
        assert {s.labels.get("gateway_instance") for s in every} == {gw.rt.wallet.origin}
    else:
        assert not any("gateway_instance" in s.labels for s in every)
