"""Pure formatting for console cells: money, durations, token counts and text bars."""

from __future__ import annotations

from typing import Any

from rich.text import Text

BAR_FULL = "█"
BAR_EMPTY = "░"

PROTOCOL_SHORT = {"anthropic": "anth", "openai_chat": "chat", "openai_responses": "resp", "gemini": "gem"}


def usd(micro: int | None) -> str:
    """Micro-USD as dollars: cents for a cent or more, up to six places below (never shown as $0.00)."""
    if micro is None:
        return "-"
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    if micro == 0:
        return "$0.00"
    if micro >= 10_000:
        cents = (micro + 5_000) // 10_000
        return f"{sign}${cents // 100:,}.{cents % 100:02d}"
    return f"{sign}${micro / 1_000_000:.6f}".rstrip("0")


def usd_short(micro: int | None) -> str:
    """For narrow cells: cents, or four decimals below a cent ("<$0.0001" rather than a misleading $0)."""
    if micro is None or abs(micro) >= 10_000 or micro == 0:
        return usd(micro)
    if abs(micro) < 50:
        return "<$0.0001"
    sign = "-" if micro < 0 else ""
    return f"{sign}$0.{(abs(micro) + 50) // 100:04d}"


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
    """Token counts: 950, 12.3k, 4.1M."""
    if n is None:
        return "-"
    if abs(n) >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if abs(n) >= 10_000:
        return f"{n / 1000:.0f}k"
    if abs(n) >= 1_000:
        return f"{n / 1000:.1f}k"
    return f"{n:g}" if isinstance(n, float) else str(n)


def rate(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n:.1f}" if n < 100 else f"{n:.0f}"


def percent(fraction: float | None) -> str:
    if fraction is None:
        return "-"
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
