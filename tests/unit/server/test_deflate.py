"""permessage-deflate, context-free and with bounded memory: the negotiation
(hubbub.server.deflate) and the shared compressor (hubbub.server.sending.DeflateFramer)."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
import zlib
from base64 import b64encode

import pytest

from hubbub.server.deflate import DeflateParams, compressor_bytes, mem_level, negotiate
from hubbub.server.sending import DeflateFramer, framer_for

KiB = 1024
TAIL = b"\x00\x00\xff\xff"


@pytest.mark.parametrize(
    ("offers", "expected"),
    [
        # What browsers send: the server window is bounded all the same (RFC 7692 §7.1.2.1).
        ("permessage-deflate; client_max_window_bits", DeflateParams(12)),
        ("permessage-deflate", DeflateParams(12)),
        ("Permessage-Deflate ;Client_Max_Window_Bits=15", DeflateParams(12)),
        # A client may ask for less, never for more.
        ("permessage-deflate; server_max_window_bits=10", DeflateParams(10)),
        ('permessage-deflate; server_max_window_bits="9"', DeflateParams(9)),
        ("permessage-deflate; server_max_window_bits=15", DeflateParams(12)),
        ("permessage-deflate; server_no_context_takeover", DeflateParams(12)),
        ("permessage-deflate; client_no_context_takeover", DeflateParams(12)),
        # 8 bits cannot be honoured by zlib: that offer is declined, the next one taken.
        ("permessage-deflate; server_max_window_bits=8", None),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            DeflateParams(12),
        ),
        # Malformed offers are declined (RFC 7692 §5).
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=x", None),
        ("permessage-deflate; client_max_window_bits=7", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
        ("permessage-deflate; unknown_param", None),
        ("x-webkit-deflate-frame", None),
        (
            "x-webkit-deflate-frame, permessage-deflate; unknown, permessage-deflate; "
            "server_max_window_bits=11",
            DeflateParams(11),
        ),
    ],
)
def test_negotiation_bounds_the_server_window(offers: str, expected: DeflateParams | None) -> None:
    assert negotiate(offers, 12) == expected


def test_the_configured_window_is_the_bound() -> None:
    assert negotiate("permessage-deflate", 15) == DeflateParams(15)
    assert negotiate("permessage-deflate; server_max_window_bits=10", 9) == DeflateParams(9)


def test_the_response_names_the_window_and_always_no_context_takeover() -> None:
    assert DeflateParams(12).header == (
        "permessage-deflate; server_max_window_bits=12; server_no_context_takeover"
    )
    assert DeflateParams(10).header == (
        "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"
    )


def _inflate(frame: bytes, inflater: zlib._Decompress) -> tuple[int, bytes]:
    """(first header byte, inflated payload) of one unmasked server frame, fed to the
    inflater 256 bytes at a time as from a socket: zlib lets one call refer back into all of
    its own output, so only pieces hold the stream to the inflater's window."""
    n = frame[1] & 0x7F
    start = 2 if n < 126 else (4 if n == 126 else 10)
    data = frame[start:] + TAIL
    return frame[0], b"".join(
        inflater.decompress(data[i : i + 256]) for i in range(0, len(data), 256)
    )


def _far_repeat() -> list[str]:
    """Two messages, the second a repeat of text 8 KiB back in the first: a compressor with a
    window over 4 KiB refers back to it, which a 12-bit inflater refuses."""
    block = b64encode(os.urandom(3 * KiB)).decode()  # 4 KiB of incompressible text
    other = b64encode(os.urandom(3 * KiB)).decode()
    return [block + other, block]


@pytest.mark.parametrize("window_bits", [9, 12, 15])
def test_frames_stay_within_the_negotiated_window(window_bits: int) -> None:
    framer = DeflateFramer(window_bits, 1, 0)
    inflater = zlib.decompressobj(-window_bits)
    first, second = _far_repeat()
    for message in (first, second, second.encode(), b"", "", "short"):
        head, payload = _inflate(framer.frame(message), inflater)
        assert head == (0xC1 if isinstance(message, str) else 0xC2)  # FIN, RSV1, text/binary
        assert payload == (message.encode() if isinstance(message, str) else message)


