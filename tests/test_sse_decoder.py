"""codec.SSEDecoder: frames split anywhere, bounded lines and frames, no quadratic re-joining."""

from __future__ import annotations

import pytest

from gatewaytui.codec import FrameTooLarge, SSEDecoder

STREAM = b"event: a\r\ndata: one\r\ndata: two\r\n\r\n: comment\n\ndata: three\n\nevent: b\ndata: four"
FRAMES = [("a", b"one\ntwo"), (None, b"three"), ("b", b"four")]

# the usual frames (taken a split each when whole in a chunk) next to every other shape the line loop takes
MIXED = (
    b"event: message_start\ndata: {}\n\ndata: [DONE]\n\ndata:tight\n\nevent:tight\ndata: x\n\n"
    b"event: e\ndata: a: b\n\n: ping\n\nid: 3\ndata: c\n\ndata: d\ndata: e\n\n\n\ndata: \n\nevent: only\n\n"
    b"event: f\nevent: g\ndata: h\n\nevent: \xff\ndata: i\n\ndata:  two spaces\n\nretry: 5\n\n"
    b"event: m\ndata: j\ndata: k\n\n"
)
MIXED_FRAMES = [
    ("message_start", b"{}"),
    (None, b"[DONE]"),
    (None, b"tight"),
    ("tight", b"x"),
    ("e", b"a: b"),
    (None, b"c"),
    (None, b"d\ne"),
    (None, b""),
    ("only", b""),
    ("g", b"h"),
    ("\ufffd", b"i"),
    (None, b" two spaces"),
    ("m", b"j\nk"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 40, 10_000])
@pytest.mark.parametrize(("stream", "expected"), [(STREAM, FRAMES), (MIXED, MIXED_FRAMES)])
def test_frames_split_anywhere_decode_the_same(
    stream: bytes, expected: list[tuple[str | None, bytes]], size: int
) -> None:
    """Whole frames in a chunk (the usual shapes are taken a split each) decode as frames split anywhere."""
    decoder = SSEDecoder()
    frames = [f for i in range(0, len(stream), size) for f in decoder.feed(stream[i : i + size])]
    assert frames + list(decoder.flush()) == expected


def test_an_unterminated_line_is_held_in_parts_and_joined_once() -> None:
    decoder = SSEDecoder()
    piece = b"x" * 1000
    assert list(decoder.feed(b"data: ")) == []
    for _ in range(500):
        assert list(decoder.feed(piece)) == []
    assert len(decoder._parts) == 501 and decoder._held == 6 + 500 * 1000  # appended, never re-joined
    assert list(decoder.feed(b"\n\n")) == [(None, piece * 500)]
    assert decoder._parts == [] and decoder._held == 0


def test_a_line_longer_than_the_cap_is_an_error() -> None:
    decoder = SSEDecoder(max_frame=10_000)
    with pytest.raises(FrameTooLarge, match="line longer than 10000"):
        for _ in range(20):
            list(decoder.feed(b"data: " + b"y" * 1000))
    assert decoder._held == 0  # what it held is dropped


def test_a_long_line_in_one_chunk_is_an_error_too() -> None:
    decoder = SSEDecoder(max_frame=100)
    with pytest.raises(FrameTooLarge):
        list(decoder.feed(b"data: " + b"z" * 200 + b"\n\n"))


def test_a_frame_of_many_short_data_lines_is_bounded() -> None:
    decoder = SSEDecoder(max_frame=1000)
    with pytest.raises(FrameTooLarge, match="event longer"):
        list(decoder.feed(b"data: 0123456789\n" * 200))


def test_the_decoder_works_again_after_a_frame_it_refused() -> None:
    decoder = SSEDecoder(max_frame=100)
    with pytest.raises(FrameTooLarge):
        list(decoder.feed(b"data: " + b"z" * 200))
    assert list(decoder.feed(b"\n\ndata: ok\n\n")) == [(None, b"ok")]


def test_a_chunk_of_whole_frames_past_the_cap_is_still_bounded() -> None:
    decoder = SSEDecoder(max_frame=30)
    with pytest.raises(FrameTooLarge):
        list(decoder.feed(b"data: ok\n\n" + b"data: " + b"x" * 40 + b"\n\n"))
