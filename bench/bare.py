"""The framework ceiling: a bare Quart app under Hypercorn that answers a constant reply.

It reads the request body (a gateway must) and answers prebuilt bytes; with ``"stream": true`` in the
body it streams the same number of prebuilt SSE frames the fake upstream sends. Hypercorn is set up
as gatewaytui's ``host.Gateway`` sets it up, on uvloop as the ``gatewaytui`` command runs it, so the
ratio to it isolates what gatewaytui's own code costs.

Run alone: ``python -m bench.bare --port 9200``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import AsyncIterator

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

from bench.upstream import CONST, DEFAULT_CHUNKS, anthropic_frames

FRAMES = anthropic_frames(DEFAULT_CHUNKS)


def create_app() -> Quart:
    app = Quart("bench-bare")
    app.config["RESPONSE_TIMEOUT"] = None

    @app.get("/health")
    async def health() -> Response:
        return Response(b"ok", content_type="text/plain")

    @app.post("/<path:anything>")
    async def reply(anything: str) -> Response:
        body = await request.get_data(cache=False)
        if b'"stream":true' in body or b'"stream": true' in body:

            async def frames() -> AsyncIterator[bytes]:
                for f in FRAMES:
                    yield f

            return Response(frames(), content_type="text/event-stream")
        return Response(CONST, content_type="application/json")

    return app


def hypercorn_config(port: int) -> Config:
    hc = Config()
    hc.bind = [f"127.0.0.1:{port}"]
    hc.keep_alive_timeout = 75
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.h11_max_incomplete_size = 64 * 1024
    return hc


async def run(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(create_app(), hypercorn_config(port), shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="bare Quart+Hypercorn constant-reply endpoint")
    p.add_argument("--port", type=int, default=9200)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(run(args.port))
    else:
        uvloop.run(run(args.port))


if __name__ == "__main__":
    main()
