"""StreamConnection writes what a loop turn posted as one chunk per stream, built once for
equal contents, holds messages back while the transport is full, closes a slow stream with
only its farewell, and ends the response after everything posted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from hubbub.config import Settings
from hubbub.server import httpstream, metrics
from hubbub.server.httpstream import StreamConnection, chunk
from tests.support.chunked import dechunk

SLOW = (3008, "slow")


@dataclass
class Transport:
    written: list[bytes] = field(default_factory=list)
    buffered: int = 0
    closing: bool = False
    aborted: bool = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing or self.aborted

    def abort(self) -> None:
        self.aborted = True


@dataclass
class Request:
    transport: Transport
    protocol: object = None


@dataclass
class Response:
    transport: Transport
    eof: bool = False
    #: Set to make write_eof wait, as aiohttp's drain does for a peer that does not read.
    stuck: asyncio.Event | None = None

    async def write_eof(self) -> None:
        if self.stuck is not None:
            await self.stuck.wait()
        self.transport.write(b"0\r\n\r\n")
        self.eof = True


@dataclass
class Flow:
    writing_paused: bool = False


def line(message: str | bytes) -> bytes:
    return (message if isinstance(message, bytes) else message.encode()) + b"\n"


def farewell(code: int, reason: str) -> str:
    return f"bye {code} {reason}"


def stream(
    limit: int = 64 * 1024, *, chunked: bool = True, flow: Flow | None = None
) -> tuple[StreamConnection, Transport, Response]:
    transport = Transport()
    response = Response(transport)
    conn = StreamConnection(
        Request(transport),  # type: ignore[arg-type]
        response,  # type: ignore[arg-type]
        Settings(write_buffer_limit=limit),
        line,
        farewell,
        SLOW,
        chunked=chunked,
        flow=flow,  # type: ignore[arg-type]
    )
    return conn, transport, response


async def turn() -> None:
    """Let the loop run the flusher (scheduled with call_soon)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_turns_messages_are_one_chunk_in_order() -> None:
    conn, transport, _ = stream()
    for n in range(3):
        conn.post(f"m{n}")
    assert transport.written == []  # not before the end of the turn
    await turn()
    assert transport.written == [chunk(b"m0\nm1\nm2\n")]
    assert dechunk(b"".join(transport.written)) == ([b"m0\nm1\nm2\n"], False)


async def test_equal_contents_of_a_turn_are_chunked_once() -> None:
    """The fan-out posts one message object to every stream; the framing gives the same bytes
    (SSE and line framings memoise them), and the same chunk object goes to every socket."""
    framed = b'{"pub":1}\n'
    streams = [stream() for _ in range(3)]
    for conn, _, _ in streams:
        conn._framing = lambda message: framed
        conn.post("p")
    await turn()
    written = [transport.written for _, transport, _ in streams]
    assert all(len(w) == 1 for w in written)
    assert written[0][0] == chunk(framed)
    assert written[1][0] is written[0][0] and written[2][0] is written[0][0]


async def test_without_chunked_coding_the_bytes_go_as_they_are() -> None:
    """HTTP/1.0: no chunked transfer coding, the body ends with the connection."""
    conn, transport, _ = stream(chunked=False)
    conn.post("a")
    conn.post("b")
    await turn()
    assert transport.written == [b"a\nb\n"]


async def test_messages_wait_while_the_transport_is_full() -> None:
    flow = Flow(writing_paused=True)
    conn, transport, _ = stream(flow=flow)
    conn.post("a")
    await turn()
    conn.post("b")
    await turn()
    assert transport.written == []
    flow.writing_paused = False
    conn.on_writable()
    await turn()
    assert transport.written == [chunk(b"a\nb\n")]


async def test_a_slow_stream_gets_only_its_farewell_then_the_end() -> None:
    """Held back behind a full transport, what waits passes the limit: it is dropped, the
    farewell is written at once and run() ends the response."""
    flow = Flow()
    conn, transport, response = stream(limit=64 * 1024, flow=flow)
    slow_before = metrics.slow_closes()
    runner = asyncio.create_task(conn.run())
    conn.post("a")
    transport.buffered = 60 * 1024  # the socket took none of it (nor what came before)
    await turn()
    flow.writing_paused = True
    conn.post("x" * 3000)
    assert not conn.closing
    conn.post("y" * 3000)  # 6 KB waiting + 60 KB buffered > 64 KiB
    assert conn.closing
    conn.post("after")  # ignored
    await asyncio.wait_for(runner, 1)
    assert transport.written == [chunk(b"a\n"), chunk(b"bye 3008 slow\n"), b"0\r\n\r\n"]
    assert response.eof and not transport.aborted
    assert metrics.slow_closes() == slow_before + 1  # hubbub_slow_consumer_closes_total


async def test_close_writes_the_farewell_after_everything_posted() -> None:
    """Even while the transport is full: a close does not drop what was posted."""
    flow = Flow(writing_paused=True)
    conn, transport, response = stream(flow=flow)
    runner = asyncio.create_task(conn.run())
    conn.post("a")
    conn.close(4000, "done")
    conn.close(4001, "again")  # idempotent
    await asyncio.wait_for(runner, 1)
    body, ended = dechunk(b"".join(transport.written))
    assert b"".join(body) == b"a\nbye 4000 done\n" and ended
    assert response.eof


async def test_a_peer_that_does_not_read_is_aborted_after_the_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpstream, "CLOSE_TIMEOUT", 0.05)
    conn, transport, response = stream()
    response.stuck = asyncio.Event()  # the last chunk never drains
    runner = asyncio.create_task(conn.run())
    conn.close(4000, "done")
    await asyncio.sleep(0.1)
    assert transport.aborted
    response.stuck.set()  # aiohttp's drain returns once the connection is lost
    await asyncio.wait_for(runner, 1)


async def test_a_peer_gone_unnoticed_ends_run_at_the_next_write() -> None:
    """Without EdgeProtocol's connection-lost callback, the next flush finds the transport
    closing: run() returns and the connection is aborted, nothing more is written."""
    conn, transport, response = stream()
    runner = asyncio.create_task(conn.run())
    transport.closing = True
    conn.post("ping")
    await asyncio.wait_for(runner, 1)
    assert transport.written == [] and transport.aborted and not response.eof
    assert conn.closing


async def test_lost_drops_what_waits_and_ends_run() -> None:
    conn, transport, _ = stream()
    runner = asyncio.create_task(conn.run())
    conn.post("a")
    conn.on_lost()
    await asyncio.wait_for(runner, 1)
    await turn()
    assert transport.written == [] and transport.aborted
