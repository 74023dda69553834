"""Prometheus metrics: counters and histograms bumped once per finished request, gauges read at scrape.

Each ``Runtime`` has its own ``CollectorRegistry`` (nothing global). The request counters are updated at
settlement — one call per request, never per chunk — through label children cached per label tuple, so
the hot path pays a dict lookup and a few locked additions. Gauges (in-flight requests, account health,
cooldowns, quota utilisation, credit holds, the writer's queue) come from a custom collector that reads
the runtime's live state when Prometheus scrapes.

Labels are drawn from bounded sets only: configured routes, protocols, models, providers and account
labels, status classes and fixed error causes; tenant names only when ``[metrics] tenant_labels``. Never
a key, a token, a prompt or anything a client typed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..runtime import Runtime

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
HEALTH_STATES = ("healthy", "cooldown", "throttled", "disabled")


def status_class(http_status: int) -> str:
    return f"{http_status // 100}xx" if 100 <= http_status < 600 else "other"


class Metrics:
    def __init__(self, rt: Runtime, *, tenant_labels: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tenant_labels = tenant_labels
        tenant = ("tenant",) if tenant_labels else ()
        usage = ("model", "provider", "account", *tenant)
        r = self.registry
        self.requests = Counter(
            "gatewaytui_requests",
            "Finished chat requests (rejected at admission too: model/provider/account empty)",
            ("route", "protocol", *usage, "status_class"),
            registry=r,
        )
        self.tokens = Counter("gatewaytui_tokens", "Tokens billed, by type", (*usage, "type"), registry=r)
        self.cost = Counter(
            "gatewaytui_cost_micro_usd", "Cost billed to tenants in micro-USD", usage, registry=r
        )
        self.duration = Histogram(
            "gatewaytui_request_duration_seconds",
            "Request duration, admission to settlement",
            ("protocol", "model", "provider", "status_class"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gatewaytui_ttft_seconds",
            "Time to first token (answered requests)",
            ("protocol", "model", "provider"),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "gatewaytui_failover_attempts",
            "Upstream attempts past the first (failover), counted at settlement",
            ("model", "provider"),
            registry=r,
        )
        self.upstream_errors = Counter(
            "gatewaytui_upstream_errors",
            "Failed upstream attempts by cause",
            ("provider", "account", "cause", "status_class"),
            registry=r,
        )
        r.register(RuntimeCollector(rt))
        self._children: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def settled(self, call: Any, row: dict[str, Any]) -> None:
        """One finished request (``settlement.settle``'s usage row)."""
        flight = call.flight
        provider = call.model.provider
        sc = status_class(row["http_status"])
        key = (row["route"], row["protocol"], row["model"], provider, flight.account, flight.tenant, sc)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._make(key)
        requests, inp, out, cread, cwrite, reason, cost, duration, ttft, failovers = children
        requests.inc()
        if row["cost_micro"] or row["input_tokens"] or row["output_tokens"]:
            inp.inc(row["input_tokens"])
            out.inc(row["output_tokens"])
            cread.inc(row["cache_read_tokens"])
            cwrite.inc(row["cache_write_5m_tokens"] + row["cache_write_1h_tokens"])
            reason.inc(row["reasoning_tokens"])
            cost.inc(row["cost_micro"])
        duration.observe(row["duration_ms"] / 1000)
        if row["ttft_ms"] is not None:
            ttft.observe(row["ttft_ms"] / 1000)
        if call.attempts > 1:
            failovers.inc(call.attempts - 1)

    def _make(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        route, protocol, model, provider, account, tenant, sc = key
        usage = (model, provider, account, *((tenant,) if self.tenant_labels else ()))
        return (
            self.requests.labels(route, protocol, *usage, sc),
            *(self.tokens.labels(*usage, kind) for kind in TOKEN_TYPES),
            self.cost.labels(*usage),
            self.duration.labels(protocol, model, provider, sc),
            self.ttft.labels(protocol, model, provider),
            self.failovers.labels(model, provider),
        )

    def rejected(self, protocol: str, route: str, tenant: str, http_status: int) -> None:
        """A request refused before it reached an upstream (authentication, decoding, credit, quota)."""
        usage = ("", "", "", *((tenant,) if self.tenant_labels else ()))
        self.requests.labels(route, protocol, *usage, status_class(http_status)).inc()

    def attempt_failed(self, provider: str, account: str, cause: str, http_status: int) -> None:
        self.upstream_errors.labels(provider, account, cause, status_class(http_status)).inc()


class RuntimeCollector(Collector):
    """Gauges read from the runtime's live state at scrape time."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def describe(self) -> list[Metric]:
        return []  # unchecked: families are produced at collection only

    def collect(self) -> Iterator[Metric]:
        rt = self.rt
        now = time.time()
        inflight = GaugeMetricFamily(
            "gatewaytui_in_flight_requests", "Requests in flight (streams and unary)", labels=("kind",)
        )
        flights = list(rt.traffic.inflight.values())
        streams = sum(1 for f in flights if f.stream)
        inflight.add_metric(("stream",), streams)
        inflight.add_metric(("unary",), len(flights) - streams)
        yield inflight

        labels = ("account", "provider")
        health = GaugeMetricFamily(
            "gatewaytui_account_health", "1 for the account's current health state", labels=(*labels, "state")
        )
        cooldown = GaugeMetricFamily(
            "gatewaytui_account_cooldown_seconds",
            "Seconds until a cooling account is tried again",
            labels=labels,
        )
        model_cooldowns = GaugeMetricFamily(
            "gatewaytui_account_model_cooldowns", "Models cooling on the account", labels=labels
        )
        busy = GaugeMetricFamily("gatewaytui_account_in_flight", "Upstream calls in flight", labels=labels)
        quota = GaugeMetricFamily(
            "gatewaytui_account_quota_utilisation_ratio",
            "Share of the upstream's rate-limit window used (0..1), from its last response headers",
            labels=(*labels, "window"),
        )
        for acc in list(rt.pool.accounts.values()):
            key = (acc.label, acc.provider)
            state = acc.health(now)
            for s in HEALTH_STATES:
                health.add_metric((*key, s), 1.0 if s == state else 0.0)
            cooldown.add_metric(key, max(0.0, acc.cooldown_until - now))
            model_cooldowns.add_metric(key, sum(1 for t in acc.model_cooldowns.values() if t > now))
            busy.add_metric(key, acc.inflight)
            for window, ratio in quota_utilisation(acc.quota).items():
                quota.add_metric((*key, window), ratio)
        yield from (health, cooldown, model_cooldowns, busy, quota)

        holds = [h for h in list(rt.wallet.holds.values()) if h.charged]
        yield GaugeMetricFamily(
            "gatewaytui_credit_holds_in_flight",
            "Credit holds open (requests admitted, not settled)",
            value=len(holds),
        )
        yield GaugeMetricFamily(
            "gatewaytui_credit_held_micro_usd",
            "Credit reserved by open holds, micro-USD",
            value=sum(h.amount for h in holds),
        )
        yield GaugeMetricFamily(
            "gatewaytui_writer_queue_depth",
            "Database writes queued behind the single writer",
            value=rt.writer.pending,
        )


def quota_utilisation(quota: dict[str, Any] | None) -> dict[str, float]:
    """``{window: used share}`` from an account's last rate-limit facts (``<w>_limit``/``<w>_remaining``
    pairs, and Anthropic's ``unified_<w>_utilization``)."""
    out: dict[str, float] = {}
    if not quota:
        return out
    for key, value in quota.items():
        if key.endswith("_limit") and isinstance(value, int) and value > 0:
            window = key[: -len("_limit")]
            remaining = quota.get(f"{window}_remaining")
            if isinstance(remaining, int):
                out[window] = min(1.0, max(0.0, 1 - remaining / value))
        elif key.startswith("unified_") and key.endswith("_utilization") and isinstance(value, (int, float)):
            out[key[: -len("_utilization")]] = float(value)
    return out
