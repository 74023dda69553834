"""The operator console: six screens over one *source*, switched with number keys or by clicking their tabs.

    ConsoleApp(LocalSource(rt))               inside the gateway process (``gatewaytui``)
    ConsoleApp(RemoteSource(url, token))      against a headless gateway (``gatewaytui attach``)

Bus events reach the console through one worker that reads ``source.events()``: it records the notable
ones for the overview's log and posts a ``SourceActivity`` message, which Textual coalesces
(``can_replace``), so a burst of events costs one redraw. Screens otherwise redraw from snapshots on their
own timers (see ``screens/base.py``). Every binding has an id; ``keymap`` remaps them by id, and the
command palette (ctrl+p) lists every action of the screen in front.

Notifications always time out, and never cover a dialog: while a dialog is open they go to its note line.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import ModalScreen, Screen

from .console import TABS
from .format import curl_lines
from .screens.accounts import AccountsScreen
from .screens.base import ConsoleScreen
from .screens.dialogs import ConfirmDialog, Dialog, SecretDialog, explain
from .screens.help import HelpScreen
from .screens.overview import OverviewScreen
from .screens.routing import RoutingScreen
from .screens.streams import StreamsScreen
from .screens.tenants import TenantsScreen
from .source import ActionError, Source

log = logging.getLogger("gatewaytui.tui")

_CLASSES: dict[str, type[ConsoleScreen]] = {
    "overview": OverviewScreen,
    "streams": StreamsScreen,
    "accounts": AccountsScreen,
    "tenants": TenantsScreen,
    "routing": RoutingScreen,
    "help": HelpScreen,
}
SCREENS: list[tuple[str, str, type[ConsoleScreen]]] = [(mode, title, _CLASSES[mode]) for mode, title in TABS]

NOISY = ("request.started", "request.finished", "account.quota")  # not logged, unless they report an error
THEMES = ("textual-dark", "textual-light")
NOTIFY_TIMEOUT = 5.0  # seconds; no notification stays until clicked

_screens = Binding.Group("Screens", compact=True)


class SourceActivity(Message):
    """Bus events arrived; the topics wait in ``ConsoleApp.pending_topics``. Bursts collapse into one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SourceActivity)


