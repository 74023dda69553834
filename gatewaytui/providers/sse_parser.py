"""The feed()/finish() loop every SSE-speaking ``StreamParser`` shares.

A subclass says what one frame's data means (``_frame``) and what the end of the byte stream means
(``_eof``: close the message, or report it cut short); this class does the framing, including the
last frame of a stream that was cut before its blank line.
"""

from __future__ import annotations

from ..codec import SSEDecoder
from ..model import Event


class SSEStreamParser:
    def __init__(self) -> None:
        self.decoder = SSEDecoder()

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        for _event, data in self.decoder.feed(chunk):
            self._frame(data, out)
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        for _event, data in self.decoder.flush():
            self._frame(data, out)
        self._eof(out)
        return out

    def _frame(self, data: bytes, out: list[Event]) -> None:
        raise NotImplementedError

    def _eof(self, out: list[Event]) -> None:
        raise NotImplementedError
