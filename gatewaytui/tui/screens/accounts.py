"""Accounts: health, cooldown cause with a live countdown, load, RPM and quota; add, enable/disable, reset, prefer."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Label, Static

from ..format import HEALTH_STYLE, bar, cooldown, count, duration, percent, short, styled
from ..widgets import Col, LiveTable
from .base import ConsoleScreen
from .dialogs import AddAccountDialog, ConfirmDialog, OAuthDialog

PROVIDER_SHORT = {"openai-compatible": "compat", "openrouter": "openrouter"}

COLUMNS = [
    Col("label", "Account", 10, grow=2),
    Col("provider", "Provider", 8, grow=1, drop=3, most=17),
    Col("health", "Health", 9),
    Col("cooldown", "Cooldown", 8, grow=1, most=16),
    Col("live", "Live", 4),
    Col("rpm", "RPM", 5, drop=1),
    Col("quota", "Quota", 9),
    Col("h5", "5h", 9),
    Col("d7", "7d", 9, drop=2),
    Col("pref", "★", 1),
]


def quota_used(quota: dict[str, Any] | None) -> float | None:
    """The most constrained of the request and token windows, as a used fraction."""
    if not quota:
        return None
    used = []
    for kind in ("requests", "tokens", "input_tokens", "output_tokens"):
        limit, remaining = quota.get(f"{kind}_limit"), quota.get(f"{kind}_remaining")
        if isinstance(limit, int) and isinstance(remaining, int) and limit > 0:
            used.append(1 - remaining / limit)
    return max(used) if used else None


def account_row(a: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    quota = a.get("quota") or {}
    rpm = f"{a['rpm_used']}/{a['rpm']}" if a.get("rpm") else str(a["rpm_used"])
    return a["id"], (
        a["label"],
        PROVIDER_SHORT.get(a["provider"], a["provider"]),
        styled(a["health"], HEALTH_STYLE),
        cooldown(a),
        str(a["inflight"]),
        rpm,
        bar(quota_used(quota), 4),
        bar(quota.get("unified_5h_utilization"), 4),
        bar(quota.get("unified_7d_utilization"), 4),
        Text("★", style="bold yellow") if a["preferred"] else "",
    )


class AccountsScreen(ConsoleScreen):
    CSS_PATH = "accounts.tcss"
    MODE = "accounts"
    WATCH = ("account.",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", id="accounts.add"),
        Binding("e", "toggle_enabled", "On/off", id="accounts.toggle"),
        Binding("c", "reset", "Clear cooldown", id="accounts.reset"),
        Binding("p", "prefer", "Prefer", id="accounts.prefer"),
        Binding("x", "remove", "Remove", id="accounts.remove"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Label("Upstream accounts", id="title", classes="section")
        yield LiveTable(COLUMNS, id="accounts")
        yield Static("", id="detail")

    @property
    def table(self) -> LiveTable:
        return self.query_one("#accounts", LiveTable)

    def selected(self) -> dict[str, Any] | None:
        key = self.table.selected_key
        if key is None or self.snap is None:
            return None
        return next((a for a in self.snap["accounts"] if a["id"] == key), None)

    def show(self, snap: dict[str, Any]) -> None:
        accounts = snap["accounts"]
        healthy = sum(1 for a in accounts if a["health"] == "healthy")
        self.query_one("#title", Label).update(f"Upstream accounts ({healthy}/{len(accounts)} healthy)")
        self.table.sync([account_row(a) for a in accounts])
        self._show_detail()

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        a = self.selected()
        detail = self.query_one("#detail", Static)
        if a is None or self.snap is None:
            detail.update(Text("no account selected · press a to add one", style="dim"))
            return
        now = self.snap["at"]
        text = Text()
        text.append(a["label"], style="bold")
        text.append(
            f" · {a['provider']} · {a['base_url']} · {a['auth']} · priority {a['priority']} · weight {a['weight']}"
        )
        text.append(f" · from {a['source']}" + (" · preferred" if a["preferred"] else ""))
        text.append(f"\nserved {a['served']} · errors {a['errors']} · in flight {a['inflight']}")
        text.append(f" · models {', '.join(a['models']) if a['models'] else 'all'}")
        cd = a.get("cooldown")
        if cd:
            text.append("\ncooling down: ", style="bold yellow")
            since = f", since {duration(now - cd['since'])} ago" if cd.get("since") else ""
            text.append(f"{cd.get('cause')} · {duration(cd['remaining_s'])} left{since}")
        if a.get("disabled_reason"):
            text.append("\ndisabled: ", style="bold red")
            text.append(str(a["disabled_reason"]))
        if a.get("last_error"):
            text.append("\nlast error: ", style="dim")
            text.append(short(a["last_error"], 200))
        for model, until in (a.get("model_cooldowns") or {}).items():
            text.append(f"\nmodel {model} unavailable for {duration(until - now)}", style="yellow")
        quota = a.get("quota") or {}
        if quota:
            text.append("\nquota: " + _quota_text(quota))
        detail.update(text)

    # -------------------------------------------------------------- actions

    def _need(self) -> dict[str, Any] | None:
        a = self.selected()
        if a is None:
            self.notify("select an account first", severity="warning", markup=False)
        return a

    def action_add(self) -> None:
        def act(values: dict[str, Any]) -> tuple[Any, str | None]:
            source = self.console.source
            if values.get("oauth"):
                return source.begin_oauth(values["provider"], values["label"], values["base_url"]), None
            return source.add_account(**values), "account added"

        def then(values: dict[str, Any], result: dict[str, Any]) -> None:
            if values.get("oauth"):  # the sign-in started: follow it in its own dialog
                self.app.push_screen(OAuthDialog(result), signed_in)

        def signed_in(flow: dict[str, Any] | None) -> None:
            if flow:
                self.notify(f"account {flow.get('label') or ''} added", timeout=4, markup=False)
                self.kick()

        self.ask(AddAccountDialog(), act, then)

    def action_toggle_enabled(self) -> None:
        a = self._need()
        if a is not None:
            enable = not a["enabled"]
            self.perform(
                self.console.source.set_account_enabled(a["id"], enable),
                f"{a['label']} {'enabled' if enable else 'disabled'}",
            )

    def action_reset(self) -> None:
        a = self._need()
        if a is not None:
            self.perform(self.console.source.reset_account(a["id"]), f"{a['label']}: cooldown cleared")

    def action_prefer(self) -> None:
        a = self._need()
        if a is not None:
            self.perform(
                self.console.source.prefer_account(a["id"]),
                f"{a['label']} is now preferred for {a['provider']}",
            )

    def action_remove(self) -> None:
        a = self._need()
        if a is None:
            return

        self.ask(
            ConfirmDialog(f"Remove account {a['label']}? Requests stop using it at once."),
            lambda _: (self.console.source.remove_account(a["id"]), f"{a['label']} removed"),
        )


def _quota_text(q: dict[str, Any]) -> str:
    parts = []
    for kind in ("requests", "tokens", "input_tokens", "output_tokens"):
        if f"{kind}_limit" in q:
            parts.append(
                f"{kind.replace('_', ' ')} {count(q.get(f'{kind}_remaining'))}/{count(q[f'{kind}_limit'])} left"
            )
    for window in ("5h", "7d"):
        if f"unified_{window}_utilization" in q:
            parts.append(f"{window} {percent(q[f'unified_{window}_utilization'])}")
    if q.get("unified_status"):
        parts.append(f"status {q['unified_status']}")
    return " · ".join(parts) or "-"
