"""Tenants: balances, holds, spend today, subscription quota, token rate and keys (with budget use and token
rate); create, mint (shown once, with a budget and a token rate), revoke, credit, set a tenant's token rate."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Label

from ..format import bar, count, duration, short, usd
from ..widgets import Col, LiveTable
from .base import ConsoleScreen
from .dialogs import (
    ConfirmDialog,
    CreateTenantDialog,
    CreditDialog,
    MintKeyDialog,
    SecretDialog,
    TenantRateDialog,
)

TENANT_COLUMNS = [
    Col("name", "Tenant", 8, grow=1),
    Col("balance", "Balance", 10, grow=1, most=14),
    Col("held", "Held", 8, grow=1, drop=2, most=14),
    Col("available", "Available", 10, grow=1, most=14),
    Col("today", "Today", 8, grow=1, drop=1, most=14),
    Col("plan", "Subscription", 17),
    Col("tpm", "Tok/min", 9, drop=3),
    Col("keys", "Keys", 5),
]
KEY_COLUMNS = [
    Col("id", "Key id", 20),
    Col("label", "Label", 8, grow=1),
    Col("kind", "Kind", 12),
    Col("prefix", "Prefix", 13, drop=4),
    Col("state", "State", 7),
    Col("age", "Age", 6),
    Col("rpm", "RPM", 4, drop=3),
    Col("budget", "Budget used", 11, grow=1, drop=1, most=26),
    Col("tpm", "Tok/min", 9, drop=1),  # after the budget: with the same rank, it leaves first
]
KEY_STATE_STYLE = {"active": "green", "revoked": "red", "expired": "yellow"}


def tenant_row(t: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    sub = t.get("subscription")
    if sub and sub.get("tokens_per_day"):
        plan: Any = Text(f"{short(sub['tier'], 6):<6} ")
        plan.append_text(bar(sub["tokens_today"] / sub["tokens_per_day"], 5))
    elif sub:
        plan = sub["tier"]
    else:
        plan = Text("pay as you go", style="dim")
    active = sum(1 for k in t["keys"] if k["state"] == "active")
    available = t["available_micro"]
    return str(t["id"]), (
        t["name"],
        usd(t["balance_micro"]),
        usd(t["held_micro"]),
        Text(usd(available), style="red" if available <= 0 else ""),
        usd(t["spend_today_micro"]),
        plan,
        rate(t.get("tokens_last_minute"), t.get("tpm")),
        f"{active}/{len(t['keys'])}",
    )


def rate(used: int | None, limit: int | None) -> Any:
    """Tokens in the last minute against a limit ("1.2k/10k"); "-" without a limit."""
    if not limit:
        return Text("-", style="dim")
    return Text(f"{count(used or 0)}/{count(limit)}", style="red" if (used or 0) >= limit else "")


def budget_use(k: dict[str, Any]) -> Any:
    """A key's budget: how much of it is spent or held, and how big it is per period."""
    budget = k.get("budget_micro")
    if not budget or "spent_micro" not in k:
        return Text("-", style="dim")
    used = bar((k["spent_micro"] + k["held_micro"]) / budget, 3)
    used.append(f" of {usd(budget)}/{k['budget_period']}")
    return used


def key_row(k: dict[str, Any], now: float) -> tuple[str, tuple[Any, ...]]:
    state = k["state"]
    return k["id"], (
        k["id"],
        k.get("label") or "-",
        k["kind"],
        k["prefix"] + "…",
        Text(state, style=KEY_STATE_STYLE.get(state, "")),
        duration(now - k["created_at"]),
        str(k["rpm"]) if k.get("rpm") else "-",
        budget_use(k),
        rate(k.get("tokens_last_minute"), k.get("tpm")),
    )


