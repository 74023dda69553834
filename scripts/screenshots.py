"""Produce screenshots/ from the running app: the demo gateway, live demo traffic, the console run headless.

    python scripts/screenshots.py [--out screenshots] [--size 120x36]

Each screen is saved as SVG (``App.save_screenshot``) and, when cairosvg is installed, as PNG. Nothing in
screenshots/ is drawn by hand: rerun this script after a console change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.widgets import Input  # noqa: E402

from gatewaytui.config import Config  # noqa: E402
from gatewaytui.demo.setup import DemoUpstream, seed, traffic  # noqa: E402
from gatewaytui.host import Gateway  # noqa: E402
from gatewaytui.ops import routing as routing_ops  # noqa: E402
from gatewaytui.ops import tenants as tenant_ops  # noqa: E402
from gatewaytui.tui.app import ConsoleApp  # noqa: E402
from gatewaytui.tui.source import LocalSource  # noqa: E402
from gatewaytui.tui.widgets import LiveTable  # noqa: E402

SHOTS: list[tuple[str, tuple[str, ...]]] = [
    ("1-overview", ("1",)),
    ("2-streams", ("2",)),
    ("3-accounts", ("3",)),
    ("4-tenants", ("4",)),
    ("5-routing", ("5",)),
    ("6-help", ("6",)),
]


async def until(condition: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def dress(gateway: Gateway, demo: DemoUpstream) -> str:
    """The demo's own seed, plus a few tenants, a quota reading and a rate-limited account to look at."""
    rt = gateway.rt
    key = await seed(rt)
    await tenant_ops.credit(rt, "acme", 40_000_000, note="invoice 1042", create=True)
    await tenant_ops.mint_key(rt, "acme", label="ci")
    await tenant_ops.mint_key(rt, "acme", kind="subscription", label="claude-code")
    await tenant_ops.credit(rt, "initech", 2_500_000, note="trial", create=True)
    await tenant_ops.mint_key(rt, "initech", label="prod")
    await routing_ops.set_alias(rt, "fast", "claude-haiku-4-5")
    await routing_ops.set_haiku_model(rt, "gemini-2.5-flash")
    demo.upstream.set_quota("demo-key-a1", five_hour=0.42, seven_day=0.18)
    demo.upstream.fail_key("demo-key-a2", 429, retry_after=90, times=3)
    return key


def save(app: ConsoleApp, out: Path, name: str, png: Any) -> list[Path]:
    svg = Path(app.save_screenshot(f"{name}.svg", str(out)))
    written = [svg]
    if png is not None:
        target = out / f"{name}.png"
        png.svg2png(url=str(svg), write_to=str(target), output_width=app.size.width * 12)
        written.append(target)
    return written


async def main(out: Path, size: tuple[int, int]) -> int:
    try:
        import cairosvg as png  # optional: `pip install cairosvg` (needs the cairo library)
    except (ImportError, OSError) as exc:
        print(f"note: PNGs skipped, cairosvg is unavailable ({exc}); SVGs only", file=sys.stderr)
        png = None
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GATEWAYTUI_SECRET_KEY", "screenshots-only-secret-key")
    workdir = tempfile.mkdtemp(prefix="gatewaytui-shots-")
    cfg = Config()
    cfg.demo = True
    cfg.server.port = 0
    cfg.server.graceful_timeout = 1.0
    cfg.database.path = str(Path(workdir) / "demo.db")
    demo = DemoUpstream()
    await demo.start(cfg)
    gateway = Gateway(cfg)
    await gateway.start()
    written: list[Path] = []
    load: asyncio.Task[None] | None = None
    try:
        rt = gateway.rt
        app = ConsoleApp(LocalSource(rt), refresh_ms=60_000, theme="textual-dark")
        async with app.run_test(size=size) as pilot:
            await app.opened.wait()
            key = await dress(gateway, demo)  # with the console up, so its event log shows the changes
            load = asyncio.create_task(traffic(gateway.base_url, key, interval=0.1))
            await until(lambda: rt.traffic.total >= 180 and len(rt.traffic.inflight) >= 6, 40)
            for name, keys in SHOTS:
                await pilot.press(*keys)
                await app.settle()
                await app.screen.reload()
                await pilot.pause()
                written += save(app, out, name, png)
            await pilot.press("2")
            recent = app.screen.query_one("#recent", LiveTable)
            recent.focus()
            await pilot.press("enter")
            await app.settle()
            await app.screen.reload()
            await pilot.pause()
            written += save(app, out, "2b-request-detail", png)
            await pilot.press("escape", "4", "k")
            await pilot.pause()
            app.screen.query_one("#label", Input).value = "laptop"
            await pilot.press("ctrl+s")
            for _ in range(100):
                await app.settle()
                if type(app.screen).__name__ == "SecretDialog":
                    break
                await pilot.pause(0.05)
            written += save(app, out, "4b-new-key-shown-once", png)
            await pilot.press("escape", "1", "t")
            await app.settle()
            await app.screen.reload()
            await pilot.pause()
            written += save(app, out, "1b-overview-light", png)
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
    parser.add_argument("--size", default="120x36", help="terminal columns x rows")
    args = parser.parse_args()
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    sys.exit(asyncio.run(main(Path(args.out), (cols, rows))))
