"""One request in full: who, where, how it went, its headers (secrets redacted), its usage line items, and,
when ``[console] store_bodies`` is on, its request and response bodies (redacted, size-capped) with a curl
line to replay it (``c`` copies it; the key is left as ``$GATEWAYTUI_KEY``)."""

from __future__ import annotations

import shlex
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Static

from ..format import PROTOCOL_SHORT, STATE_STYLE, count, duration, ms, price, rate, usd
from ..widgets import Col, LiveTable, StatusBar
from .base import ConsoleScreen

KEY_VARIABLE = "$GATEWAYTUI_KEY"
AUTH_HEADER = {  # how each protocol's clients present their key
    "anthropic": ("x-api-key", KEY_VARIABLE),
    "openai_chat": ("authorization", f"Bearer {KEY_VARIABLE}"),
    "openai_responses": ("authorization", f"Bearer {KEY_VARIABLE}"),
    "gemini": ("x-goog-api-key", KEY_VARIABLE),
}
REPLAY_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")  # kept from the original request


def request_path(d: dict[str, Any]) -> str:
    """The URL path the request came in on, from its route, protocol and model."""
    protocol, route = d.get("protocol") or "anthropic", d.get("route") or "v1"
    if protocol == "openai_chat":
        return "/v1/chat/completions"
    if protocol == "openai_responses":
        return "/v1/responses"
    if protocol == "gemini":
        verb = "streamGenerateContent?alt=sse" if d.get("stream") else "generateContent"
        return f"/v1beta/models/{d.get('model')}:{verb}"
    return "/v1/messages" if route == "v1" else f"/{route}/v1/messages"


def replay_curl(base_url: str, d: dict[str, Any], body: str) -> str:
    """A curl command that sends the stored request again (the key comes from ``$GATEWAYTUI_KEY``)."""
    name, value = AUTH_HEADER.get(d.get("protocol") or "", AUTH_HEADER["anthropic"])
    parts = [f"curl {shlex.quote(base_url.rstrip('/') + request_path(d))}"]
    if d.get("stream"):
        parts[0] += " -N"
    parts.append(f'-H "{name}: {value}"')
    parts.append("-H 'content-type: application/json'")
    headers = d.get("headers") or {}
    parts += [f"-H {shlex.quote(f'{h}: {headers[h]}')}" for h in REPLAY_HEADERS if headers.get(h)]
    parts.append(f"--data-binary {shlex.quote(body)}")
    return " \\\n  ".join(parts)


