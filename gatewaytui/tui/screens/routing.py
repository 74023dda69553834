"""Models and routing: the default model, the haiku lane, aliases, fallbacks, and each model's provider and
price."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Label, Static

from ..format import price
from ..widgets import Col, LiveTable
from .base import ConsoleScreen
from .dialogs import AliasDialog, ConfirmDialog, FallbackDialog, HaikuDialog

MODEL_COLUMNS = [
    Col("name", "Model", 12, grow=2),
    Col("provider", "Provider", 8, grow=1, most=16),
    Col("upstream", "Upstream", 10, grow=1, drop=1),
    Col("in", "In $/M", 7),
    Col("out", "Out $/M", 7),
    Col("aliases", "Aliases", 8, grow=1, drop=2),
]
ALIAS_COLUMNS = [
    Col("alias", "Alias", 10, grow=1),
    Col("target", "Model", 12, grow=1),
    Col("source", "Set by", 9),
]
FALLBACK_COLUMNS = [
    Col("model", "Model", 12, grow=1),
    Col("then", "Then, in order", 14, grow=2),
]


class RoutingScreen(ConsoleScreen):
    CSS_PATH = "routing.tcss"
    MODE = "routing"
    WATCH = ("routing.",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "default", "Make default", id="routing.default"),
        Binding("h", "haiku", "Haiku lane", id="routing.haiku"),
        Binding("a", "alias", "Alias", id="routing.alias"),
        Binding("x", "unalias", "Drop alias", id="routing.unalias"),
        Binding("f", "fallbacks", "Fallbacks", id="routing.fallbacks"),
        Binding("tab", "app.focus_next", "Models/aliases", id="routing.next", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="lanes")
        yield Label("Models", classes="section")
        yield LiveTable(MODEL_COLUMNS, id="models")
        yield Label("Aliases", classes="section")
        yield LiveTable(ALIAS_COLUMNS, id="aliases")
        yield Label("Fallbacks (when no account of a model can serve)", classes="section")
        yield LiveTable(FALLBACK_COLUMNS, id="fallbacks")

    def show(self, snap: dict[str, Any]) -> None:
        r = snap["routing"]
        text = Text()
        text.append("default model ", style="dim")
        text.append(r["default_model"] or "(none)", style="bold")
        text.append("   haiku lane ", style="dim")
        text.append(r["haiku_model"] or "(off)", style="bold" if r["haiku_model"] else "dim")
        text.append("   strategy ", style="dim")
        text.append(r["strategy"], style="bold")
        self.query_one("#lanes", Static).update(text)
        rows = []
        for m in r["models"]:
            name = Text(m["name"], style="bold") if m["name"] == r["default_model"] else m["name"]
            if m["name"] == r["default_model"]:
                name.append(" ●", style="green")
            provider = m["provider"] + ("/resp" if m.get("api") == "responses" else "")
            rows.append(
                (
                    m["name"],
                    (
                        name,
                        provider,
                        m["upstream"],
                        price(m["input_per_mtok"]),
                        price(m["output_per_mtok"]),
                        ", ".join(m["aliases"]),
                    ),
                )
            )
        self.query_one("#models", LiveTable).sync(rows)
        self.query_one("#aliases", LiveTable).sync(
            [
                (
                    a["alias"],
                    (
                        a["alias"],
                        a["target"],
                        Text(a["source"], style="bold" if a["source"] == "operator" else "dim"),
                    ),
                )
                for a in r["aliases"]
            ]
        )
        self.query_one("#fallbacks", LiveTable).sync(
            [(f["model"], (f["model"], " → ".join(f["then"]))) for f in r.get("fallbacks", [])]
        )

    def selected_model(self) -> str | None:
        return self.query_one("#models", LiveTable).selected_key

    def action_default(self) -> None:
        name = self.selected_model()
        if name is None:
            self.notify("select a model first", severity="warning", markup=False)
            return
        self.perform(self.console.source.set_default_model(name), f"default model is now {name}")

    def action_haiku(self) -> None:
        if self.snap is None:
            return
        r = self.snap["routing"]
        names = [m["name"] for m in r["models"]] + [a["alias"] for a in r["aliases"]]

        self.ask(
            HaikuDialog(names, r["haiku_model"]),
            lambda v: (self.console.source.set_haiku_model(v["name"]), f"haiku lane → {v['name'] or 'off'}"),
        )

    def action_alias(self) -> None:
        if self.snap is None:
            return
        models = [m["name"] for m in self.snap["routing"]["models"]]
        if not models:
            self.notify("no models are configured", severity="warning", markup=False)
            return

        self.ask(
            AliasDialog(models, self.selected_model()),
            lambda v: (
                self.console.source.set_alias(v["alias"], v["target"]),
                f"alias {v['alias']} → {v['target']}",
            ),
        )

    def action_unalias(self) -> None:
        alias = self.query_one("#aliases", LiveTable).selected_key
        entry = next(
            (a for a in (self.snap or {}).get("routing", {}).get("aliases", []) if a["alias"] == alias), None
        )
        if alias is None or entry is None:
            self.notify(
                "select an alias first (Tab moves to the aliases table)", severity="warning", markup=False
            )
            return
        if entry["source"] != "operator":
            self.notify(
                f"{alias} comes from the config file; edit it there", severity="warning", markup=False
            )
            return

        self.ask(
            ConfirmDialog(f"Drop alias {alias}?"),
            lambda _: (self.console.source.set_alias(alias, None), f"alias {alias} dropped"),
        )

    def action_fallbacks(self) -> None:
        if self.snap is None:
            return
        r = self.snap["routing"]
        models = [m["name"] for m in r["models"]]
        if not models:
            self.notify("no models are configured", severity="warning", markup=False)
            return
        chains = {f["model"]: f["then"] for f in r.get("fallbacks", [])}
        chosen_row = self.query_one("#fallbacks", LiveTable).selected_key
        focused = self.focused.id if self.focused is not None else None
        model = chosen_row if focused == "fallbacks" else self.selected_model()

        def act(values: dict[str, Any]) -> tuple[Any, str]:
            model, then = values["model"], values["then"]
            said = f"{model} falls back to {', '.join(then)}" if then else f"{model}: no fallbacks"
            return self.console.source.set_fallbacks(model, then), said

        self.ask(FallbackDialog(models, model, chains), act)