class ConsoleApp(App[None]):
    TITLE = "gatewaytui"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, Any]] = {mode: cls for mode, _, cls in SCREENS}
    BINDINGS: ClassVar[list[BindingType]] = [
        # The tabs at the top show the numbers (and take clicks), so the footer need not repeat them.
        *[
            Binding(str(i), f"show('{mode}')", title, id=f"show.{mode}", group=_screens, show=False)
            for i, (mode, title, _) in enumerate(SCREENS, start=1)
        ],
        Binding("question_mark", "show('help')", "Help", id="show.help-alt", show=False),
        Binding("t", "toggle_theme", "Theme", id="app.theme"),
        Binding("ctrl+p", "command_palette", "Commands", id="app.palette"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        source: Source,
        *,
        refresh_ms: int | None = None,
        theme: str | None = None,
        keymap: dict[str, str] | None = None,
        screen: str = "overview",
        notice: str | None = None,
        base_url: str | None = None,
        demo_key: str | None = None,
    ) -> None:
        super().__init__()
        self.notice = notice  # a line for the overview's connection panel (e.g. "listening on ...")
        self.base_url = base_url  # where clients connect; the overview shows it with a curl line
        self.demo_key = demo_key  # the demo tenant's key: shown in the overview and again with K
        if screen not in self.MODES:
            raise ValueError(f"no console screen {screen!r}; one of {', '.join(self.MODES)}")
        self.source = source
        self.first_screen = screen
        self.opened = asyncio.Event()
        self.link = "connecting"
        self.last_snapshot: dict[str, Any] | None = None
        self.event_log: deque[dict[str, Any]] = deque(maxlen=200)
        self.events_seen = 0
        self.pending_topics: set[str] = set()
        self.keymap_overrides: dict[str, str] = dict(keymap or {})
        self._refresh_ms = refresh_ms
        self._theme_given = theme
        self._settings_applied = False
        self.closed = False
        if theme:
            self.theme = theme
        if keymap:
            self.set_keymap(keymap)

    # -------------------------------------------------------------- life cycle

    @property
    def refresh_s(self) -> float:
        return max(50, self._refresh_ms or 500) / 1000

    async def on_mount(self) -> None:
        try:
            await self.source.open()
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.link = f"offline: {exc}"
        self.opened.set()
        await self.switch_mode(self.first_screen)
        self.run_worker(self._pump(), group="events", exit_on_error=False)

    async def on_unmount(self) -> None:
        await self.close_source()

    async def action_quit(self) -> None:
        """Quit; with requests in flight, ask first (in-process, quitting stops the gateway and drains them)."""
        inflight = int(((self.last_snapshot or {}).get("stats") or {}).get("inflight") or 0)
        if inflight and not isinstance(self._top(), ModalScreen):
            what = "the gateway stops and drains them" if self.source.name == "local" else "they go on"
            question = (
                f"{inflight} request{'s' if inflight != 1 else ''} in flight; quit the console ({what})?"
            )

            async def answered(yes: bool | None) -> None:
                if yes:
                    await self.leave()

            self.push_screen(ConfirmDialog(question), answered)
            return
        await self.leave()

    async def leave(self) -> None:
        await self.close_source()
        self.exit()

    async def close_source(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                await self.source.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the console's source failed")

    # -------------------------------------------------------------- data

    async def fetch_snapshot(self) -> dict[str, Any] | None:
        """The source's snapshot, or the last good one if the source fails (the failure shows in the status bar)."""
        try:
            snap = await self.source.snapshot()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a console must survive its source
            self.link = f"offline: {str(exc)[:60]}"
            return self.last_snapshot
        self.link = "● live"
        self.last_snapshot = snap
        if not self._settings_applied:
            self._apply_settings(snap.get("console") or {})
        return snap

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        self._settings_applied = True
        if self._refresh_ms is None and isinstance(settings.get("refresh_ms"), int):
            self._refresh_ms = settings["refresh_ms"]
        if self._theme_given is None and settings.get("theme") in self.available_themes:
            self.theme = settings["theme"]
        keymap = settings.get("keymap")
        if isinstance(keymap, dict) and keymap:
            self.keymap_overrides = {**keymap, **self.keymap_overrides}
            self.set_keymap(self.keymap_overrides)

    async def _pump(self) -> None:
        async for event in self.source.events():
            self.events_seen += 1
            topic = str(event.get("topic", ""))
            data = event.get("data") or {}
            if topic not in NOISY or data.get("error") or data.get("status") == "error":
                self.event_log.appendleft(event)
            self.pending_topics.add(topic)
            self.post_message(SourceActivity())

    def on_source_activity(self, _: SourceActivity) -> None:
        topics, self.pending_topics = self.pending_topics, set()
        screen = self._top()
        if isinstance(screen, ConsoleScreen):
            screen.on_bus(topics)

    def _top(self) -> Screen[Any] | None:
        try:
            return self.screen
        except ScreenStackError:  # starting up or shutting down
            return None

    # -------------------------------------------------------------- actions

    def perform(
        self,
        work: Awaitable[Any],
        done: str | None = None,
        *,
        after: Callable[[], None] | None = None,
        then: Callable[[Any], object] | None = None,  # its return value is not used
    ) -> None:
        """Run an operator action without a dialog (a key on a table row) as a worker: notify its outcome,
        then call ``then(result)`` and ``after()``. Actions answered in a dialog go through
        ``ConsoleScreen.ask``, which shows a refusal inside the dialog instead."""

        async def run() -> None:
            try:
                result = await work
            except Exception as exc:  # noqa: BLE001 - a failed action must not end the console
                if not isinstance(exc, ActionError):
                    log.exception("console action failed")
                title, message = explain(exc)
                self.notify(message, title=title, severity="error", timeout=8, markup=False)
                return
            if done:
                self.notify(done, timeout=3, markup=False)
            if then is not None:
                then(result)
            if after is not None:
                after()

        self.run_worker(run(), group="action", exit_on_error=False)

    async def settle(self) -> None:
        """Wait for running actions and reloads (tests and the screenshot script use this, never sleeps)."""
        for _ in range(10):
            busy = [w for w in self.workers if w.group in ("action", "reload") and not w.is_finished]
            if not busy:
                return
            await self.workers.wait_for_complete(busy)

    # -------------------------------------------------------------- bindings

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("show", "toggle_theme", "show_demo_key", "command_palette") and isinstance(
            self._top(), ModalScreen
        ):
            return False  # finish or dismiss the dialog first
        if action == "show_demo_key":
            return self.demo_key is not None
        return True

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A toast that times out, or, while a dialog is open, a line in the dialog (a toast would cover it)."""
        top = self._top()
        if isinstance(top, Dialog):
            top.note(f"{title}: {message}" if title else message, severity)
            return
        super().notify(
            message, title=title, severity=severity, timeout=timeout or NOTIFY_TIMEOUT, markup=markup
        )

    def action_show_demo_key(self) -> None:
        if self.demo_key is not None:
            self.push_screen(
                SecretDialog(
                    {"kind": "demo", "tenant": "demo"},
                    self.demo_key,
                    title=f"The demo tenant's key (clients connect to {self.base_url or 'the gateway'})",
                    shown_once=False,
                    extra=curl_lines(self.base_url, self.demo_key) if self.base_url else None,
                )
            )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every action the screen in front offers (its keys, the app's keys), then Textual's own. A focused
        widget's own keys (a table's cursor movement) and Textual's defaults (ctrl+q, ctrl+c, tab) are left
        out: the console's own bindings, all with ids, are the operator's actions."""
        seen: set[str] = set()
        for _, (node, binding, enabled, _) in screen.active_bindings.items():
            if (node is not screen and node is not self) or not binding.id:
                continue
            if not enabled or not binding.description or binding.action in seen:
                continue
            if binding.action in ("command_palette", "app.command_palette"):
                continue
            seen.add(binding.action)
            key = self.get_key_display(binding)
            yield SystemCommand(binding.description, f"key {key}", _runner(self, binding.action, node))
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Theme", "Keys"):  # the console's own quit asks first
                yield command

    async def action_show(self, mode: str) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, ModalScreen):
            self.pop_screen()  # leave a detail screen when switching away
        await self.switch_mode(mode)

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.current_theme.dark else THEMES[0]


def _runner(app: App[Any], action: str, node: Any) -> Callable[[], Awaitable[Any]]:
    async def run() -> None:
        await app.run_action(action, node)

    return run
