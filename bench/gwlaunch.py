"""Start ``gatewaytui`` with one lever switched off, for before/after measurements in the same run.

    python -m bench.gwlaunch [--no-uvloop] [--httpx-api] [--gc] [--cost-probe] <gatewaytui args>

``--no-uvloop``  makes ``uvloop`` unimportable, so the CLI falls back to the stock asyncio loop
``--gc``         lever on: ``gc.freeze()`` at start and a gen-0 threshold of 50,000 (fewer collections)
``--httpx-api``  the relay's POSTs through httpx's client API over the same aiohttp pool
                 (``httpx_aiohttp``) instead of aiohttp's directly: what skipping httpx is worth
``--cost-probe``  (``bench --cost``) the metrics hook ``Metrics.settled`` is called through
                 ``operator.call``, a C function nothing else calls, so callgrind can count it alone
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any


class _HttpxResponse:
    """``upstream.Response``'s surface over an httpx response."""

    def __init__(self, resp: Any) -> None:
        self._resp, self.status_code = resp, resp.status_code
        self.headers: Mapping[str, str] = resp.headers
        self.chunks: AsyncIterator[bytes] | None = None

    async def aread(self) -> bytes:
        return bytes(await self._resp.aread())

    def stream(self) -> AsyncIterator[bytes]:
        if self.chunks is None:
            self.chunks = self._resp.aiter_raw().__aiter__()
        return self.chunks

    async def aclose(self) -> None:
        await self._resp.aclose()


def _route_through_httpx() -> None:
    from gatewaytui.upstream import Upstream

    clients: dict[int, Any] = {}

    async def post(self: Upstream, url: str, body: bytes, headers: dict[str, str]) -> Any:
        client = clients.get(id(self)) or clients.setdefault(id(self), self.httpx_client())
        request = client.build_request("POST", url, content=body, headers=headers)
        return _HttpxResponse(await client.send(request, stream=True))

    Upstream.post = post  # type: ignore[method-assign]


def _probe_metrics() -> None:
    """Each ``Metrics`` answers ``settled`` through ``partial(operator.call, <its bound method>)``: two C
    calls more than usual (a few hundred instructions), and callgrind's inclusive count of
    ``_operator_call`` is the hook's own cost."""
    import functools
    import operator

    from gatewaytui.telemetry.metrics import Metrics

    init = Metrics.__init__

    def probed_init(self: Metrics, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.settled = functools.partial(operator.call, Metrics.settled.__get__(self))  # type: ignore[method-assign]

    Metrics.__init__ = probed_init  # type: ignore[method-assign]


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--no-uvloop" in argv:
        argv.remove("--no-uvloop")
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # import uvloop -> ImportError
    if "--httpx-api" in argv:
        argv.remove("--httpx-api")
        _route_through_httpx()
    if "--cost-probe" in argv:
        argv.remove("--cost-probe")
        _probe_metrics()
    if "--gc" in argv:
        argv.remove("--gc")
        import gc

        gc.set_threshold(50_000, 20, 20)
        from gatewaytui import host  # noqa: F401  (import the app's modules, then freeze what exists)

        gc.freeze()
    from gatewaytui.cli import main

    raise SystemExit(main(argv))
