"""What every console screen shares: the status bar and footer, and a refresh timer that only runs while visible.

A screen redraws from a snapshot. ``kick()`` starts one reload (a worker: fetch, then ``show``); when it
ends, the screen re-arms a one-shot timer only if it is still the visible screen. A suspended screen
therefore costs nothing, and on resume it reloads at once. Kicks that arrive during a reload (bus events)
collapse into one more reload, so a burst of events never queues a burst of fetches.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer

from ..console import Console
from ..widgets import ConsoleFooter, StatusBar
from .dialogs import Dialog

BACKOFF = 5  # the next redraw waits at least this many times as long as the last one took


class ConsoleScreen(Screen[None]):
    MODE: ClassVar[str] = ""
    WATCH: ClassVar[tuple[str, ...]] = ()  # bus topic prefixes that warrant an immediate reload

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self._busy = False
        self._again = False
        self.snap: dict[str, Any] | None = None
        self.reloads = 0

    @property
    def console(self) -> Console:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusBar(self.MODE)
        yield from self.compose_body()
        yield ConsoleFooter()

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    # -------------------------------------------------------------- refresh cycle

    def on_screen_resume(self) -> None:
        if self.console.opened.is_set():
            self.kick()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:  # a hidden screen keeps no timer; resuming reloads at once
            self._timer.stop()
            self._timer = None

    def kick(self) -> None:
        if self._busy:
            self._again = True
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._busy = True
        self.run_worker(self._cycle(), group="reload", exit_on_error=False)

    def _tick(self) -> None:
        self._timer = None
        if self.is_current:
            self.kick()

    async def _cycle(self) -> None:
        started = time.perf_counter()
        try:
            while True:
                self._again = False
                await self.reload()
                if not self._again:
                    break
        except NoMatches:  # the screen was torn down while a reload was under way
            return
        finally:
            self._busy = False
        cost = time.perf_counter() - started
        if self.is_current and self.is_attached and self._timer is None:
            # The console shares the gateway's loop: if a redraw gets expensive, redraw less often
            # (at most ~20% of the loop) rather than slow down the streams.
            self._timer = self.set_timer(max(self.console.refresh_s, cost * BACKOFF), self._tick)

    async def reload(self) -> None:
        """Fetch a snapshot and redraw (awaitable directly by tests and the screenshot script)."""
        snap = await self.console.fetch_snapshot()
        self.query_one(StatusBar).show(snap, self.console.link)
        if snap is not None:
            self.snap = snap
            self.reloads += 1
            self.show(snap)

    def show(self, snap: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_bus(self, topics: set[str]) -> None:
        """Bus events arrived (coalesced); reload now if any concerns this screen."""
        if self.is_current and self.WATCH and any(t.startswith(self.WATCH) for t in topics):
            self.kick()

    # -------------------------------------------------------------- actions

    def perform(self, work: Awaitable[Any], done: str | None = None) -> None:
        """Run an operator action as a worker; report the outcome and reload."""
        self.console.perform(work, done, after=self.kick)

    def ask(
        self,
        dialog: Dialog,
        act: Callable[[Any], tuple[Awaitable[Any], str | None]],
        then: Callable[[Any, Any], object] | None = None,
    ) -> None:
        """Open a dialog whose answer runs an operator action: ``act(values)`` gives (the action, what it did).

        The dialog stays open until the action answers. A refusal shows in the dialog (by the field it
        concerns) with the typed values kept; on success the dialog closes, the console notifies what it
        did, calls ``then(values, result)`` and reloads. Every dialog of every screen goes through here.
        """

        async def run(values: Any) -> tuple[Any, Any, str | None]:
            work, said = act(values)
            return values, await work, said

        def answered(outcome: tuple[Any, Any, str | None] | None) -> None:
            if outcome is None:
                return
            values, result, said = outcome
            if said:
                self.notify(said, timeout=3, markup=False)
            if then is not None:
                then(values, result)
            self.kick()

        dialog.act = run
        self.app.push_screen(dialog, answered)
