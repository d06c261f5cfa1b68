"""The ASGI WebSocket transport against a fake ASGI server: a peer that never reads."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.config import Settings
from hubbub.server import asgi_websocket
from hubbub.server.asgi_http import Message
from hubbub.server.asgi_websocket import ASGIWebSocket
from hubbub.server.policy import RAW_POLICY

LIMIT = 64 * 1024


class StalledServer:
    """An ASGI server whose socket buffer is full: ``send`` never returns and the peer sends
    nothing (no frame, no close reply, no disconnect)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        await asyncio.Event().wait()


async def test_a_slow_consumer_that_never_reads_is_let_go_within_the_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closed as slow while the server's send is stuck, the handler's receive gives up
    (None) after CLOSE_TIMEOUT instead of waiting for the peer forever."""
    monkeypatch.setattr(asgi_websocket, "CLOSE_TIMEOUT", 0.2)
    server = StalledServer()
    conn = ASGIWebSocket(
        server.receive, server.send, Settings(write_buffer_limit=LIMIT), RAW_POLICY
    )
    reading = asyncio.create_task(conn.receive())
    conn.post("x" * (LIMIT // 2 + 1))  # handed to the stuck send
    await asyncio.sleep(0)
    conn.post("y" * (LIMIT // 2 + 1))  # over the limit: closed as slow
    assert conn.closed_with == RAW_POLICY.slow
    async with asyncio.timeout(2):
        assert await reading is None
        assert await conn.receive() is None  # and at once from then on
        await conn.wait_closed()
    conn.release()
    await conn.finished()


async def test_a_close_the_peer_never_answers_ends_receiving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A close (here: the dialect's) with a peer that never replies: receive returns None
    within the bound, and the close frame was handed to the server."""
    monkeypatch.setattr(asgi_websocket, "CLOSE_TIMEOUT", 0.2)
    server = StalledServer()
    conn = ASGIWebSocket(server.receive, server.send, Settings(), RAW_POLICY)
    conn.close(1000, "bye")
    async with asyncio.timeout(2):
        assert await conn.receive() is None
    assert server.sent == [{"type": "websocket.close", "code": 1000, "reason": "bye"}]
    conn.release()
    await conn.finished()


async def test_waiting_for_the_writer_does_not_swallow_the_callers_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handler waiting in wait_closed() or finished() while the server's send is stuck,
    then cancelled (the host's shutdown), ends cancelled: its cancellation is not taken for
    the writer's and swallowed."""
    monkeypatch.setattr(asgi_websocket, "CLOSE_TIMEOUT", 30)
    server = StalledServer()
    conn = ASGIWebSocket(server.receive, server.send, Settings(), RAW_POLICY)
    conn.post("x")  # the writer is now stuck in send
    await asyncio.sleep(0)
    conn.close(1000, "bye")
    for waiting in (conn.wait_closed, conn.finished):
        task = asyncio.create_task(waiting())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
    conn.release()
    await conn.finished()
