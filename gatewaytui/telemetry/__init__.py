"""Observability: Prometheus metrics, the request log and OpenTelemetry traces, fed from two hooks.

``settlement.settle`` calls ``Telemetry.settled`` once per finished request and ``attempts.connect``
calls ``Telemetry.attempt_failed`` once per failed upstream attempt; requests refused at admission come
through ``Telemetry.rejected``. Each part is optional (``[metrics] enabled``, ``[log] requests``,
``[otel] endpoint``); a part that is off costs one ``None`` check.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .metrics import Metrics, Runtime
from .requestlog import RequestLog
from .siblings import Siblings
from .tracing import Tracing

__all__ = ["Metrics", "RequestLog", "Siblings", "Telemetry", "Tracing"]

log = logging.getLogger("gatewaytui.telemetry")


class Telemetry:
    def __init__(self, rt: Runtime) -> None:
        cfg = rt.cfg
        self.metrics = Metrics(rt, tenant_labels=cfg.metrics.tenant_labels) if cfg.metrics.enabled else None
        self.log = RequestLog() if cfg.log.requests else None
        self.tracing = Tracing.from_config(cfg.otel)
        # a --workers worker's view of its siblings' metrics (the host sets it): /metrics answers for them all
        self.siblings: Siblings | None = None

    def settled(self, call: Any, row: dict[str, Any]) -> None:
        """One finished request: ``row`` is the usage row settlement journals. Never raises: the books are
        already closed, and an observer's fault must not reach the request."""
        try:
            if self.metrics is not None:
                self.metrics.settled(call, row)
            if self.log is not None or self.tracing is not None:
                now = time.time()
                if self.log is not None:
                    self.log.settled(call, row, now)
                if self.tracing is not None:
                    self.tracing.settled(call, row, now)
        except Exception:  # noqa: BLE001
            log.exception("telemetry failed for request %s", row.get("id"))

    def attempt_failed(self, call: Any, account: Any, err: Any) -> None:
        """One failed upstream attempt (failover may follow): ``err`` is the ``UpstreamError``."""
        try:
            if self.metrics is not None:
                self.metrics.attempt_failed(call.model.provider, account.label, err.cause, err.status)
            if self.tracing is not None:
                self.tracing.attempt_failed(call.request_id, account.label, err.cause, err.status)
        except Exception:  # noqa: BLE001
            log.exception("telemetry failed for request %s", call.request_id)

    def rejected(
        self,
        protocol: str,
        route: str,
        request_id: str,
        err: Any,
        key: dict[str, Any] | None = None,
        received: float | None = None,
    ) -> None:
        """A request refused before any upstream was tried (``err``: the ``GatewayError`` answered)."""
        tenant = (key or {}).get("tenant") or ""
        try:
            if self.metrics is not None:
                self.metrics.rejected(protocol, route, tenant, err.status)
            if self.log is not None or self.tracing is not None:
                now = time.time()
                if self.log is not None:
                    self.log.rejected(protocol, route, request_id, key, err.status, err.kind, now)
                if self.tracing is not None:
                    self.tracing.rejected(protocol, route, request_id, err.status, received or now)
        except Exception:  # noqa: BLE001
            log.exception("telemetry failed for request %s", request_id)

    def close(self) -> None:
        """Flush the traces still queued for export (a failing exporter does not stop the shutdown)."""
        try:
            if self.tracing is not None:
                self.tracing.close()
        except Exception:  # noqa: BLE001
            log.exception("could not flush traces")
