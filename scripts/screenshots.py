"""Produce screenshots/ from the running app: the demo as a newcomer starts it, its own live traffic, and
the console run headless at 120x35 and at 80x24.

    python scripts/screenshots.py [--out screenshots] [--sizes 120x35,80x24]

Nothing is dressed up: the gateway is ``gatewaytui --demo`` (its seeded tenant, accounts and traffic), with
one setting a newcomer would turn on to see request bodies (``[console] store_bodies = true``). Each shot is
saved as SVG (``App.save_screenshot``) and, when cairosvg is installed (``pip install -e '.[screenshots]'``),
as PNG, under ``<out>/<size>/``. Rerun this script after a console change; nothing here is drawn by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.widgets import Input  # noqa: E402

from gatewaytui.config import Config  # noqa: E402
from gatewaytui.demo.setup import DemoUpstream, seed, traffic  # noqa: E402
from gatewaytui.host import Gateway  # noqa: E402
from gatewaytui.tui.app import ConsoleApp  # noqa: E402
from gatewaytui.tui.source import LocalSource  # noqa: E402
from gatewaytui.tui.widgets import LiveTable  # noqa: E402

Step = Callable[[Any], Awaitable[None]]


async def until(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def settle(pilot: Any) -> None:
    app = pilot.app
    await app.settle()
    if hasattr(app.screen, "reload"):
        await app.screen.reload()
    await pilot.pause()


async def keys(pilot: Any, *pressed: str) -> None:
    for key in pressed:
        await pilot.press(key)
        await settle(pilot)


async def request_detail(pilot: Any) -> None:
    await keys(pilot, "escape", "2")
    recent = pilot.app.screen.query_one("#recent", LiveTable)
    recent.focus()
    await keys(pilot, "enter")


async def filtered(pilot: Any) -> None:
    await keys(pilot, "escape", "2", "slash")
    box = pilot.app.screen.query_one("#filter", Input)
    box.value = "model:claude"
    box.cursor_blink = False
    await keys(pilot, "enter")
    pilot.app.screen._sort("cost", True)
    await settle(pilot)


async def new_key(pilot: Any) -> None:
    await keys(pilot, "escape", "4", "k")
    pilot.app.screen.query_one("#label", Input).value = "laptop"
    await pilot.press("ctrl+s")
    for _ in range(100):
        await pilot.app.settle()
        if type(pilot.app.screen).__name__ == "SecretDialog":
            break
        await pilot.pause(0.05)


async def palette(pilot: Any) -> None:
    await keys(pilot, "escape", "3")
    await pilot.press("ctrl+p")
    await pilot.pause(0.3)


SHOTS: list[tuple[str, Step]] = [
    ("1-overview", lambda p: keys(p, "1")),
    ("2-streams", lambda p: keys(p, "2")),
    ("2b-request-detail", request_detail),
    ("2c-history-filtered", filtered),
    ("3-accounts", lambda p: keys(p, "escape", "3")),
    ("3b-command-palette", palette),
    ("4-tenants", lambda p: keys(p, "escape", "escape", "4")),
    ("4b-new-key-shown-once", new_key),
    ("5-routing", lambda p: keys(p, "escape", "5")),
    ("6-help", lambda p: keys(p, "6")),
    ("1b-overview-light", lambda p: keys(p, "1", "t")),
]


def save(app: ConsoleApp, out: Path, name: str, png: Any) -> list[Path]:
    svg = Path(app.save_screenshot(f"{name}.svg", str(out)))
    written = [svg]
    if png is not None:
        target = out / f"{name}.png"
        png.svg2png(url=str(svg), write_to=str(target), output_width=app.size.width * 12)
        written.append(target)
    return written


async def shoot(gateway: Gateway, key: str, out: Path, size: tuple[int, int], png: Any) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    app = ConsoleApp(
        LocalSource(gateway.rt),
        refresh_ms=60_000,
        theme="textual-dark",
        base_url=gateway.base_url,
        demo_key=key,
    )
    written: list[Path] = []
    async with app.run_test(size=size) as pilot:
        await app.opened.wait()
        await settle(pilot)
        for name, step in SHOTS:
            await step(pilot)
            written += save(app, out, name, png)
    return written


async def main(out: Path, sizes: list[tuple[int, int]]) -> int:
    try:
        import cairosvg as png  # optional: `pip install -e '.[screenshots]'` (needs the cairo library)
    except (ImportError, OSError) as exc:
        print(f"note: PNGs skipped, cairosvg is unavailable ({exc}); SVGs only", file=sys.stderr)
        png = None
    os.environ.setdefault("GATEWAYTUI_SECRET_KEY", "screenshots-only-secret-key")
    workdir = tempfile.mkdtemp(prefix="gatewaytui-shots-")
    cfg = Config()
    cfg.demo = True
    cfg.server.port = 0
    cfg.server.graceful_timeout = 1.0
    cfg.database.path = str(Path(workdir) / "demo.db")
    cfg.console.store_bodies = True
    demo = DemoUpstream()
    await demo.start(cfg)
    gateway = Gateway(cfg)
    await gateway.start()
    written: list[Path] = []
    load: asyncio.Task[None] | None = None
    try:
        rt = gateway.rt
        key = await seed(rt)
        load = asyncio.create_task(traffic(gateway.base_url, key, interval=0.1))
        await until(lambda: rt.traffic.total >= 120 and len(rt.traffic.inflight) >= 3, 60)
        for cols, rows in sizes:
            written += await shoot(gateway, key, out / f"{cols}x{rows}", (cols, rows), png)
    finally:
        if load is not None:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
        await gateway.stop()
        await demo.stop()
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument(
        "--sizes", default="120x35,80x24", help="terminal sizes, columns x rows, comma-separated"
    )
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in args.sizes.split(",")]
    sys.exit(asyncio.run(main(Path(args.out), sizes)))  # type: ignore[arg-type]
