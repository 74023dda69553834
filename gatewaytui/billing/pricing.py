"""Prices and costs. Every amount is an integer number of micro-USD (1 USD = 1,000,000).

Prices are integer micro-USD per million tokens, so a line item's exact cost is
``tokens * price / 1_000_000`` micro-USD. A request's cost is the exact sum of its line items rounded
up once to a whole micro-dollar; line items keep their exact values (as strings) for audit.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..model import ChatRequest, Document, Image, ToolResult, Usage

MTOK = 1_000_000


@dataclass(slots=True, frozen=True)
class Price:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @classmethod
    def of(cls, model: Any) -> Price:
        return cls(
            input=model.input_per_mtok,
            output=model.output_per_mtok,
            cache_read=model.cache_read_per_mtok,
            cache_write_5m=model.cache_write_per_mtok or model.input_per_mtok,
            cache_write_1h=model.cache_write_1h_per_mtok or model.input_per_mtok,
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def json(self) -> str:
        """``to_dict`` as JSON text (as a usage row stores it), computed once per price."""
        return _price_json(self)

    def usd_per_mtok(self) -> dict[str, str]:
        return {k: _usd(Fraction(v)) for k, v in asdict(self).items()}


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
    return Cost(total_micro=-(-total // MTOK), items=items)


def _decimal_micro(amount: int) -> str:
    """``amount`` millionths of a micro-USD as an exact decimal string of micro-USD ("112.5", "0.00048", "3")."""
    whole, part = divmod(amount, MTOK)
    return f"{whole}.{part:06d}".rstrip("0") if part else str(whole)


def worst_case(price: Price, input_bound: int, max_tokens: int) -> int:
    """The most a request can cost: every input token at the dearest input rate, plus max_tokens out."""
    dearest = max(price.input, price.cache_write_5m, price.cache_write_1h, price.cache_read)
    return -(-(input_bound * dearest + max_tokens * price.output) // MTOK)


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


@functools.lru_cache(maxsize=256)
def _price_json(price: Price) -> str:
    return json.dumps(price.to_dict())


def _usd(micro_per_mtok: Fraction) -> str:
    return str((Decimal(micro_per_mtok.numerator) / Decimal(1_000_000)).normalize())


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
