"""``write_delay``: a connection's output is held up to the delay after the first message
posted to it while idle, then written in order in one write; one loop timer for all
connections, armed at the oldest turn's first post + the delay (checked on a controlled loop
clock: ``loop.time`` and ``loop.call_at`` are replaced, nothing here sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hubbub.config import Settings
from hubbub.errors import ConfigError
from hubbub.server import metrics
from hubbub.server.httpstream import StreamConnection, chunk
from hubbub.server.policy import RAW_POLICY
from hubbub.server.sending import DelayedFlusher, build_frame, flusher_for
from hubbub.server.websocket import WebSocketConnection
from tests.support.chunked import dechunk
from tests.unit.server import test_httpstream as hs
from tests.unit.server.test_backpressure import Flow, Request, Transport, WebSocket, turn

DELAY = 0.005


@dataclass
class Clock:
    """The loop's time, set by the test; the delayed flushers' timers, recorded, not run."""

    now: float = 1000.0
    timers: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def fire(self) -> float:
        """Move the time to the earliest recorded timer and run it; return its time."""
        self.timers.sort(key=lambda timer: timer[0])
        when, callback = self.timers.pop(0)
        self.now = max(self.now, when)
        callback()
        return when


@pytest.fixture
async def clock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Clock]:
    loop = asyncio.get_running_loop()
    clock = Clock()
    call_at = loop.call_at

    def recording_call_at(
        when: float, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        if isinstance(getattr(callback, "__self__", None), DelayedFlusher):
            clock.timers.append((when, callback))
            return None
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "time", lambda: clock.now)
    monkeypatch.setattr(loop, "call_at", recording_call_at)
    yield clock


def connection(
    delay: float = DELAY, limit: int = 64 * 1024
) -> tuple[WebSocketConnection, Transport, WebSocket, Flow]:
    transport = Transport()
    ws = WebSocket(transport)
    flow = Flow()
    conn = WebSocketConnection(
        Request(transport),  # type: ignore[arg-type]
        ws,  # type: ignore[arg-type]
        Settings(write_buffer_limit=limit, write_delay=delay),
        RAW_POLICY,
        flow=flow,  # type: ignore[arg-type]
    )
    return conn, transport, ws, flow


def frames(*messages: str) -> bytes:
    return b"".join(build_frame(message) for message in messages)


async def test_no_delay_is_the_end_of_turn_flusher() -> None:
    """write_delay = 0 gives connections the loop's plain flusher: today's behaviour."""
    loop = asyncio.get_running_loop()
    assert flusher_for(loop).delayed(0.0) is flusher_for(loop)
    conn, transport, _, _ = connection(delay=0.0)
    try:
        conn.post("a")
        await turn()
        assert transport.written == [frames("a")]
    finally:
        conn.release()


async def test_held_until_the_timer_armed_at_the_first_post_plus_the_delay(clock: Clock) -> None:
    """Posts of later turns join the held output; the one timer is at first post + delay."""
    conn, transport, _, _ = connection()
    try:
        first = clock.now
        conn.post("a")
        await turn()
        clock.now += DELAY / 2
        conn.post("b")
        await turn()
        assert transport.written == []
        assert [when for when, _ in clock.timers] == [first + DELAY]
        clock.fire()
        assert transport.written == [frames("a", "b")]  # in order, in one write
        assert clock.timers == []  # nothing more held: no timer
    finally:
        conn.release()


async def test_order_is_kept_across_many_posts_and_delay_boundaries(clock: Clock) -> None:
    """Messages posted over many turns and several deadlines arrive once each, in order, and
    each is written by the first timer due at or after its connection's first held post."""
    conns = [connection() for _ in range(3)]
    posted: list[tuple[float, str]] = []
    try:
        for i in range(200):
            for conn, _, _, _ in conns:
                conn.post(f"m{i}")
            posted.append((clock.now, f"m{i}"))
            await turn()
            clock.now += DELAY / 7
            while clock.timers and min(when for when, _ in clock.timers) <= clock.now:
                clock.fire()
        while clock.timers:
            clock.fire()
        expected = frames(*(message for _, message in posted))
        for _, transport, _, _ in conns:
            assert b"".join(transport.written) == expected
            assert 1 < len(transport.written) < len(posted)  # batched, not one write each
    finally:
        for conn, _, _, _ in conns:
            conn.release()


async def test_nothing_is_held_longer_than_the_delay(clock: Clock) -> None:
    """A connection first posted to in a later turn gets its own deadline: when each timer
    fires, every message posted a delay or more before has been written."""
    early, early_out, _, _ = connection()
    late, late_out, _, _ = connection()
    try:
        t0 = clock.now
        early.post("e1")
        await turn()
        clock.now = t0 + 0.003
        late.post("l1")
        early.post("e2")  # joins the early connection's held output
        await turn()
        assert clock.fire() == t0 + DELAY
        assert early_out.written == [frames("e1", "e2")]
        assert late_out.written == []  # its first post was 3 ms ago: 2 ms to go
        assert clock.fire() == t0 + 0.003 + DELAY
        assert late_out.written == [frames("l1")]
    finally:
        early.release()
        late.release()


async def test_output_past_the_buffer_limit_goes_out_at_once(clock: Clock) -> None:
    """Held output over write_buffer_limit is written in the post that passed it."""
    limit = 64 * 1024
    conn, transport, _, _ = connection(limit=limit)
    try:
        conn.post("x" * 40_000)
        assert transport.written == []
        conn.post("y" * 40_000)
        assert transport.written == [frames("x" * 40_000, "y" * 40_000)]
        assert not conn.closing
        clock.fire()  # the turn's deadline comes: nothing left to write
        assert len(transport.written) == 1
    finally:
        conn.release()