class RequestScreen(ConsoleScreen):
    CSS_PATH = "request.tcss"
    MODE = "streams"
    # Below 96 columns the line items and the headers stack (side by side, the headers' names would be cut).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (96, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="request.close"),
        Binding("c", "copy_curl", "Copy curl", id="request.copy-curl"),
    ]

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id
        self.detail: dict[str, Any] | None = None
        self.curl: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Label(Text(f"Request {self.request_id}"), id="title", classes="section")
        with VerticalScroll(id="scroll"):
            yield Static("loading…", id="summary")
            with Horizontal(id="tables"):
                with Vertical(id="left"):
                    yield Label("Usage line items", classes="section")
                    yield LiveTable(
                        [
                            Col("item", "Item", 11, grow=1, most=16),
                            Col("tokens", "Tokens", 6),
                            Col("price", "$/Mtok", 7),
                            Col("cost", "Cost", 9, grow=1, most=14),
                        ],
                        id="items",
                    )
                with Vertical(id="right"):
                    yield Label("Request headers (secrets redacted)", classes="section")
                    yield LiveTable(
                        [Col("name", "Header", 10, grow=1, most=24), Col("value", "Value", 10, grow=3)],
                        id="headers",
                    )
            yield Label("Request body", classes="section")
            yield Static("", id="request-body", classes="body")
            yield Label("Response body", classes="section")
            yield Static("", id="response-body", classes="body")
            yield Label("Replay (c copies; set GATEWAYTUI_KEY to a tenant key first)", classes="section")
            yield Static("", id="curl", classes="body")

    async def reload(self) -> None:
        self.query_one(StatusBar).show(self.console.last_snapshot, self.console.link)
        try:
            detail = await self.console.source.request(self.request_id)
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.query_one("#summary", Static).update(Text(f"cannot load: {exc}", style="red"))
            return
        if detail is None:
            if self.detail is None:
                self.query_one("#summary", Static).update(
                    Text("this request is no longer known", style="dim")
                )
            return
        self.detail = detail
        self._show_detail(detail)

    def show(self, snap: dict[str, Any]) -> None:
        pass  # the detail comes from ``source.request``

    def _show_detail(self, d: dict[str, Any]) -> None:
        state = d.get("state") or "-"
        text = Text()
        text.append(f"{d.get('tenant') or '-'}", style="bold")
        text.append(
            f" · key {d.get('key_label') or '-'} · {d.get('route')}/{PROTOCOL_SHORT.get(d.get('protocol') or '', d.get('protocol'))}"
        )
        text.append(f" · {d.get('model')}")
        if d.get("requested_model") and d["requested_model"] != d.get("model"):
            text.append(f" (fallback for {d['requested_model']})", style="yellow")
        text.append(f" via {d.get('account') or '-'}\n")
        text.append(state, style=STATE_STYLE.get(state, ""))
        text.append(f" · HTTP {d.get('status') or '-'} · attempts {d.get('attempts') or 0}")
        if d.get("elapsed_s") is not None:
            text.append(f" · {duration(d['elapsed_s'])}")
        text.append(f" · TTFT {ms(d.get('ttft_ms'))}\n")
        text.append(f"tokens in {count(d.get('input_tokens'))} · out {count(d.get('output_tokens'))}")
        text.append(f" · {rate(d.get('tokens_per_s'))} tok/s · cost ")
        text.append(usd(d.get("cost_micro")), style="bold")
        if d.get("error"):
            text.append("\nerror: ", style="bold red")
            text.append(str(d["error"]))
        self.query_one("#summary", Static).update(text)
        items = d.get("line_items") or {}
        self.query_one("#items", LiveTable).sync(
            [
                (
                    name,
                    (
                        name,
                        count(item.get("tokens")),
                        price(item.get("per_mtok_micro")),
                        _exact_usd(item.get("cost_micro")),
                    ),
                )
                for name, item in items.items()
                if item.get("tokens")
            ]
        )
        self.query_one("#headers", LiveTable).sync(
            [(k, (k, str(v))) for k, v in sorted((d.get("headers") or {}).items())]
        )
        self._show_bodies(d)

    def _show_bodies(self, d: dict[str, Any]) -> None:
        bodies = d.get("bodies")
        if bodies:
            request, response = bodies.get("request") or "", bodies.get("response") or ""
            self.query_one("#request-body", Static).update(Text(request or "(empty)"))
            self.query_one("#response-body", Static).update(Text(response or "(nothing sent yet)"))
            base = self.console.base_url or "http://127.0.0.1:8080"
            self.curl = replay_curl(base, d, request) if request and "\n…[" not in request else None
            shown = self.curl or "the request body was cut at the size limit: it cannot be replayed as is"
            self.query_one("#curl", Static).update(Text(shown))
            return
        why = (
            "not kept for this request (it ran before bodies were kept, or failed before it was relayed)"
            if d.get("store_bodies")
            else "bodies are not kept: set [console] store_bodies = true in the config to keep them"
        )
        self.curl = None
        for widget in ("#request-body", "#response-body", "#curl"):
            self.query_one(widget, Static).update(Text(why, style="dim"))

    def action_copy_curl(self) -> None:
        if self.curl is None:
            self.notify("no stored request body to replay", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard(self.curl)
        self.notify("curl command copied to the clipboard", timeout=3, markup=False)

    def action_close(self) -> None:
        self.dismiss()


def _exact_usd(micro: Any) -> str:
    """A line item's exact cost (a decimal string of micro-USD) as dollars."""
    if micro is None:
        return "-"
    try:
        from decimal import Decimal

        return "$" + format(Decimal(str(micro)) / 1_000_000, "f")
    except ArithmeticError:
        return str(micro)
