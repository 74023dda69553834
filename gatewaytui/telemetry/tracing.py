"""OpenTelemetry traces (optional: ``pip install gatewaytui[otel]`` and ``[otel] endpoint``).

A finished request becomes one trace: a ``gatewaytui.request`` span with children for admission, each
upstream attempt (a failover shows as several, the failed ones marked as errors) and settlement. The
spans are built when the request settles, from the timestamps the relay already keeps, so tracing adds
nothing to the relay while a request runs; only failed attempts are noted as they happen. Without the
extra or an endpoint, ``Tracing.from_config`` returns ``None`` and nothing is imported or called.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import OtelConfig

log = logging.getLogger("gatewaytui.tracing")


class Tracing:
    def __init__(self, provider: Any) -> None:
        """``provider``: an OpenTelemetry SDK ``TracerProvider`` (its span processors decide the export)."""
        from opentelemetry.context import Context
        from opentelemetry.trace import Status, StatusCode, set_span_in_context

        self.provider = provider
        self.tracer = provider.get_tracer("gatewaytui")
        self._error = Status(StatusCode.ERROR)
        self._in_context = set_span_in_context
        self._root = Context  # an empty context: each request is a trace of its own
        self._failed: dict[str, list[tuple[float, str, str, int]]] = {}  # request id -> failed attempts

    @classmethod
    def from_config(cls, cfg: OtelConfig) -> Tracing | None:
        if not cfg.endpoint:
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning(
                "[otel] endpoint is set but the otel extra is missing: pip install 'gatewaytui[otel]'"
            )
            return None
        provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=cfg.endpoint)))
        return cls(provider)

    def close(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor holds

    def attempt_failed(self, request_id: str, account: str, cause: str, status: int) -> None:
        self._failed.setdefault(request_id, []).append((time.time(), account, cause, status))

    def settled(self, call: Any, row: dict[str, Any], settled_at: float) -> None:
        flight = call.flight
        failed = self._failed.pop(call.request_id, [])
        received = flight.received or flight.started
        attrs = {
            "gatewaytui.request_id": call.request_id,
            "gatewaytui.route": row["route"],
            "gatewaytui.protocol": row["protocol"],
            "gatewaytui.model": row["model"],
            "gatewaytui.provider": call.model.provider,
            "gatewaytui.account": flight.account,
            "gatewaytui.tenant": flight.tenant,
            "gatewaytui.stream": bool(row["stream"]),
            "gatewaytui.status": row["status"],
            "gatewaytui.attempts": call.attempts,
            "gatewaytui.input_tokens": row["input_tokens"],
            "gatewaytui.output_tokens": row["output_tokens"],
            "gatewaytui.cost_micro_usd": row["cost_micro"],
            "http.response.status_code": row["http_status"],
        }
        root = self._span("gatewaytui.request", None, received, attrs)
        self._child(root, "gatewaytui.admission", received, flight.started, {})
        begin = flight.started
        for number, (at, account, cause, status) in enumerate(failed, 1):
            span = self._span(
                "gatewaytui.upstream_attempt",
                root,
                begin,
                {
                    "gatewaytui.attempt": number,
                    "gatewaytui.account": account,
                    "gatewaytui.error_cause": cause,
                    "http.response.status_code": status,
                },
            )
            span.set_status(self._error)
            span.end(end_time=_ns(at))
            begin = at
        ended = flight.ended or settled_at
        if call.attempts > len(failed):  # the attempt that answered (it lasts as long as its stream)
            self._child(
                root,
                "gatewaytui.upstream_attempt",
                begin,
                ended,
                {"gatewaytui.attempt": call.attempts, "gatewaytui.account": flight.account},
            )
        self._child(root, "gatewaytui.settlement", ended, settled_at, {})
        if row["status"] != "ok":
            root.set_status(self._error)
        root.end(end_time=_ns(settled_at))

    def rejected(self, protocol: str, route: str, request_id: str, status: int, received: float) -> None:
        now = time.time()
        attrs = {
            "gatewaytui.request_id": request_id,
            "gatewaytui.route": route,
            "gatewaytui.protocol": protocol,
            "gatewaytui.status": "rejected",
            "http.response.status_code": status,
        }
        root = self._span("gatewaytui.request", None, received, attrs)
        admission = self._span("gatewaytui.admission", root, received, {})
        admission.set_status(self._error)
        admission.end(end_time=_ns(now))
        root.set_status(self._error)
        root.end(end_time=_ns(now))

    def _span(self, name: str, parent: Any, start: float, attrs: dict[str, Any]) -> Any:
        context = self._in_context(parent) if parent is not None else self._root()
        return self.tracer.start_span(name, context=context, start_time=_ns(start), attributes=attrs)

    def _child(self, parent: Any, name: str, start: float, end: float, attrs: dict[str, Any]) -> None:
        self._span(name, parent, start, attrs).end(end_time=_ns(max(start, end)))


def _ns(t: float) -> int:
    return int(t * 1e9)
