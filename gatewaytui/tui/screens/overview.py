"""Overview: where clients connect, request and token rates, errors, spend, latency and TTFT, account health,
notable events, and, on a shared store with more than one instance, every instance of the cluster with its
requests in flight and the age of its last lease renewal (the snapshot's ``cluster`` section).

The connection panel shows the base URL (and, in the demo, the tenant key with a curl line to try it) for as
long as the console runs; ``k`` shows the demo key again in a dialog with a copy button."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Label, Static

from ..format import HEALTH_STYLE, cooldown, count, curl_line, duration, ms, percent, rate, styled, usd
from ..widgets import Col, LiveTable, Tile, Trend
from .base import ConsoleScreen


class OverviewScreen(ConsoleScreen):
    CSS_PATH = "overview.tcss"
    MODE = "overview"
    WATCH = ("account.", "tenant.", "routing.")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "app.show_demo_key", "Demo key", id="overview.demo-key"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(self._connection(), id="connection")
        with Horizontal(id="tiles"):
            yield Tile("Req/s", id="rps")
            yield Tile("Tok/s", id="tps")
            yield Tile("Errors", id="errors")
            yield Tile("Spend", id="spend")
            yield Tile("Latency", id="latency")
            yield Tile("TTFT", id="ttft")
        with Horizontal(id="trends"):
            yield Trend("Requests / s, last 60 s", id="trend-requests")
            yield Trend("Output tokens / s, last 60 s", id="trend-tokens")
        with Horizontal(id="lower"):
            with Vertical(id="health"):
                yield Label("Accounts", classes="section")
                yield LiveTable(
                    [
                        Col("label", "Account", 10, grow=2),
                        Col("health", "Health", 9),
                        Col("live", "Live", 4),
                        Col("cooldown", "Cooldown", 8, grow=1, most=16),
                    ],
                    id="accounts",
                )
            with Vertical(id="log"):
                yield Label("Events", classes="section")
                yield Static("", id="events")

    def _connection(self) -> Text:
        app = self.console
        text = Text()
        if app.base_url:
            text.append("clients connect to ", style="dim")
            text.append(app.base_url, style="bold")
        elif app.notice:
            text.append(app.notice)
        if app.demo_key:
            text.append("   (k: the key again, with copy)\n", style="dim")
            text.append("demo key ", style="dim")
            text.append(app.demo_key, style="bold")
            if app.base_url:
                text.append("\n" + curl_line(app.base_url, app.demo_key), style="dim")
        return text

    def on_mount(self) -> None:
        self.query_one("#connection", Static).display = bool(self.console.base_url or self.console.notice)

    def show(self, snap: dict[str, Any]) -> None:
        stats = snap["stats"]
        series = snap["traffic"]["series"]
        self.query_one("#rps", Tile).show(rate(stats["requests_per_s"]), f"{stats['inflight']} live")
        self.query_one("#tps", Tile).show(count(stats["tokens_per_s"]), "output")
        # The last minute's share and the counts it comes from (the same window as the trends).
        errors, total = int(sum(series["errors"][:-1])), int(sum(series["requests"][:-1]))
        share = errors / total if total else 0.0
        self.query_one("#errors", Tile).show(
            percent(share),
            f"{count(errors)} of {count(total)}",
            level="bad" if share > 0.05 else "warn" if share > 0.01 else "",
        )
        self.query_one("#spend", Tile).show(usd(stats["spend_today_micro"]), "today")
        self.query_one("#latency", Tile).show(
            ms(stats.get("latency_p50_ms")), f"p95 {ms(stats.get('latency_p95_ms'))}"
        )
        self.query_one("#ttft", Tile).show(
            ms(stats.get("ttft_p50_ms")), f"p95 {ms(stats.get('ttft_p95_ms'))}"
        )
        reqs, toks = series["requests"][:-1], series["tokens"][:-1]
        self.query_one("#trend-requests", Trend).show(  # the window its title names, as the errors tile
            reqs, f"peak {max(reqs, default=0):g}/s · {count(total)} in 60 s"
        )
        self.query_one("#trend-tokens", Trend).show(toks, f"peak {count(max(toks, default=0))}/s")
        self.query_one("#accounts", LiveTable).sync(
            [
                (a["id"], (a["label"], styled(a["health"], HEALTH_STYLE), str(a["inflight"]), cooldown(a)))
                for a in snap["accounts"]
            ]
        )
        self._show_instances(snap.get("cluster"))
        self._show_events(snap["at"])

    def _show_instances(self, cluster: dict[str, Any] | None) -> None:
        """The Instances panel, there while the cluster has more than one instance."""
        instances = (cluster or {}).get("instances") or []
        present = self.query("#instances")
        if len(instances) < 2:
            if present:
                self.query("#instances-title").remove()
                present.remove()
            return
        if present:
            table = self.query_one("#instances", LiveTable)
        else:
            table = LiveTable(
                [
                    Col("instance", "Instance", 10, grow=1),
                    Col("live", "Live", 4),
                    Col("lease", "Lease", 5),
                    Col("url", "URL", 10, grow=1, drop=1),
                ],
                id="instances",
            )
            self.query_one("#log").mount(
                Label("Instances", classes="section", id="instances-title"), table, before=0
            )
        table.sync(
            [
                (
                    i["id"],
                    (
                        Text(
                            ("▸ " if i.get("self") else "  ") + f"{i['host']}:{i['pid']}",
                            style="bold" if i.get("self") else "",
                        ),
                        str(i.get("inflight", 0)),
                        duration(i.get("lease_age")),
                        i.get("url") or "",
                    ),
                )
                for i in instances
            ]
        )

    def _show_events(self, now: float) -> None:
        text = Text()
        for event in list(self.console.event_log)[:40]:
            at = event.get("at")
            age = duration(now - at) if isinstance(at, (int, float)) else ""
            text.append(f"{age:>6} ", style="dim")
            text.append(f"{event.get('topic', ''):<20}", style="bold")
            text.append(" " + _describe(event.get("data") or {}) + "\n")
        if not text:
            text.append("no events yet", style="dim")
        self.query_one("#events", Static).update(text)

    def on_bus(self, topics: set[str]) -> None:
        if self.snap is not None and self.is_current:
            try:
                self._show_events(self.snap["at"])
            except NoMatches:  # being torn down
                return
        super().on_bus(topics)


def _describe(data: dict[str, Any]) -> str:
    parts = []
    for key in ("label", "name", "tenant", "key_id", "model", "cause", "status", "note", "reason", "error"):
        value = data.get(key)
        if value not in (None, ""):
            parts.append(str(value))
    for key in ("default_model", "haiku_model", "preset", "tier", "tpm"):
        if key in data:
            parts.append(f"{key}={data[key] or '(off)'}")
    if isinstance(data.get("aliases"), dict):
        parts.append("aliases " + (", ".join(f"{a}→{t}" for a, t in data["aliases"].items()) or "(none)"))
    return " · ".join(parts)[:120]
