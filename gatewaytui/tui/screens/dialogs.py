"""The console's dialogs: forms for operator actions, a confirmation, and the shown-once key secret.

Each dialog is a ``Dialog`` (a ``ModalScreen``); its rules in ``dialogs.tcss`` nest under its own type.

A dialog that runs an operator action gets it as ``act`` from the screen that opened it
(``ConsoleScreen.ask``) and stays open until the action answers: on success it closes with the outcome
(the screen then notifies and reloads); a refusal shows inside the dialog, by the field it concerns when
the action's spec names one (``ActionError.param``) and at its bottom otherwise, and the typed values
stay for another try. The console in process and ``gatewaytui attach`` raise the same ``ActionError``, so
both behave alike. Without an ``act``, a dialog closes with its values (None when cancelled).

A dialog clears the toasts when it opens and shows later notifications on its own note line, so no toast
ever covers its buttons.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from ...billing.pricing import parse_usd
from ..format import usd
from ..source import ActionError
from ..widgets import ConsoleFooter

log = logging.getLogger("gatewaytui.tui")

PROVIDERS = ("anthropic", "openai", "gemini", "openrouter", "openai-compatible")
KEY_KINDS = ("payg", "subscription")


SEVERITY_CLASS = {"warning": "-warning", "error": "-error"}
Act = Callable[[Any], Awaitable[Any]]


def explain(exc: BaseException) -> tuple[str, str]:
    """(title, message) for an action that did not succeed: a refusal as the gateway worded it, anything
    else (a bug, a lost connection) with its type."""
    if isinstance(exc, ActionError):
        return "Refused", exc.message
    return "Failed", f"{exc.__class__.__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class Problem:
    """A form's own check failed: ``message``, shown by ``field`` (a widget id), else at the bottom."""

    message: str
    field: str | None = None


class Dialog(ModalScreen[Any]):
    """A modal with a note line for notifications (``App.notify`` routes here while the dialog is open), a
    refusal line at its bottom, and the one way an answer runs its action (``submit``)."""

    CSS_PATH = "dialogs.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.act: Act | None = None  # the action an answer runs (set by the screen that opens the dialog)
        self.busy = False  # the action is running: no second submit, no cancel until it answers

    def on_mount(self) -> None:
        self.app.clear_notifications()

    def note_line(self) -> Label:
        note = Label("", classes="note")
        note.display = False  # takes a line only when there is something to say
        return note

    def problem_line(self) -> Label:
        problem = Label("", classes="problem")
        problem.display = False
        return problem

    def note(self, message: str, severity: str = "information") -> None:
        note = self.query_one(".note", Label)
        note.update(Text(message))
        note.set_classes(f"note {SEVERITY_CLASS.get(severity, '')}".strip())
        note.display = True

    # -------------------------------------------------------------- answering

    def submit(self, values: Any) -> None:
        """Answer with ``values``: run the action and wait for it (see the module's docstring)."""
        if self.act is None:
            self.dismiss(values)
            return
        if self.busy:
            return
        self.clear_refusals()
        self._set_busy(True)
        self.app.run_worker(self._run(self.act, values), group="action", exit_on_error=False)

    async def _run(self, act: Act, values: Any) -> None:
        try:
            outcome = await act(values)
        except Exception as exc:  # noqa: BLE001 - shown in the dialog; the console goes on
            if not isinstance(exc, ActionError):
                log.exception("console action failed")
            if self.is_attached:
                self._set_busy(False)
                title, message = explain(exc)
                shown = message if isinstance(exc, ActionError) else f"{title}: {message}"
                self.refuse(shown, getattr(exc, "param", None))
            return
        self.busy = False
        if self.is_attached:
            self.dismiss(outcome)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for button in self.query(".submit").results(Button):
            button.disabled = busy
        if busy:
            self.note("waiting for the gateway's answer…")
        else:
            self.query_one(".note", Label).display = False

    def cancel(self) -> None:
        """Close without an answer, unless an action is under way (its answer decides)."""
        if self.busy:
            self.note("waiting for the gateway's answer… (the action is already sent)", "warning")
            return
        self.dismiss(None)

    # -------------------------------------------------------------- refusals

    def refuse(self, message: str, field: str | None = None) -> None:
        """Show why an answer was not accepted; the dialog has no fields, so at its bottom."""
        self._show_problem(message)

    def _show_problem(self, message: str) -> None:
        problem = self.query_one(".problem", Label)
        problem.update(Text(message))
        problem.display = True

    def clear_refusals(self) -> None:
        for label in self.query(".problem, .refusal").results(Label):
            label.display = False

    def refusals(self) -> dict[str | None, str]:
        """What the dialog shows as refused: by field id, and ``None`` for its bottom line."""
        out: dict[str | None, str] = {}
        for label in self.query(".problem, .refusal").results(Label):
            if label.display:
                field = label.id.removesuffix("-refusal") if label.id else None
                out[field] = str(label.render())
        return out


