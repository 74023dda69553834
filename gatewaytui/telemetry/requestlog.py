"""The request log: one line per finished request on the ``gatewaytui.requests`` logger, and the
headless gateway's log formats (plain for people, JSON lines for collectors).

A line holds identifiers, routing facts, counts, money and timings: never a key, a token, a prompt or
an error message (which may quote the request); failures carry a cause from a fixed vocabulary.
"""

from __future__ import annotations

import datetime as dt
import logging
from logging.handlers import QueueHandler, QueueListener
from queue import SimpleQueue
from typing import Any

import orjson

LOGGER = "gatewaytui.requests"
CAUSE_BY_STATUS = {
    400: "invalid_request",
    401: "authentication",
    402: "billing",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "request_too_large",
    429: "rate_limited",
    499: "cancelled",
    502: "upstream",
    503: "unavailable",
    504: "timeout",
}


def error_cause(
    http_status: int, upstream_causes: list[str] | None = None, kind: str | None = None
) -> str | None:
    """A failure's cause: the gateway's error kind, else the last upstream failure's, else by status."""
    if http_status < 400:
        return None
    if kind:
        return kind
    if upstream_causes:
        return upstream_causes[-1]
    return CAUSE_BY_STATUS.get(http_status, "server" if http_status >= 500 else "client")


class RequestLog:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER)

    def settled(self, call: Any, row: dict[str, Any], now: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        flight = call.flight
        causes = [e.rsplit(" ", 1)[-1] for e in call.errors]
        fields = {
            "time": _iso(now),
            "request_id": row["id"],
            "tenant": flight.tenant,
            "key_id": row["key_id"],
            "route": row["route"],
            "protocol": row["protocol"],
            "model": row["model"],
            "provider": call.model.provider,
            "account": flight.account or None,
            "stream": bool(row["stream"]),
            "status": row["status"],
            "http_status": row["http_status"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cache_read_tokens": row["cache_read_tokens"],
            "cache_write_tokens": row["cache_write_5m_tokens"] + row["cache_write_1h_tokens"],
            "cost_micro_usd": row["cost_micro"],
            "ttft_ms": _ms(row["ttft_ms"]),
            "duration_ms": _ms(row["duration_ms"]),
            "attempts": row["attempts"],
            "error_cause": "cancelled"
            if row["status"] == "cancelled"
            else error_cause(row["http_status"], causes),
        }
        self.logger.info(PlainLine(fields), extra={"request": fields})

    def rejected(
        self,
        protocol: str,
        route: str,
        request_id: str,
        key: dict[str, Any] | None,
        status: int,
        kind: str,
        now: float,
    ) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields = {
            "time": _iso(now),
            "request_id": request_id,
            "tenant": (key or {}).get("tenant") or "",
            "key_id": (key or {}).get("id"),
            "route": route,
            "protocol": protocol,
            "model": None,
            "provider": None,
            "account": None,
            "status": "rejected",
            "http_status": status,
            "error_cause": error_cause(status, kind=kind),
        }
        self.logger.info(PlainLine(fields), extra={"request": fields})


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class PlainLine:
    """A request line's message, rendered only if a plain formatter asks (JSON reads the fields)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return _plain(self.fields)


def _plain(f: dict[str, Any]) -> str:
    """The human line: ``req_x acme anthropic claude-sonnet-4-5 via anthropic-1 200 in 812.0 ms ...``."""
    parts = [f["request_id"], f["tenant"] or "-", f["protocol"], f["model"] or "-"]
    if f.get("account"):
        parts.append(f"via {f['account']}")
    parts.append(f"{f['http_status']} {f['status']}")
    if f.get("duration_ms") is not None:
        parts.append(f"in {f['duration_ms']} ms")
    if f.get("ttft_ms") is not None:
        parts.append(f"ttft {f['ttft_ms']} ms")
    if f.get("output_tokens") is not None:
        parts.append(f"tokens {f['input_tokens']}/{f['output_tokens']}")
        parts.append(f"cost {f['cost_micro_usd']} µUSD")
    if f.get("error_cause"):
        parts.append(f"cause {f['error_cause']}")
    return " ".join(str(p) for p in parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: a request line's fields, or time/level/logger/message for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "request", None)
        if fields is not None:
            out = {"event": "request", **fields}
        else:
            out = {
                "time": _iso(record.created),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


class _Enqueue(QueueHandler):
    """Hands records to the writer thread as they are: formatting happens there, off the event loop.
    (The stock ``prepare`` formats on the caller's thread; here a message's arguments are rendered a
    moment later, when written.)"""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int, fmt: str, path: str = "") -> QueueListener:
    """The headless gateway's logging: every record to stderr (or ``path``) as plain text or JSON lines.

    Records are queued and written by a listener thread, so a slow stderr pipe or disk never stalls the
    event loop. Stop the returned listener at exit (it flushes what is queued)."""
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    )
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN_FORMAT))
    queue: SimpleQueue[logging.LogRecord] = SimpleQueue()
    listener = QueueListener(queue, handler)
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(_Enqueue(queue))
    root.setLevel(level)
    listener.start()
    return listener
