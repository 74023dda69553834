"""The relay's records of one request in flight: the call itself, and an upstream attempt that answered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..billing import pricing
from ..billing.limits import Ticket
from ..billing.wallet import Hold
from ..config import ModelConfig
from ..model import ChatRequest, ChatResponse, Event
from ..pool.account import Account
from ..protocols.base import ProtocolModule
from ..providers.base import ProviderModule, UpstreamRequest
from ..runtime import Runtime
from ..traffic import Flight
from ..upstream import Response


@dataclass(slots=True)
class Call:
    """One client request in flight through the relay."""

    rt: Runtime
    protocol: ProtocolModule
    route: str
    request_id: str
    key: dict[str, Any]
    req: ChatRequest
    model: ModelConfig
    provider: ProviderModule
    hold: Hold
    flight: Flight
    price: pricing.Price
    subscription: bool = False
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    settled: bool = False
    upstream: asyncio.Task[Attempt] | None = None  # a stream's upstream try (connect), once started
    raw_len: int = 0  # the request body's size in bytes
    ticket: Ticket | None = None  # what it holds against its key's budget and the token-rate windows
    capture: Any = None  # a store.bodies.Capture when [console] store_bodies is on
    requested: ModelConfig | None = None  # the model asked for (``model``: the one serving, maybe a fallback)
    asked_max_tokens: int | None = None  # the request's own output ceiling (None: each model's default)

    @property
    def asked_for(self) -> ModelConfig:
        """The model the client asked for (``model`` is the one serving it)."""
        return self.requested or self.model

    @property
    def fell_back(self) -> bool:
        """A fallback model serves this call."""
        return self.model is not self.asked_for


@dataclass(slots=True)
class Attempt:
    """An upstream that answered 200: its response, and for streams what was read before committing."""

    account: Account
    response: Response
    upstream: UpstreamRequest
    parser: Any = None
    buffered: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rest: bytes = b""  # what the pre-read received past the first content, not parsed yet
    ended: bool = False
    result: ChatResponse | None = None
    raw_body: bytes | None = None
