"""The metrics of every ``--workers`` worker in one scrape of their shared port.

The kernel hands each scrape of the shared port to one worker, so each worker also listens on a private
unix socket, ``<pid>.sock`` in the run directory its supervisor made (mode 0700: only the gateway's user,
that is its siblings, can connect). A connection there receives the worker's own families (its registry,
every sample labelled ``gateway_instance``) as JSON, then the socket is closed; nothing is read from the
caller and nothing else is served, so the socket widens no access. The worker answering ``GET /metrics``
asks all its siblings at once, waits at most ``timeout`` seconds for each, and merges the families by name
(one HELP/TYPE per family) before encoding them as the scraper asked. A sibling that is late, refuses or
sends something unreadable is left out of that scrape and counted in
``gatewaytui_scrape_worker_errors_total{cause}``; the scrape is answered regardless.

The JSON form carries each family's name, help, type and unit and each sample's name, labels and value
(the registry sets no timestamps or exemplars), so nothing is parsed back from the text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from ..codec import dumps, loads
from .metrics import Labelled

log = logging.getLogger("gatewaytui.telemetry")

TIMEOUT = 2.0  # seconds a sibling has to answer (Prometheus's default scrape timeout is 10)
CAUSES = ("timeout", "connection", "invalid")


class SiblingsError(Exception):
    pass


def socket_path(directory: str | Path, pid: int) -> Path:
    """Where the worker with this pid listens (the supervisor removes it when the worker dies)."""
    return Path(directory) / f"{pid}.sock"


def check_private(directory: Path) -> None:
    """The run directory must be ours and closed to everyone else, or a stranger could pose as a sibling."""
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SiblingsError(f"{directory} is not a directory private to this user (mode 0700)")


class Siblings(Collector):
    """This worker's private endpoint and its view of the others'; also the collector of its error counter."""

    def __init__(
        self,
        registry: CollectorRegistry,
        directory: str | Path,
        instance: str,
        *,
        pid: int | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        """``registry``: this worker's (every sample labelled ``instance``); ``pid`` names its socket."""
        self.registry = registry
        self.instance = instance
        self.directory = Path(directory)
        self.path = socket_path(directory, os.getpid() if pid is None else pid)
        self.timeout = timeout
        self.errors = dict.fromkeys(CAUSES, 0)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the private socket; SiblingsError or OSError if the run directory does not serve."""
        check_private(self.directory)
        self.path.unlink(missing_ok=True)  # left by an earlier process with our pid
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)
        self.registry.register(Labelled(self, self.instance))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):  # an asker that stopped reading does not hold us up
                await asyncio.wait_for(self._server.wait_closed(), self.timeout)
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _serve(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(encode(self.registry.collect()))
            async with asyncio.timeout(self.timeout):
                await writer.drain()
        except (OSError, TimeoutError):  # the asking sibling gave up, or stopped reading
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def families(self) -> list[Metric]:
        """This worker's families merged with those of every sibling that answered in time. Its own are
        collected last, so its error counter already counts the siblings this scrape leaves out."""
        others = sorted(p for p in self.directory.glob("*.sock") if p != self.path)
        answers = await asyncio.gather(*(self._ask(p) for p in others))
        return merge([list(self.registry.collect()), *(a for a in answers if a is not None)])

    async def _ask(self, path: Path) -> list[Metric] | None:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(str(path))
                try:
                    data = await reader.read()
                finally:
                    writer.close()
            return decode(data)
        except TimeoutError:
            cause = "timeout"
        except OSError:  # it died (the supervisor removes its socket and starts another)
            cause = "connection"
        except (ValueError, TypeError, KeyError, AttributeError):
            cause = "invalid"
        self.errors[cause] += 1
        log.warning("metrics of the worker at %s left out of this scrape (%s)", path, cause)
        return None

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "gatewaytui_scrape_worker_errors",
            "Sibling workers left out of a scrape this worker answered, by cause",
            labels=("cause",),
        )
        for cause, n in self.errors.items():
            family.add_metric((cause,), n)
        yield family


class Gathered(Collector):
    """Families already collected, in the shape the exposition encoders take (``collect()``)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def encode(families: Iterable[Metric]) -> bytes:
    return dumps(
        [
            {
                "name": f.name,
                "help": f.documentation,
                "type": f.type,
                "unit": f.unit,
                "samples": [[s.name, s.labels, _number(s.value)] for s in f.samples],
            }
            for f in families
        ]
    )


def decode(data: bytes) -> list[Metric]:
    """``encode``'s families; ValueError, TypeError, KeyError or AttributeError if ``data`` is not that."""
    doc = loads(data)
    if not isinstance(doc, list):
        raise ValueError("not a list of families")
    out = []
    for f in doc:
        family = Metric(str(f["name"]), str(f["help"]), str(f["type"]), str(f["unit"]))
        family.samples = [
            Sample(str(name), {str(k): str(v) for k, v in labels.items()}, float(value))
            for name, labels, value in f["samples"]
        ]
        out.append(family)
    return out


def merge(collections: Iterable[Iterable[Metric]]) -> list[Metric]:
    """One family per name, holding the samples of every collection (each worker's carry its own
    ``gateway_instance``, so none collide); a family whose type differs from the first seen is dropped."""
    merged: dict[str, Metric] = {}
    for families in collections:
        for f in families:
            into = merged.get(f.name)
            if into is None:
                into = merged[f.name] = Metric(f.name, f.documentation, f.type, f.unit)
            elif into.type != f.type:
                continue  # workers of one supervisor run the same code: not expected
            into.samples.extend(f.samples)
    return list(merged.values())


def _number(value: Any) -> float | str:
    """JSON has no infinities or NaN: those travel as ``float()``'s spelling of them."""
    value = float(value)
    return value if math.isfinite(value) else repr(value)
