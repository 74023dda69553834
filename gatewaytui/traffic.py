"""Live traffic: requests in flight, recent requests, and rolling statistics for the console.

The relay updates a ``Flight`` in place as a stream advances (cheap attribute writes); consoles read
snapshots on a timer. Nothing here blocks or allocates per chunk beyond counters.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Flight:
    id: str
    route: str
    protocol: str
    tenant: str = ""
    tenant_id: int | None = None
    key_id: str | None = None
    key_label: str | None = None
    model: str = ""  # the model serving it (a fallback's, once one took over)
    upstream_model: str = ""
    requested_model: str = ""  # the model the client asked for, as the catalog names it
    account: str = ""
    account_id: str = ""
    stream: bool = False
    state: str = "queued"  # queued | waiting | streaming | done | error | cancelled
    started: float = field(default_factory=time.time)  # admitted (TTFT and duration count from here)
    received: float = 0.0  # the relay took it up (admission began)
    first_token: float | None = None
    ended: float | None = None
    output_tokens: int = 0
    chunks: int = 0
    input_tokens: int = 0
    cost_micro: int = 0
    hold_micro: int = 0
    status: int | None = None
    error: str | None = None
    attempts: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # as received: redacted whenever shown
    line_items: dict[str, Any] | None = None

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        end = self.ended or now
        streaming_for = end - self.first_token if self.first_token else 0.0
        return {
            "id": self.id,
            "route": self.route,
            "protocol": self.protocol,
            "tenant": self.tenant,
            "key_label": self.key_label,
            "model": self.model,
            "requested_model": self.requested_model or self.model,
            "account": self.account,
            "stream": self.stream,
            "state": self.state,
            "elapsed_s": round(end - self.started, 3),
            "ttft_ms": round((self.first_token - self.started) * 1000, 1) if self.first_token else None,
            "output_tokens": self.output_tokens,
            "input_tokens": self.input_tokens,
            "tokens_per_s": round(self.output_tokens / streaming_for, 1) if streaming_for > 0.05 else None,
            "cost_micro": self.cost_micro,
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
            "headers": safe_headers(self.headers),
            "line_items": self.line_items,
        }


SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie", "proxy-authorization"}
)


def safe_headers(headers: dict[str, str]) -> dict[str, str]:
    """Request headers fit to show: credentials redacted, at most 40, values cut at 200 characters."""
    return {
        k: ("[redacted]" if k.lower() in SECRET_HEADERS else v[:200]) for k, v in list(headers.items())[:40]
    }


class Traffic:
    def __init__(self, recent: int = 200, window_s: int = 120) -> None:
        self.inflight: dict[str, Flight] = {}
        self.recent: deque[Flight] = deque(maxlen=recent)
        self.window_s = window_s
        self._buckets: deque[list[float]] = deque(maxlen=window_s)  # [second, requests, tokens, errors]
        self._latency: deque[float] = deque(maxlen=1000)
        self._ttft: deque[float] = deque(maxlen=1000)
        self.total = 0
        self.errors = 0

    def open(self, flight: Flight) -> Flight:
        self.inflight[flight.id] = flight
        return flight

    def close(self, flight: Flight) -> None:
        flight.ended = flight.ended or time.time()
        self.inflight.pop(flight.id, None)
        self.recent.appendleft(flight)
        self.total += 1
        failed = flight.state in ("error",)
        self.errors += failed
        bucket = self._bucket(flight.ended)
        bucket[1] += 1
        bucket[2] += flight.output_tokens
        bucket[3] += failed
        if not failed:
            self._latency.append(flight.ended - flight.started)
            if flight.first_token:
                self._ttft.append(flight.first_token - flight.started)

    def _bucket(self, at: float) -> list[float]:
        sec = float(int(at))
        if not self._buckets or self._buckets[-1][0] < sec:
            self._buckets.append([sec, 0, 0, 0])
        return self._buckets[-1]

    def series(self, seconds: int = 60, now: float | None = None) -> dict[str, list[float]]:
        now = int(time.time() if now is None else now)
        by_sec = {int(b[0]): b for b in self._buckets}
        rps, tps, eps = [], [], []
        for s in range(now - seconds + 1, now + 1):
            b = by_sec.get(s)
            rps.append(b[1] if b else 0)
            tps.append(b[2] if b else 0)
            eps.append(b[3] if b else 0)
        return {"requests": rps, "tokens": tps, "errors": eps}

    def percentiles(self) -> dict[str, float | None]:
        def pct(values: deque[float], p: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)

        return {
            "latency_p50_ms": pct(self._latency, 0.50),
            "latency_p95_ms": pct(self._latency, 0.95),
            "ttft_p50_ms": pct(self._ttft, 0.50),
            "ttft_p95_ms": pct(self._ttft, 0.95),
        }

    def snapshot(self, recent: int = 50) -> dict[str, Any]:
        now = time.time()
        return {
            "inflight": [f.snapshot(now) for f in list(self.inflight.values())],
            "recent": [f.snapshot(now) for f in list(self.recent)[:recent]],
            "series": self.series(60, now),
            "stats": {"total": self.total, "errors": self.errors, **self.percentiles()},
        }