class FormDialog(Dialog):
    """A titled form: ``fields()`` yields the widgets, ``collect()`` returns values or a problem (a str for
    the bottom line, or a ``Problem`` naming its field). ``PARAMS`` maps the action's argument names to
    the form's field ids where they differ, so a refusal of an argument shows by the field that set it."""

    TITLE_TEXT = ""
    OK_LABEL = "OK"
    PARAMS: ClassVar[dict[str, str]] = {}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Submit", id="dialog.submit"),
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.TITLE_TEXT, classes="title")
            yield from self.fields()
            yield self.problem_line()
            yield self.note_line()
            with Horizontal(classes="buttons"):
                yield Button(self.OK_LABEL, variant="primary", id="ok", classes="submit", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
        yield ConsoleFooter()

    def fields(self) -> Iterable[Widget]:
        raise NotImplementedError

    def collect(self) -> dict[str, Any] | str | Problem:
        raise NotImplementedError

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value.strip()

    def choice(self, field_id: str) -> Any:
        value = self.query_one(f"#{field_id}", Select).value
        return None if value is Select.NULL else value

    def refuse(self, message: str, field: str | None = None) -> None:
        """By the field it concerns (an argument name or a field id) when the form shows that field."""
        field_id = self.PARAMS.get(field or "", field)
        if field_id:
            try:
                label = self.query_one(f"#{field_id}-refusal", Label)
                widget = self.query_one(f"#{field_id}")
            except NoMatches:
                pass
            else:
                if widget.display:
                    label.update(Text(message))
                    label.display = True
                    widget.focus()
                    return
        self._show_problem(message)

    def action_submit(self) -> None:
        if self.busy:
            return
        result = self.collect()
        if isinstance(result, (str, Problem)):
            self.clear_refusals()
            problem = result if isinstance(result, Problem) else Problem(result)
            self.refuse(problem.message, problem.field)
            return
        self.submit(result)

    def action_cancel(self) -> None:
        self.cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.action_cancel()


def _field(label: str, widget: Widget, label_id: str | None = None) -> Iterable[Widget]:
    """A field's label, the field, and the line under it where a refusal of its value shows."""
    yield Label(label, classes="field-label", id=label_id)
    yield widget
    refusal = Label("", classes="refusal", id=f"{widget.id}-refusal")
    refusal.display = False
    yield refusal


class AddAccountDialog(FormDialog):
    TITLE_TEXT = "Add an upstream account"
    OK_LABEL = "Add"

    def fields(self) -> Iterable[Widget]:
        yield from _field(
            "Provider",
            Select(
                [(p, p) for p in PROVIDERS], value="anthropic", allow_blank=False, id="provider", compact=True
            ),
        )
        yield from _field(
            "Label",
            Input(placeholder="e.g. anthropic-team-2 (default: provider-time)", id="label", compact=True),
        )
        yield from _field(
            "Base URL", Input(placeholder="blank: the provider's default", id="base_url", compact=True)
        )
        yield from _field(
            "Credentials",
            Select(
                [("API key", "api_key"), ("OAuth sign-in in a browser (PKCE)", "oauth")],
                value="api_key",
                allow_blank=False,
                id="auth",
                compact=True,
            ),
        )
        yield from _field(
            "API key",
            Input(
                placeholder="stored encrypted; never shown again", password=True, id="api_key", compact=True
            ),
            label_id="api_key_label",
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "auth":
            oauth = event.value == "oauth"
            self.query_one("#api_key", Input).display = not oauth
            self.query_one("#api_key_label", Label).display = not oauth
            if oauth:
                self.query_one("#api_key-refusal", Label).display = False

    def collect(self) -> dict[str, Any] | str | Problem:
        provider = self.choice("provider")
        api_key, base_url = self.value("api_key"), self.value("base_url")
        oauth = self.choice("auth") == "oauth"
        if base_url and not base_url.startswith(("http://", "https://")):
            return Problem("the base URL must start with http:// or https://", "base_url")
        if oauth:
            return {
                "provider": provider,
                "label": self.value("label") or None,
                "base_url": base_url or None,
                "oauth": True,
            }
        if not api_key:
            return Problem("an API key is required", "api_key")
        if provider == "openai-compatible" and not base_url:
            return Problem("openai-compatible accounts need a base URL", "base_url")
        return {
            "provider": provider,
            "label": self.value("label") or None,
            "base_url": base_url or None,
            "api_key": api_key,
        }


class CreateTenantDialog(FormDialog):
    TITLE_TEXT = "Create a tenant"
    OK_LABEL = "Create"

    def fields(self) -> Iterable[Widget]:
        yield from _field("Name", Input(placeholder="e.g. acme", id="name", compact=True))

    def collect(self) -> dict[str, Any] | str | Problem:
        name = self.value("name")
        if not name or len(name) > 200:
            return Problem("a tenant name is 1-200 characters", "name")
        return {"name": name}


class MintKeyDialog(FormDialog):
    TITLE_TEXT = "Mint an API key"
    OK_LABEL = "Mint"
    PARAMS: ClassVar[dict[str, str]] = {"budget_micro": "budget", "budget_period": "period"}

    def __init__(self, tenant: str = "") -> None:
        super().__init__()
        self.tenant = tenant

    def fields(self) -> Iterable[Widget]:
        yield from _field("Tenant (must exist; n creates one)", Input(self.tenant, id="tenant", compact=True))
        yield from _field(
            "Kind",
            Select([(k, k) for k in KEY_KINDS], value="payg", allow_blank=False, id="kind", compact=True),
        )
        yield from _field("Label", Input(placeholder="optional, e.g. ci", id="label", compact=True))
        yield from _field(
            "Budget in USD per period (held like credit)",
            Input(placeholder="optional, e.g. 5.00", id="budget", compact=True),
        )
        yield from _field(
            "Budget period",
            Input(placeholder="day (default), month, or rolling e.g. 24h", id="period", compact=True),
        )
        yield from _field(
            "Tokens per minute (input + output)",
            Input(placeholder="optional, e.g. 100000", id="tpm", compact=True),
        )

    def collect(self) -> dict[str, Any] | str | Problem:
        tenant = self.value("tenant")
        if not tenant:
            return Problem("which tenant?", "tenant")
        out: dict[str, Any] = {
            "tenant": tenant,
            "kind": self.choice("kind"),
            "label": self.value("label") or None,
        }
        budget, period, tpm = self.value("budget"), self.value("period"), self.value("tpm")
        if budget:
            try:
                out["budget_micro"] = parse_usd(budget)
            except ValueError as exc:
                return Problem(f"budget: {exc}", "budget")
            out["budget_period"] = period or "day"
        elif period:
            return Problem("a budget period needs a budget", "budget")
        if tpm:
            if not tpm.isdigit():
                return Problem("tokens per minute: a whole number", "tpm")
            out["tpm"] = int(tpm)
        return out  # the bounds are the mint_key action's own (its spec answers in the note line)


class TenantRateDialog(FormDialog):
    TITLE_TEXT = "A tenant's token rate"
    OK_LABEL = "Save"

    def __init__(self, tenant: str, current: int | None) -> None:
        super().__init__()
        self.tenant = tenant
        self.current = current

    def fields(self) -> Iterable[Widget]:
        yield from _field("Tenant", Input(self.tenant, id="tenant", compact=True))
        yield from _field(
            "Tokens per minute across its keys (blank: the config's default)",
            Input(str(self.current or ""), placeholder="e.g. 100000", id="tpm", compact=True),
        )

    def collect(self) -> dict[str, Any] | str | Problem:
        tenant, tpm = self.value("tenant"), self.value("tpm")
        if not tenant:
            return Problem("which tenant?", "tenant")
        if tpm and not tpm.isdigit():
            return Problem("tokens per minute: a whole number", "tpm")
        return {"tenant": tenant, "tpm": int(tpm) if tpm else None}


class CreditDialog(FormDialog):
    TITLE_TEXT = "Credit a tenant"
    OK_LABEL = "Credit"
    PARAMS: ClassVar[dict[str, str]] = {"amount_micro": "usd"}

    def __init__(self, tenant: str = "") -> None:
        super().__init__()
        self.tenant = tenant

    def fields(self) -> Iterable[Widget]:
        yield from _field("Tenant", Input(self.tenant, id="tenant", compact=True))
        yield from _field(
            "Amount in USD (exact, up to 6 decimals)", Input(placeholder="e.g. 25.00", id="usd", compact=True)
        )
        yield from _field("Note", Input(placeholder="optional", id="note", compact=True))

    def collect(self) -> dict[str, Any] | str | Problem:
        tenant = self.value("tenant")
        if not tenant:
            return Problem("which tenant?", "tenant")
        try:
            amount = parse_usd(self.value("usd"))
        except ValueError as exc:
            return Problem(str(exc), "usd")
        if amount <= 0:
            return Problem("a credit must be a positive amount", "usd")
        return {
            "tenant": tenant,
            "amount_micro": amount,
            "note": self.value("note") or None,
            "display": usd(amount),
        }


class AliasDialog(FormDialog):
    TITLE_TEXT = "Add or change an alias"
    OK_LABEL = "Save"

    def __init__(self, models: list[str], target: str | None = None) -> None:
        super().__init__()
        self.models = models
        self.target = target

    def fields(self) -> Iterable[Widget]:
        yield from _field(
            "Alias (a name clients may send)", Input(placeholder="e.g. fast", id="alias", compact=True)
        )
        yield from _field(
            "Model",
            Select(
                [(Text(m), m) for m in self.models],
                value=self.target or self.models[0],
                allow_blank=False,
                id="target",
                compact=True,
            ),
        )

    def collect(self) -> dict[str, Any] | str | Problem:
        alias = self.value("alias")
        if not alias:
            return Problem("an alias needs a name", "alias")
        return {"alias": alias, "target": self.choice("target")}


class FallbackDialog(FormDialog):
    TITLE_TEXT = "Fallbacks: who serves a model's requests when none of its accounts can"
    OK_LABEL = "Save"

    def __init__(self, models: list[str], model: str | None, chains: dict[str, list[str]]) -> None:
        super().__init__()
        self.models = models
        self.model = model if model in models else models[0]
        self.chains = chains

    def fields(self) -> Iterable[Widget]:
        yield from _field(
            "Model",
            Select(
                [(Text(m), m) for m in self.models],
                value=self.model,
                allow_blank=False,
                id="model",
                compact=True,
            ),
        )
        yield from _field(
            "Then, in order (comma-separated; blank removes the chain)",
            Input(
                ", ".join(self.chains.get(self.model, [])),
                placeholder="e.g. gpt-4o, gemini-2.5-flash",
                id="then",
                compact=True,
            ),
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "model" and isinstance(event.value, str):
            self.query_one("#then", Input).value = ", ".join(self.chains.get(event.value, []))

    def collect(self) -> dict[str, Any] | str | Problem:
        then = [name.strip() for name in self.value("then").split(",") if name.strip()]
        return {"model": self.choice("model"), "then": then or None}


class HaikuDialog(FormDialog):
    TITLE_TEXT = "Haiku lane: where claude-haiku-* requests go"
    OK_LABEL = "Save"
    PARAMS: ClassVar[dict[str, str]] = {"name": "model"}

    def __init__(self, names: list[str], current: str) -> None:
        super().__init__()
        self.names = names
        self.current = current

    def fields(self) -> Iterable[Widget]:
        options = [(Text("(off: haiku requests resolve normally)"), "")] + [(Text(n), n) for n in self.names]
        yield from _field(
            "Model",
            Select(
                options,
                value=self.current if self.current in self.names else "",
                allow_blank=False,
                id="model",
                compact=True,
            ),
        )

    def collect(self) -> dict[str, Any] | str | Problem:
        return {"name": self.choice("model") or ""}


class ConfirmDialog(Dialog):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="title")
            yield self.problem_line()
            yield self.note_line()
            with Horizontal(classes="buttons"):
                yield Button("Yes", variant="error", id="yes", classes="submit", compact=True)
                yield Button("No", id="no", compact=True)
        yield ConsoleFooter()

    def action_answer(self, yes: bool) -> None:
        if yes:
            self.submit(True)
        else:
            self.cancel()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(event.button.id == "yes")


class SecretDialog(Dialog):
    """A freshly minted key, shown once: closing the dialog drops the only copy the console holds. Also shows
    the demo's key again (``shown_once=False``), with a line to try it (``extra``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy", id="secret.copy"),
        Binding("u", "copy_extra", "Copy curl", id="secret.copy-curl"),
        Binding("escape,enter", "close", "Done", id="secret.close"),
    ]

    def __init__(
        self,
        key: dict[str, Any],
        secret: str,
        *,
        shown_once: bool = True,
        extra: str | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.key = key
        self.secret = secret
        self.shown_once = shown_once
        self.extra = extra

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            title = f"New {self.key.get('kind')} key {self.key.get('id')} for {self.key.get('tenant')}"
            yield Label(Text(self.title_text or title), classes="title")
            if self.shown_once:
                yield Label("Copy it now: it is shown once and only its hash is stored.", classes="warning")
            yield Static(Text(self.secret), id="secret")
            if self.extra:
                yield Label("Try it:", classes="field-label")
                yield Static(Text(self.extra), id="extra")
            yield self.note_line()
            with Horizontal(classes="buttons"):
                yield Button("Copy", variant="primary", id="copy", compact=True)
                yield Button("Done", id="done", compact=True)
        yield ConsoleFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.extra) if action == "copy_extra" else True  # no line to try: no key for it

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret)
        self.notify("key copied to the clipboard", timeout=3, markup=False)

    def action_copy_extra(self) -> None:
        """The line to try, as shown (its lines end in backslashes: it pastes into a shell as one command)."""
        if self.extra:
            self.app.copy_to_clipboard(self.extra)
            self.notify("curl command copied to the clipboard", timeout=3, markup=False)

    def action_close(self) -> None:
        if self.shown_once:
            self.secret = ""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.action_close()


class OAuthDialog(Dialog):
    """An OAuth sign-in under way: the authorize URL to open, and its progress, polled once a second.

    The provider redirects the browser to the gateway's callback listener and the dialog closes by itself
    once the account is added; a provider that shows a code instead takes it in the code field."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open browser", id="oauth.open"),
        Binding("c", "copy", "Copy URL", id="oauth.copy"),
        Binding("escape", "close", "Close", id="oauth.close"),
    ]
    POLL_S = 1.0

    def __init__(self, flow: dict[str, Any]) -> None:
        super().__init__()
        self.flow = flow
        self.status = flow.get("status") or "pending"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Sign in to {self.flow.get('provider')} for a new account"), classes="title")
            yield Label("Open this address in a browser and approve the access:", classes="field-label")
            yield Static(Text(str(self.flow.get("authorize_url") or "")), id="url")
            yield Label("Code (only if the provider shows one to paste)", classes="field-label")
            yield Input(placeholder="code or code#state", id="code", compact=True)
            yield Label(Text("waiting for the browser…"), id="status")
            yield self.note_line()
            with Horizontal(classes="buttons"):
                yield Button("Open browser", variant="primary", id="open", compact=True)
                yield Button("Copy URL", id="copy", compact=True)
                yield Button("Close", id="close", compact=True)
        yield ConsoleFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(self.POLL_S, self.poll)

    @property
    def source(self) -> Any:
        return self.app.source  # type: ignore[attr-defined]

    async def poll(self) -> None:
        if self.status != "pending":
            return
        try:
            flow = await self.source.oauth_status(self.flow["state"])
        except Exception as exc:  # noqa: BLE001 - shown; the operator may close the dialog
            self.note(f"cannot follow the sign-in: {exc}", "error")
            return
        self._follow(flow)

    def _follow(self, flow: dict[str, Any]) -> None:
        self.status = flow.get("status") or "pending"
        if self.status == "completed":
            self.dismiss(flow)
        elif self.status in ("failed", "expired"):
            self.query_one("#status", Label).update(
                Text(f"sign-in {self.status}: {flow.get('error') or ''}", style="bold red")
            )

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        code = event.value.strip()
        if not code:
            return
        try:
            account = await self.source.complete_oauth(self.flow["state"], code)
        except Exception as exc:  # noqa: BLE001 - the provider or the gateway refused: say so, keep the dialog
            self.note(getattr(exc, "message", None) or str(exc), "error")
            return
        self.status = "completed"
        self.dismiss(
            {
                **self.flow,
                "status": "completed",
                "account_id": account.get("id"),
                "label": account.get("label"),
            }
        )

    def action_open(self) -> None:
        self.app.open_url(str(self.flow.get("authorize_url") or ""))

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(str(self.flow.get("authorize_url") or ""))
        self.note("address copied to the clipboard")

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"open": self.action_open, "copy": self.action_copy}.get(event.button.id or "", self.action_close)()