def test_a_wider_window_is_refused_by_a_12_bit_inflater() -> None:
    # The test above can fail: a 15-bit window's frames do not inflate in 12 bits (within
    # one message: the long one repeats its first 4 KiB 8 KiB later).
    first, second = _far_repeat()
    long = first + second
    _inflate(DeflateFramer(12, 1, 0).frame(long), zlib.decompressobj(-12))
    with pytest.raises(zlib.error, match="too far back"):
        _inflate(DeflateFramer(15, 1, 0).frame(long), zlib.decompressobj(-12))


def test_every_frame_inflates_on_its_own_or_after_any_other() -> None:
    """No context is kept: a frame inflates with a fresh inflater, and with one that inflated
    other frames of the extension before (as a client that keeps its inflater does)."""
    message = "the same push, again and again " * 4
    framer = DeflateFramer(12, 1, 0)
    frames = [framer.frame(message) for _ in range(3)]
    assert frames[0] == frames[1] == frames[2]  # nothing refers back to an earlier message
    for frame in frames:
        assert _inflate(frame, zlib.decompressobj(-12))[1] == message.encode()
    other = DeflateFramer(9, 9, 0)  # another setting's frames, on the same stream
    kept = zlib.decompressobj(-15)
    for frame in (other.frame("x" * 500), frames[0], other.frame(message), frames[1]):
        assert _inflate(frame, kept)[1] in (b"x" * 500, message.encode())


def test_messages_under_min_size_go_plain() -> None:
    framer = DeflateFramer(12, 1, 64)
    assert framer.frame("x" * 63) == bytes((0x81, 63)) + b"x" * 63  # no RSV1
    assert framer.frame(b"\x00" * 63)[0] == 0x82
    assert framer.frame("é" * 32)[0] == 0xC1  # 64 bytes: compressed (the size is in bytes)
    head, payload = _inflate(framer.frame("x" * 64), zlib.decompressobj(-12))
    assert (head, payload) == (0xC1, b"x" * 64)


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_the_level_is_zlibs(level: int) -> None:
    message = " ".join(f"word{n % 50}" for n in range(2000))
    frame = DeflateFramer(12, level, 0).frame(message)
    assert _inflate(frame, zlib.decompressobj(-12))[1] == message.encode()
    expected = zlib.compressobj(level, zlib.DEFLATED, -12, 4)
    data = expected.compress(message.encode()) + expected.flush(zlib.Z_FULL_FLUSH)
    assert frame.endswith(data[:-4])  # what zlib makes at that level
    if level == 0:
        assert len(frame) > len(message)  # stored blocks


def test_one_framer_per_loop_and_setting() -> None:
    loop, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        framer = framer_for(loop, 12, 1, 64)
        assert framer_for(loop, 12, 1, 64) is framer
        assert framer_for(loop, 11, 1, 64) is not framer
        assert framer_for(loop, 12, 2, 64) is not framer
        assert framer_for(loop, 12, 1, 0) is not framer
        assert framer_for(other, 12, 1, 64) is not framer
    finally:
        loop.close()
        other.close()


def test_compressor_memory_is_bounded_and_paid_once() -> None:
    loop = asyncio.new_event_loop()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        framer = framer_for(loop, 12, 1, 0)
        framer.frame("hello")
        used = tracemalloc.get_traced_memory()[0] - before
        for _ in range(100):  # a hundred connections of that window: no more compressors
            framer_for(loop, 12, 1, 0).frame("hello")
        more = tracemalloc.get_traced_memory()[0] - before - used
    finally:
        tracemalloc.stop()
        loop.close()
    assert mem_level(12) == 4
    assert compressor_bytes(12) == 30 * KiB
    # zlib's own default (15 bits, memory level 8) allocates 263 KiB.
    assert 24 * KiB < used <= compressor_bytes(12) * 1.1
    assert more < 1 * KiB