async def test_close_writes_what_is_held_before_the_close_frame(clock: Clock) -> None:
    conn, transport, ws, _ = connection()
    try:
        conn.post("a")
        conn.post("b")
        conn.close(1000, "bye")
        await conn.wait_closed()
        assert transport.written == [frames("a", "b")]
        assert ws.close_frames == [(1000, b"bye", 1)]  # after the held output
        clock.fire()
        assert len(transport.written) == 1
    finally:
        conn.release()


async def test_a_connection_released_while_held_is_not_written(clock: Clock) -> None:
    conn, transport, _, _ = connection()
    conn.post("a")
    await turn()
    conn.release()
    clock.fire()
    assert transport.written == []


async def test_output_held_back_by_backpressure_is_not_delayed_again(clock: Clock) -> None:
    """At its deadline a paused connection keeps its output; on_writable writes it at the end
    of the turn, without another timer."""
    conn, transport, _, flow = connection()
    try:
        flow.writing_paused = True
        conn.post("a")
        await turn()
        clock.fire()
        assert transport.written == []
        flow.writing_paused = False
        conn.on_writable()
        await turn()
        assert transport.written == [frames("a")]
        assert clock.timers == []
    finally:
        conn.release()


async def test_a_slow_close_of_a_delayed_connection_is_counted(clock: Clock) -> None:
    """Slow closes of delayed connections count in /metrics like the others."""
    limit = 64 * 1024
    conn, transport, ws, flow = connection(limit=limit)
    slow_before = metrics.slow_closes()
    try:
        flow.writing_paused = True
        for _ in range(7):
            conn.post("x" * 10_000)
        await conn.wait_closed()
        assert transport.written == []
        assert ws.close_frames == [(1008, b"slow consumer", 0)]
        assert metrics.slow_closes() == slow_before + 1
    finally:
        conn.release()


async def test_an_http_stream_is_held_the_same_way(clock: Clock) -> None:
    """Streams (SSE, HTTP stream) take write_delay too: several turns, one chunk, in order."""
    transport = hs.Transport()
    conn = StreamConnection(
        hs.Request(transport),  # type: ignore[arg-type]
        hs.Response(transport),  # type: ignore[arg-type]
        Settings(write_delay=DELAY),
        hs.line,
        hs.farewell,
        hs.SLOW,
    )
    first = clock.now
    conn.post("a")
    await turn()
    clock.now += DELAY / 2
    conn.post("b")
    await turn()
    assert transport.written == []
    assert [when for when, _ in clock.timers] == [first + DELAY]
    clock.fire()
    assert transport.written == [chunk(b"a\nb\n")]
    conn.release()


def test_write_delay_is_bounded() -> None:
    assert Settings(write_delay=0.02).write_delay == 0.02
    with pytest.raises((ConfigError, ValueError)):
        Settings(write_delay=1.5)
    with pytest.raises((ConfigError, ValueError)):
        Settings(write_delay=-0.001)


async def test_making_a_delayed_flusher_keeps_the_slow_closes_counted() -> None:
    """The loop's count of slow closes (a /metrics counter) is not reset to 0 when the
    first connection of another write_delay makes that delay's flusher."""
    base = flusher_for(asyncio.get_running_loop())
    base.slow_closes += 3
    counted = base.slow_closes
    delayed = base.delayed(0.0123)
    assert base.slow_closes == counted
    assert delayed.slow_closes == counted


async def test_a_held_stream_past_the_buffer_limit_goes_out_at_once(clock: Clock) -> None:
    """As a WebSocket's: what write_delay holds is the server's, not a slow peer's; passing
    the limit while the transport takes it writes it now (in order), it does not close."""
    transport = hs.Transport()
    flow = hs.Flow()
    conn = StreamConnection(
        hs.Request(transport),  # type: ignore[arg-type]
        hs.Response(transport),  # type: ignore[arg-type]
        Settings(write_buffer_limit=64 * 1024, write_delay=DELAY),
        hs.line,
        hs.farewell,
        hs.SLOW,
        flow=flow,  # type: ignore[arg-type]
    )
    try:
        sent = [f"{n}" * 10_000 for n in range(7)]
        for message in sent:
            conn.post(message)
            await turn()
        assert not conn.closing
        clock.fire()
        body, _ = dechunk(b"".join(transport.written))
        assert b"".join(body) == b"".join(hs.line(m) for m in sent)
    finally:
        conn.release()


async def test_a_held_stream_behind_a_full_transport_is_still_slow(clock: Clock) -> None:
    """Passing the limit while the socket's buffer is not empty (here full: writing paused)
    closes it as slow."""
    transport = hs.Transport(buffered=48 * 1024)
    flow = hs.Flow(writing_paused=True)
    conn = StreamConnection(
        hs.Request(transport),  # type: ignore[arg-type]
        hs.Response(transport),  # type: ignore[arg-type]
        Settings(write_buffer_limit=64 * 1024, write_delay=DELAY),
        hs.line,
        hs.farewell,
        hs.SLOW,
        flow=flow,  # type: ignore[arg-type]
    )
    try:
        for n in range(7):
            conn.post(f"{n}" * 10_000)
        assert conn.closing and conn.closed_with == hs.SLOW
    finally:
        conn.release()
