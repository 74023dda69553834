"""Start ``gatewaytui`` with one lever switched off, for before/after measurements in the same run.

    python -m bench.gwlaunch [--no-uvloop] [--httpx-api] [--gc] <gatewaytui args>

``--no-uvloop``  makes ``uvloop`` unimportable, so the CLI falls back to the stock asyncio loop
``--gc``         lever on: ``gc.freeze()`` at start and a gen-0 threshold of 50,000 (fewer collections)
``--httpx-api``  hides ``open_upstream`` (``LeanUpstreamClient``'s and ``UpstreamClient``'s), so the relay
                 goes through httpx's client API over the aiohttp pool, as before either fast path existed
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--no-uvloop" in argv:
        argv.remove("--no-uvloop")
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # import uvloop -> ImportError
    if "--httpx-api" in argv:
        argv.remove("--httpx-api")
        from gatewaytui import runtime

        for name in ("LeanUpstreamClient", "UpstreamClient"):  # the subclass first: its own, then the base's
            cls = getattr(runtime, name, None)
            if cls is not None and "open_upstream" in vars(cls):
                delattr(cls, "open_upstream")
    if "--gc" in argv:
        argv.remove("--gc")
        import gc

        gc.set_threshold(50_000, 20, 20)
        from gatewaytui import host  # noqa: F401  (import the app's modules, then freeze what exists)

        gc.freeze()
    from gatewaytui.cli import main

    raise SystemExit(main(argv))
