"""Thought signatures: other families' signed thinking carried through a Gemini client and back."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ...codec import dumps, loads
from ...model import Thinking
from ..base import CARRIER
from .spec import NAME

_CARRIER = CARRIER.encode()  # the gateway's carrier mark, as on the other wires
_CARRIER_B64 = base64.b64encode(_CARRIER)[:8].decode()


def carry_signature(th: Thinking) -> str:
    """Another family's signed thinking, wrapped whole (its text too: the signature covers the text, and
    a stream sends text and signature in separate parts) so a Gemini client can hand it back."""
    payload = dumps({"f": th.family, "s": th.signature, "r": th.redacted, "t": th.text})
    return base64.b64encode(_CARRIER + payload).decode()


def uncarry_signature(sig: str | None) -> dict[str, Any] | None:
    """The wrapped signature, whichever base64 alphabet the client re-encoded it with; None if not ours."""
    if not sig or not sig.replace("-", "+").replace("_", "/").startswith(_CARRIER_B64):
        return None
    try:
        raw = base64.b64decode(sig.replace("-", "+").replace("_", "/") + "=" * (-len(sig) % 4))
        data = loads(raw[len(_CARRIER) :])
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def thinking_from(text: str, sig: str | None) -> Thinking:
    """A client's thought part as thinking: Gemini's own, or another family's unwrapped from the carrier."""
    carried = uncarry_signature(sig)
    if carried is not None:
        text = carried.get("t") or ""
        return Thinking(
            text=text, signature=carried.get("s"), redacted=carried.get("r"), family=carried.get("f")
        )
    return Thinking(text=text, signature=sig, family=NAME)
