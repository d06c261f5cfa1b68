"""A WebSocketConnection whose transport is full holds posted messages back, and a slow close
drops them: its close frame is not queued behind them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hubbub.config import Settings
from hubbub.server import metrics
from hubbub.server.policy import RAW_POLICY
from hubbub.server.websocket import WebSocketConnection


@dataclass
class Transport:
    written: list[bytes] = field(default_factory=list)
    aborted: bool = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


@dataclass
class Request:
    transport: Transport
    remote: str = "127.0.0.1"


@dataclass
class Flow:
    """The protocol's flow control state, as aiohttp's BaseProtocol shows it."""

    writing_paused: bool = False


@dataclass
class WebSocket:
    transport: Transport
    compress: int = 0
    closed: bool = False
    close_frames: list[tuple[int, bytes, int]] = field(default_factory=list)

    def exception(self) -> BaseException | None:
        return None

    async def close(self, *, code: int, message: bytes, drain: bool) -> bool:
        # What was written before the close frame, and the close frame itself.
        self.close_frames.append((code, message, len(self.transport.written)))
        self.closed = True
        return True


def connection(limit: int = 64 * 1024) -> tuple[WebSocketConnection, Transport, WebSocket, Flow]:
    transport = Transport()
    ws = WebSocket(transport)
    flow = Flow()
    conn = WebSocketConnection(
        Request(transport),  # type: ignore[arg-type]
        ws,  # type: ignore[arg-type]
        Settings(write_buffer_limit=limit),
        RAW_POLICY,
        flow=flow,  # type: ignore[arg-type]
    )
    return conn, transport, ws, flow


async def turn() -> None:
    """Let the loop run the flusher (scheduled with call_soon)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_messages_wait_while_the_transport_is_paused() -> None:
    conn, transport, _, flow = connection()
    try:
        conn.post("a")
        await turn()
        assert transport.written == [b"\x81\x01a"]
        flow.writing_paused = True
        conn.post("b")
        await turn()
        conn.post("c")
        await turn()
        assert len(transport.written) == 1  # held, not handed to the transport
        assert conn.queued_bytes == 2
        flow.writing_paused = False
        conn.on_writable()
        await turn()
        assert transport.written[1:] == [b"\x81\x01b\x81\x01c"]  # in order, in one write
    finally:
        conn.release()


async def test_a_slow_close_drops_what_was_held_and_sends_the_close_frame_next() -> None:
    limit = 64 * 1024
    conn, transport, ws, flow = connection(limit)
    slow_before = metrics.slow_closes()
    try:
        flow.writing_paused = True
        chunk = "x" * 10_000
        for _ in range(limit // len(chunk) + 1):
            conn.post(chunk)  # over the limit: closed as slow
        await conn.wait_closed()
        assert transport.written == []  # nothing of what was held went out
        assert ws.close_frames == [(1008, b"slow consumer", 0)]
        assert metrics.slow_closes() == slow_before + 1  # hubbub_slow_consumer_closes_total
    finally:
        conn.release()


async def test_waiting_for_the_close_keeps_the_handlers_own_cancellation() -> None:
    """A handler cancelled while it waits for its close (aiohttp's clean-up at shutdown) is
    cancelled: wait_closed lets the CancelledError through, and the close goes on alone."""
    conn, _, ws, _ = connection()
    hold = asyncio.Event()

    async def close(*, code: int, message: bytes, drain: bool) -> bool:
        await hold.wait()  # a close handshake that takes its time
        return True

    ws.close = close  # type: ignore[method-assign]
    try:
        conn.close(1000, "bye")
        waiting = asyncio.ensure_future(conn.wait_closed())
        await turn()
        waiting.cancel()
        await asyncio.wait({waiting})
        assert waiting.cancelled()
        hold.set()
        await conn.wait_closed()  # the close itself was not cancelled
    finally:
        conn.release()
