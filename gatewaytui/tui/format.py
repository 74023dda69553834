"""Pure formatting for console cells: money, durations, token counts and text bars."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

BAR_FULL = "█"
BAR_EMPTY = "░"

PROTOCOL_SHORT = {"anthropic": "anth", "openai_chat": "chat", "openai_responses": "resp", "gemini": "gem"}


CENTS_FROM = 100_000_000_000  # $100,000: from here on, cents are precision enough


def usd(micro: int | None) -> str:
    """Micro-USD as dollars, one style for every amount: four decimals, so a balance moves when a request
    is spent ($25.0000 → $24.9969) and a request's cost is never shown as $0; "<$0.0001" below that. From
    $100,000 on, cents."""
    if micro is None:
        return "-"
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    if micro == 0:
        return "$0.00"
    if micro < 50:
        return f"{sign}<$0.0001"
    if micro >= CENTS_FROM:
        cents = (micro + 5_000) // 10_000
        return f"{sign}${cents // 100:,}.{cents % 100:02d}"
    units = (micro + 50) // 100  # ten-thousandths of a dollar, rounded half up
    return f"{sign}${units // 10_000:,}.{units % 10_000:04d}"


def price(micro: int | None) -> str:
    """A price per million tokens: cents, with more places only when the price has them ($0.075)."""
    if micro is None:
        return "-"
    dollars, rest = divmod(abs(micro), 1_000_000)
    places = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{'-' if micro < 0 else ''}${dollars:,}.{places}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.1f}s"
    return f"{value:.0f}ms"


def count(n: float | None) -> str:
    """Counts: 950, 1.2k, 52k, 4.1M. The unit and the decimals follow the *rounded* figure, so 9,999 and
    10,000 both read "10k" (never "10.0k" beside "10k") and 999,999 reads "1.0M"."""
    if n is None:
        return "-"
    if abs(n) < 1_000:
        return f"{n:.1f}".rstrip("0").rstrip(".") if isinstance(n, float) else str(n)
    for unit, scale in (("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000)):
        value = n / scale
        if abs(round(value, 1)) < 10:
            return f"{value:.1f}{unit}"
        if abs(round(value)) < 1_000:
            return f"{value:.0f}{unit}"
    return f"{n / 1_000_000_000:.0f}G"


def rate(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n:.1f}" if n < 100 else f"{n:.0f}"


def percent(fraction: float | None) -> str:
    if fraction is None:
        return "-"
    if fraction == 0:
        return "0%"
    return f"{fraction * 100:.1f}%" if fraction < 0.1 else f"{fraction * 100:.0f}%"


def bar(fraction: float | None, width: int = 10, *, label: bool = True) -> Text:
    """A text bar coloured by how full it is (green, yellow, red); ``None`` gives a dim placeholder."""
    if fraction is None:
        return Text("-", style="dim")
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    style = "green" if fraction < 0.7 else "yellow" if fraction < 0.9 else "red"
    text = Text(BAR_FULL * filled, style=style)
    text.append(BAR_EMPTY * (width - filled), style="dim")
    if label:
        text.append(f" {fraction * 100:3.0f}%")
    return text


HEALTH_STYLE = {"healthy": "green", "cooldown": "yellow", "throttled": "yellow", "disabled": "red"}
STATE_STYLE = {
    "queued": "dim",
    "waiting": "yellow",
    "streaming": "cyan",
    "done": "green",
    "error": "red",
    "cancelled": "magenta",
}


def styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))


def short(text: str | None, width: int) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


COOLDOWN_SHORT = {
    "rate_limit": "rate",
    "overloaded": "overload",
    "connection": "conn",
    "model_not_found": "model",
}


def cooldown(account: dict[str, Any]) -> str:
    """An account's cooldown as cause and time left ("rate 42s"), or "" when it is not cooling down."""
    cd = account.get("cooldown")
    if not cd:
        return ""
    cause = cd.get("cause") or ""
    return f"{COOLDOWN_SHORT.get(cause, cause)} {duration(cd.get('remaining_s'))}"


TRY_BODY = {"model": "auto", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def _curl_parts(base_url: str, key: str, body: str) -> list[str]:
    return [
        f"curl {base_url}/v1/messages",
        f"-H 'x-api-key: {key}'",
        "-H 'content-type: application/json'",
        f"-d '{body}'",
    ]


def curl_line(base_url: str, key: str) -> str:
    """A request a client could send to try the gateway (Anthropic Messages with the given key)."""
    return " ".join(_curl_parts(base_url, key, json.dumps(TRY_BODY, separators=(",", ":"))))


def curl_lines(base_url: str, key: str) -> str:
    """``curl_line`` as a shell command over short lines (backslash continuations; the JSON breaks inside
    its quotes), so it can be selected and pasted from an 80-column terminal without the screen's own
    wrapping breaking it."""
    body = json.dumps(TRY_BODY).replace(' "messages"', '\n       "messages"')
    return " \\\n  ".join(_curl_parts(base_url, key, body))