class TenantsScreen(ConsoleScreen):
    CSS_PATH = "tenants.tcss"
    MODE = "tenants"
    WATCH = ("tenant.", "key.")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "create", "New tenant", id="tenants.create"),
        Binding("k", "mint", "Mint key", id="tenants.mint"),
        Binding("c", "credit", "Credit", id="tenants.credit"),
        Binding("r", "revoke", "Revoke key", id="tenants.revoke"),
        Binding("l", "rate", "Token rate", id="tenants.rate"),
        Binding("tab", "app.focus_next", "Tenants/keys", id="tenants.next", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.follow: str | None = None  # a tenant just created: the cursor goes to it once it shows

    def compose_body(self) -> ComposeResult:
        yield Label("Tenants", id="tenants-title", classes="section")
        yield LiveTable(TENANT_COLUMNS, id="tenants")
        yield Label("Keys", id="keys-title", classes="section")
        yield LiveTable(KEY_COLUMNS, id="keys")

    def selected_tenant(self) -> dict[str, Any] | None:
        key = self.query_one("#tenants", LiveTable).selected_key
        if key is None or self.snap is None:
            return None
        return next((t for t in self.snap["tenants"] if str(t["id"]) == key), None)

    def show(self, snap: dict[str, Any]) -> None:
        tenants = snap["tenants"]
        total = sum(t["balance_micro"] for t in tenants)
        self.query_one("#tenants-title", Label).update(f"Tenants ({len(tenants)}, {usd(total)} prepaid)")
        table = self.query_one("#tenants", LiveTable)
        table.sync([tenant_row(t) for t in tenants])
        if self.follow is not None and table.select(self.follow):
            self.follow = None
            table.focus()
        self._show_keys()

    def on_data_table_row_highlighted(self, event: LiveTable.RowHighlighted) -> None:
        if event.data_table.id == "tenants":
            self._show_keys()

    def _show_keys(self) -> None:
        t = self.selected_tenant()
        keys = t["keys"] if t else []
        title = f"Keys of {t['name']} ({len(keys)})" if t else "Keys"
        self.query_one("#keys-title", Label).update(Text(title))
        now = self.snap["at"] if self.snap else 0.0
        self.query_one("#keys", LiveTable).sync([key_row(k, now) for k in keys])

    # -------------------------------------------------------------- actions

    def action_create(self) -> None:
        self.ask(
            CreateTenantDialog(),
            lambda v: (self.console.source.create_tenant(v["name"]), f"tenant {v['name']} ready"),
            then=lambda _, tenant: self._follow(tenant),
        )

    def _follow(self, tenant: dict[str, Any]) -> None:
        self.follow = str(tenant["id"])

    def action_mint(self) -> None:
        t = self.selected_tenant()
        self.ask(
            MintKeyDialog(t["name"] if t else ""),
            lambda values: (self.console.source.mint_key(**values), None),
            then=lambda _, minted: self.app.push_screen(SecretDialog(*minted)),
        )

    def action_credit(self) -> None:
        t = self.selected_tenant()

        def act(v: dict[str, Any]) -> tuple[Any, str]:
            work = self.console.source.credit(v["tenant"], v["amount_micro"], note=v["note"])
            return work, f"credited {v['display']} to {v['tenant']}"

        self.ask(CreditDialog(t["name"] if t else ""), act)

    def action_rate(self) -> None:
        t = self.selected_tenant()
        if t is None:
            self.notify("select a tenant first", severity="warning", markup=False)
            return

        def act(values: dict[str, Any]) -> tuple[Any, str]:
            tenant, tpm = values["tenant"], values["tpm"]
            said = f"{tenant}: {tpm:,} tokens per minute" if tpm else f"{tenant}: the default token rate"
            return self.console.source.set_tenant_tpm(tenant, tpm), said

        self.ask(TenantRateDialog(t["name"], t.get("own_tpm")), act)

    def action_revoke(self) -> None:
        key_id = self.query_one("#keys", LiveTable).selected_key
        if key_id is None:
            self.notify("select a key first (Tab moves to the keys table)", severity="warning", markup=False)
            return
        self.ask(
            ConfirmDialog(f"Revoke key {key_id}? Clients using it are refused at once."),
            lambda _: (self.console.source.revoke_key(key_id), f"key {key_id} revoked"),
        )
