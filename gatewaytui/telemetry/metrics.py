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
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..billing.wallet import Wallet
    from ..config import Config
    from ..pool.pool import Pool
    from ..store.writer import Writer
    from ..traffic import Traffic


class Runtime(Protocol):
    """What telemetry reads of the runtime (a protocol: the runtime imports telemetry, not the reverse)."""

    cfg: Config
    traffic: Traffic
    pool: Pool
    wallet: Wallet
    writer: Writer


DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
HEALTH_STATES = ("healthy", "cooldown", "throttled", "disabled")
# one request key's running totals: a flat list (its layout below); a histogram is [sum, bucket counts...]
REQUESTS, TOKENS, COST, FAILOVERS = 0, 1, 1 + len(TOKEN_TYPES), 2 + len(TOKEN_TYPES)
DURATION_SUM = FAILOVERS + 1
DURATION = DURATION_SUM + 1  # one count per bucket, +Inf last (not cumulative)
TTFT_SUM = DURATION + len(DURATION_BUCKETS) + 1
TTFT = TTFT_SUM + 1
SLOTS = TTFT + len(TTFT_BUCKETS) + 1


def status_class(http_status: int) -> str:
    return f"{http_status // 100}xx" if 100 <= http_status < 600 else "other"


class Metrics(Collector):
    """The request counters (kept as plain numbers, on the event loop) and the registry that exports them.

    ``settled`` costs a dict lookup and a dozen integer additions: no locks, no label resolution. The
    Prometheus families are built from these totals at scrape time (also on the loop, so no races).
    """

    def __init__(self, rt: Runtime | None, *, tenant_labels: bool = False) -> None:
        """``rt``: the runtime whose live state the gauges read (None: the request counters alone)."""
        self.tenant_labels = tenant_labels
        # (route, protocol, model, provider, account, tenant, status_class) -> totals
        self._requests: dict[tuple[str, ...], list[Any]] = {}
        self._upstream_errors: dict[tuple[str, ...], int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        # several instances on one store: each exports its own families, every sample labelled by instance
        instance = rt.wallet.origin if rt is not None and rt.cfg.database.shared else None
        collectors: list[Collector] = [self] + ([RuntimeCollector(rt)] if rt is not None else [])
        for collector in collectors:
            self.registry.register(collector if instance is None else Labelled(collector, instance))

    def settled(self, call: Any, row: dict[str, Any]) -> None:
        """One finished request (``settlement.settle``'s usage row)."""
        flight = call.flight
        key = (
            row["route"],
            row["protocol"],
            row["model"],
            call.model.provider,
            flight.account,
            flight.tenant if self.tenant_labels else "",
            status_class(row["http_status"]),
        )
        t = self._requests.get(key)
        if t is None:
            t = self._requests[key] = [0] * SLOTS
        t[REQUESTS] += 1
        if row["cost_micro"] or row["input_tokens"] or row["output_tokens"]:
            t[TOKENS] += row["input_tokens"]
            t[TOKENS + 1] += row["output_tokens"]
            t[TOKENS + 2] += row["cache_read_tokens"]
            t[TOKENS + 3] += row["cache_write_5m_tokens"] + row["cache_write_1h_tokens"]
            t[TOKENS + 4] += row["reasoning_tokens"]
            t[COST] += row["cost_micro"]
        if call.attempts > 1:
            t[FAILOVERS] += call.attempts - 1
        seconds = row["duration_ms"] / 1000
        t[DURATION_SUM] += seconds
        t[DURATION + bisect_left(DURATION_BUCKETS, seconds)] += 1
        if row["ttft_ms"] is not None:
            seconds = row["ttft_ms"] / 1000
            t[TTFT_SUM] += seconds
            t[TTFT + bisect_left(TTFT_BUCKETS, seconds)] += 1

    def rejected(self, protocol: str, route: str, tenant: str, http_status: int) -> None:
        """A request refused before it reached an upstream (authentication, decoding, credit, quota)."""
        key = (route, protocol, "", "", "", tenant if self.tenant_labels else "", status_class(http_status))
        t = self._requests.get(key)
        if t is None:
            t = self._requests[key] = [0] * SLOTS
        t[REQUESTS] += 1

    def attempt_failed(self, provider: str, account: str, cause: str, http_status: int) -> None:
        key = (provider, account, cause, status_class(http_status))
        self._upstream_errors[key] = self._upstream_errors.get(key, 0) + 1

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        tenant = ("tenant",) if self.tenant_labels else ()
        usage = ("model", "provider", "account", *tenant)
        requests = CounterMetricFamily(
            "gatewaytui_requests",
            "Finished chat requests (refused at admission too: model, provider and account empty)",
            labels=("route", "protocol", *usage, "status_class"),
        )
        tokens = CounterMetricFamily("gatewaytui_tokens", "Tokens billed, by type", labels=(*usage, "type"))
        cost = CounterMetricFamily("gatewaytui_cost_micro_usd", "Cost billed in micro-USD", labels=usage)
        failovers = CounterMetricFamily(
            "gatewaytui_failover_attempts", "Upstream attempts past the first", labels=("model", "provider")
        )
        by_usage: dict[tuple[str, ...], list[Any]] = {}
        by_duration: dict[tuple[str, ...], list[Any]] = {}
        by_ttft: dict[tuple[str, ...], list[Any]] = {}
        by_failover: dict[tuple[str, ...], int] = {}
        for key, t in list(self._requests.items()):
            route, protocol, model, provider, account, tenant_name, sc = key
            u = (model, provider, account, *((tenant_name,) if self.tenant_labels else ()))
            requests.add_metric((route, protocol, *u, sc), t[REQUESTS])
            if not model:
                continue  # refused at admission: no usage, no timings
            _add(by_usage.setdefault(u, [0] * 6), t, TOKENS, 6)  # the five token types, then the cost
            _add(by_duration.setdefault((protocol, model, provider, sc), [0] * 16), t, DURATION_SUM, 16)
            _add(by_ttft.setdefault((protocol, model, provider), [0] * 14), t, TTFT_SUM, 14)
            by_failover[(model, provider)] = by_failover.get((model, provider), 0) + t[FAILOVERS]
        for u, totals in by_usage.items():
            for i, kind in enumerate(TOKEN_TYPES):
                tokens.add_metric((*u, kind), totals[i])
            cost.add_metric(u, totals[5])
        for mp, n in by_failover.items():
            failovers.add_metric(mp, n)
        yield from (requests, tokens, cost, failovers)
        yield _histogram(
            "gatewaytui_request_duration_seconds",
            "Request duration, admission to settlement",
            ("protocol", "model", "provider", "status_class"),
            DURATION_BUCKETS,
            by_duration,
        )
        yield _histogram(
            "gatewaytui_ttft_seconds",
            "Time to first token (answered requests)",
            ("protocol", "model", "provider"),
            TTFT_BUCKETS,
            by_ttft,
        )
        errors = CounterMetricFamily(
            "gatewaytui_upstream_errors",
            "Failed upstream attempts by cause",
            labels=("provider", "account", "cause", "status_class"),
        )
        for key, n in list(self._upstream_errors.items()):
            errors.add_metric(key, n)
        yield errors


def _add(into: list[Any], t: list[Any], start: int, n: int) -> None:
    for i in range(n):
        into[i] += t[start + i]


def _histogram(
    name: str,
    doc: str,
    labels: tuple[str, ...],
    bounds: tuple[float, ...],
    data: dict[tuple[str, ...], list[Any]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for key, totals in data.items():
        total, counts = totals[0], totals[1:]
        running, buckets = 0, []
        for bound, count in zip((*bounds, float("inf")), counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
        family.add_metric(key, buckets, sum_value=total)
    return family


class Labelled(Collector):
    """Every sample of ``inner`` labelled ``gateway_instance`` (the instance id its lease and holds carry; not
    ``instance``, which Prometheus sets to the scrape target)."""

    def __init__(self, inner: Collector, instance: str) -> None:
        self.inner, self.instance = inner, instance

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():
            family.samples = [
                s._replace(labels={**s.labels, "gateway_instance": self.instance}) for s in family.samples
            ]
            yield family


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
