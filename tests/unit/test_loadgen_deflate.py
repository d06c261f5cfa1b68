"""The load generator's permessage-deflate dialect: it offers the extension, refuses an answer
without it, and counts publications of compressed frames, context-free or not."""

from __future__ import annotations

import zlib

import pytest

from hubbub.loadgen import Client, HubbubDialect, Stats
from hubbub.loadgen_deflate import BROWSER_OFFER, DeflateHubbubDialect
from hubbub.server.sending import DeflateFramer, build_frame

RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
PUSH = '{"push":{"channel":"bench","pub":{"data":"%s"}}}'


class Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        pass


def opened(dialect: HubbubDialect) -> tuple[Client, Stats]:
    stats = Stats()
    client = Client(b"", dialect, stats, sample=False)
    client.transport = Sink()  # type: ignore[assignment]
    ext = b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
    client.data_received(RESPONSE + (ext if isinstance(dialect, DeflateHubbubDialect) else b""))
    client.data_received(b"\r\n")
    return client, stats


def kept_context_frames(messages: list[str]) -> list[bytes]:
    """Frames of a server that keeps its context (each refers back to the one before)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    frames = []
    for message in messages:
        data = compressor.compress(message.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payload = data[:-4]
        frames.append(bytes((0xC1, 126)) + len(payload).to_bytes(2, "big") + payload)
    return frames


async def test_it_offers_deflate_like_a_browser() -> None:
    dialect = DeflateHubbubDialect()
    assert dict(dialect.headers) == {"Sec-WebSocket-Extensions": BROWSER_OFFER}
    assert dialect.check_handshake(RESPONSE) == "the server did not accept permessage-deflate"
    ok = RESPONSE + b"sec-websocket-extensions: permessage-deflate"
    assert dialect.check_handshake(ok) is None
    assert HubbubDialect().check_handshake(RESPONSE) is None


@pytest.mark.parametrize("kind", ["context-free", "kept context"])
async def test_compressed_and_plain_frames_are_counted(kind: str) -> None:
    client, stats = opened(DeflateHubbubDialect())
    messages = [PUSH % ("x" * n) for n in (300, 300, 500)]
    if kind == "context-free":
        framer = DeflateFramer(12, 1, 64)
        frames = [framer.frame(m) for m in messages]
    else:
        frames = kept_context_frames(messages)
    assert all(frame[0] & 0x40 for frame in frames)
    client.data_received(b"".join(frames) + build_frame(PUSH % "plain"))
    assert stats.delivered == 4


async def test_a_plain_dialect_refuses_a_compressed_frame() -> None:
    client, _ = opened(HubbubDialect())
    with pytest.raises(ConnectionError):
        client.data_received(DeflateFramer(12, 1, 0).frame(PUSH % "x"))
