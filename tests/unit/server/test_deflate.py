"""permessage-deflate with bounded memory: the negotiation (hubbub.server.deflate) and the
per-connection compressor (hubbub.server.sending.DeflateWriter)."""

from __future__ import annotations

import os
import tracemalloc
import zlib
from base64 import b64encode

import pytest

from hubbub.server.deflate import DeflateParams, compressor_bytes, mem_level, negotiate
from hubbub.server.sending import DeflateWriter

KiB = 1024
TAIL = b"\x00\x00\xff\xff"


@pytest.mark.parametrize(
    ("offers", "expected"),
    [
        # What browsers send: the server window is bounded all the same (RFC 7692 §7.1.2.1).
        ("permessage-deflate; client_max_window_bits", DeflateParams(12, False)),
        ("permessage-deflate", DeflateParams(12, False)),
        ("Permessage-Deflate ;Client_Max_Window_Bits=15", DeflateParams(12, False)),
        # A client may ask for less, never for more.
        ("permessage-deflate; server_max_window_bits=10", DeflateParams(10, False)),
        ('permessage-deflate; server_max_window_bits="9"', DeflateParams(9, False)),
        ("permessage-deflate; server_max_window_bits=15", DeflateParams(12, False)),
        ("permessage-deflate; server_no_context_takeover", DeflateParams(12, True)),
        ("permessage-deflate; client_no_context_takeover", DeflateParams(12, False)),
        # 8 bits cannot be honoured by zlib: that offer is declined, the next one taken.
        ("permessage-deflate; server_max_window_bits=8", None),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            DeflateParams(12, False),
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
            DeflateParams(11, False),
        ),
    ],
)
def test_negotiation_bounds_the_server_window(offers: str, expected: DeflateParams | None) -> None:
    assert negotiate(offers, 12) == expected


def test_the_configured_window_is_the_bound() -> None:
    assert negotiate("permessage-deflate", 15) == DeflateParams(15, False)
    assert negotiate("permessage-deflate; server_max_window_bits=10", 9) == DeflateParams(9, False)


def test_the_response_names_the_window_and_the_context_takeover() -> None:
    assert DeflateParams(12, False).header == "permessage-deflate; server_max_window_bits=12"
    assert DeflateParams(10, True).header == (
        "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"
    )


def _inflate(frame: bytes, inflater: zlib._Decompress) -> tuple[int, bytes]:
    """(first header byte, inflated payload) of one unmasked server frame."""
    n = frame[1] & 0x7F
    start = 2 if n < 126 else (4 if n == 126 else 10)
    return frame[0], inflater.decompress(frame[start:] + TAIL)


def _far_repeat() -> list[str]:
    """Two messages, the second a repeat of text 8 KiB back in the first: a compressor with a
    window over 4 KiB refers back to it, which a 12-bit inflater refuses (within one message
    an inflater can reach all of that message, whatever its window)."""
    block = b64encode(os.urandom(3 * KiB)).decode()  # 4 KiB of incompressible text
    other = b64encode(os.urandom(3 * KiB)).decode()
    return [block + other, block]


@pytest.mark.parametrize("window_bits", [9, 12, 15])
def test_frames_stay_within_the_negotiated_window(window_bits: int) -> None:
    writer = DeflateWriter(window_bits)
    inflater = zlib.decompressobj(-window_bits)
    first, second = _far_repeat()
    for message in (first, second, second.encode(), b"", "", "short"):
        head, payload = _inflate(writer.frame(message), inflater)
        assert head == (0xC1 if isinstance(message, str) else 0xC2)  # FIN, RSV1, text/binary
        assert payload == (message.encode() if isinstance(message, str) else message)


def test_a_wider_compressor_is_refused_by_a_12_bit_inflater() -> None:
    # The test above can fail: a 15-bit window's frames do not inflate in 12 bits.
    writer = DeflateWriter(15)
    inflater = zlib.decompressobj(-12)
    first, second = _far_repeat()
    _inflate(writer.frame(first), inflater)
    with pytest.raises(zlib.error, match="too far back"):
        _inflate(writer.frame(second), inflater)


def test_context_is_kept_unless_no_context_takeover() -> None:
    message = "the same push, again and again " * 4
    kept = DeflateWriter(12)
    first, again = kept.frame(message), kept.frame(message)
    assert len(again) < len(first)  # refers back to the previous message
    fresh = DeflateWriter(12, no_context_takeover=True)
    for _ in range(3):  # each frame inflates on its own
        assert _inflate(fresh.frame(message), zlib.decompressobj(-12))[1] == message.encode()


def test_compressor_memory_is_bounded_and_freed_on_close() -> None:
    tracemalloc.start()
    try:
        writer = DeflateWriter(12)
        before = tracemalloc.get_traced_memory()[0]
        assert not writer.allocated  # nothing until the first message
        writer.frame("hello")
        used = tracemalloc.get_traced_memory()[0] - before
        writer.close()
        after_close = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert mem_level(12) == 4
    assert compressor_bytes(12) == 30 * KiB
    # zlib's own default (15 bits, memory level 8) allocates 263 KiB.
    assert 24 * KiB < used <= compressor_bytes(12) * 1.1
    assert after_close < 1 * KiB
    assert not writer.allocated
    with pytest.raises(ConnectionResetError):
        writer.frame("after close")
