"""Prices and costs. Every amount is an integer number of micro-USD (1 USD = 1,000,000).

Prices are integer micro-USD per million tokens, so a line item's exact cost is
``tokens * price / 1_000_000`` micro-USD. Server tools (web search, web fetch, code execution) add a fee
in integer micro-USD per use the upstream reports. A request's cost is the exact sum of its line items
rounded up once to a whole micro-dollar; line items keep their exact values (as strings) for audit.
"""

from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..model import ChatRequest, Document, Image, ToolResult, Usage

MTOK = 1_000_000
TOKEN_PRICES = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
SERVER_TOOLS = (
    "web_search",
    "web_fetch",
    "code_execution",
)  # kinds with a per-use fee ([[models]] *_per_use)


@dataclass(slots=True, frozen=True)
class Price:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    per_use: tuple[tuple[str, int], ...] = ()  # server-tool fees: (kind, micro-USD per use)

    @classmethod
    def of(cls, model: Any) -> Price:
        """A model's price (one shared, immutable object per distinct set of rates: admission asks per request)."""
        return _price(_RATES(model), _FEES(model))

    def fee(self, kind: str) -> int:
        """Micro-USD per use of a server tool (0 for a kind without a configured fee)."""
        return dict(self.per_use).get(kind, 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in TOKEN_PRICES}
        if self.per_use:
            out["per_use"] = dict(self.per_use)
        return out

    @property
    def json(self) -> str:
        """``to_dict`` as JSON text (as a usage row stores it), computed once per price."""
        return _price_json(self)

    def usd_per_mtok(self) -> dict[str, str]:
        return {k: _usd(Fraction(getattr(self, k))) for k in TOKEN_PRICES}


@dataclass(slots=True, frozen=True)
class Cost:
    total_micro: int
    items: dict[str, dict[str, Any]]


def cost(usage: Usage, price: Price) -> Cost:
    lines = (
        ("input", usage.input_tokens, price.input),
        ("cache_write_5m", usage.cache_write_5m_tokens, price.cache_write_5m),
        ("cache_write_1h", usage.cache_write_1h_tokens, price.cache_write_1h),
        ("cache_read", usage.cache_read_tokens, price.cache_read),
        ("output", usage.output_tokens, price.output),
    )
    # in millionths of a micro-USD (token counts times micro-USD per million tokens): exact integers
    total = 0
    items: dict[str, dict[str, Any]] = {}
    for name, tokens, per_mtok in lines:
        amount = tokens * per_mtok
        total += amount
        items[name] = {"tokens": tokens, "per_mtok_micro": per_mtok, "cost_micro": _decimal_micro(amount)}
    for kind, uses in sorted(usage.server_tool_uses.items()):
        if uses:
            fee = price.fee(kind)
            total += uses * fee * MTOK
            items[kind] = {"uses": uses, "per_use_micro": fee, "cost_micro": str(uses * fee)}
    return Cost(total_micro=-(-total // MTOK), items=items)


def _decimal_micro(amount: int) -> str:
    """``amount`` millionths of a micro-USD as an exact decimal string of micro-USD ("112.5", "0.00048", "3")."""
    whole, part = divmod(amount, MTOK)
    return f"{whole}.{part:06d}".rstrip("0") if part else str(whole)


def worst_case(
    price: Price, input_bound: int, max_tokens: int, tool_uses: dict[str, int] | None = None
) -> int:
    """The most a request can cost: every input token at the dearest input rate, plus max_tokens out, plus
    each server tool's fee times the uses it may make."""
    dearest = max(price.input, price.cache_write_5m, price.cache_write_1h, price.cache_read)
    fees = sum(uses * price.fee(kind) for kind, uses in (tool_uses or {}).items())
    return -(-(input_bound * dearest + max_tokens * price.output) // MTOK) + fees


def bound_cost(amount: int, reason: str) -> Cost:
    """A charge that is not computed from usage (the upstream's report was unusable): the hold's bound."""
    return Cost(total_micro=amount, items={"bound": {"cost_micro": str(amount), "reason": reason}})


URL_IMAGE_TOKENS = 5_000  # an image fetched by URL: its pixels are not in the request body
URL_DOCUMENT_TOKENS = 50_000  # a document fetched by URL


def url_media_tokens(req: ChatRequest) -> int:
    """Input tokens a request may use that its body's bytes do not show: media the upstream fetches by URL."""
    total = 0
    for message in req.messages:
        for part in message.content:
            parts = part.content if isinstance(part, ToolResult) else [part]
            for p in parts:
                fetched = (
                    isinstance(p, (Image, Document))
                    and bool(p.url)
                    and not p.data
                    and not str(p.url).startswith("data:")
                )
                if isinstance(p, Image) and fetched:
                    total += URL_IMAGE_TOKENS
                elif isinstance(p, Document) and fetched and p.text is None:
                    total += URL_DOCUMENT_TOKENS
    return total


_RATES = operator.attrgetter(
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "cache_write_1h_per_mtok",
)
_FEES = operator.attrgetter(*(f"{kind}_per_use" for kind in SERVER_TOOLS))


@functools.lru_cache(maxsize=256)
def _price(rates: tuple[int, ...], fees: tuple[int, ...]) -> Price:
    inp, out, read, write_5m, write_1h = rates
    return Price(
        input=inp,
        output=out,
        cache_read=read,
        cache_write_5m=write_5m or inp,
        cache_write_1h=write_1h or inp,
        per_use=tuple(zip(SERVER_TOOLS, fees, strict=True)),
    )


@functools.lru_cache(maxsize=256)
def _price_json(price: Price) -> str:
    return json.dumps(price.to_dict())


def _usd(micro_per_mtok: Fraction) -> str:
    """Micro-USD as a plain decimal string, trailing zeros dropped ("10", "0.3"; never "1E+1")."""
    return format((Decimal(micro_per_mtok.numerator) / Decimal(1_000_000)).normalize(), "f")


def parse_usd(text: str) -> int:
    """Decimal USD (e.g. "0.000480") -> micro-USD, exactly; more than 6 decimals or junk -> ValueError."""
    try:
        value = Decimal(text.strip())
    except Exception:
        raise ValueError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {text!r}")
    micro = value * 1_000_000
    if micro != micro.to_integral_value():
        raise ValueError(f"{text} has more than 6 decimal places (finer than a micro-dollar)")
    return int(micro)


def format_usd(micro: int) -> str:
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    return f"{sign}${micro // 1_000_000}.{micro % 1_000_000:06d}"
