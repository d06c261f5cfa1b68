"""The HTTP edge's parts: the head watch, the mask check, the socket budget and the acceptor."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable

import aiohttp
import pytest

from hubbub.server import listener
from hubbub.server.edge import RESERVED_OPCODE_FRAME, HeadWatch, MaskCheck
from hubbub.server.listener import Acceptor, Release, SocketBudget
from tests.support.rawws import client_frame
from tests.support.timing import scaled

# -- HeadWatch ------------------------------------------------------------------------------

REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def watch(*chunks: bytes) -> tuple[list[int], HeadWatch]:
    head = HeadWatch()
    return [head.feed(chunk) for chunk in chunks], head


def test_a_whole_request_reports_its_head_size() -> None:
    sizes, head = watch(REQUEST + b"body bytes")
    assert sizes == [len(REQUEST)]
    assert head.line == len(b"GET /health HTTP/1.1\r")


def test_the_blank_line_is_found_across_reads() -> None:
    for cut in range(1, len(REQUEST)):
        sizes, _ = watch(REQUEST[:cut], REQUEST[cut:])
        assert sizes[-1] == len(REQUEST) and all(s == -1 for s in sizes[:-1]), cut
    sizes, _ = watch(*[REQUEST[i : i + 1] for i in range(len(REQUEST))])
    assert sizes[-1] == len(REQUEST)


def test_leading_empty_lines_count_but_do_not_end_the_head() -> None:
    sizes, head = watch(b"\r\n\r\n", b"\r\n", REQUEST)
    assert sizes == [-1, -1, 6 + len(REQUEST)]
    assert head.seen == 6 + len(REQUEST)


def test_an_unfinished_head_counts_every_byte() -> None:
    sizes, head = watch(b"GET / HTTP/1.1\r\n", b"X: " + b"a" * 5000)
    assert sizes == [-1, -1]
    assert head.seen == 16 + 3 + 5000


# -- MaskCheck ------------------------------------------------------------------------------


class Reader:
    """Stands in for aiohttp's WebSocket reader: records what it is fed."""

    def __init__(self) -> None:
        self.fed = b""
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed += data
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True


def masked_stream() -> bytes:
    sizes = (0, 1, 125, 126, 65535, 65536, 70000)
    frames = [client_frame(0x2, bytes(n)) for n in sizes] + [client_frame(0x9, b"p")]
    return b"".join(frames)


def first_header_bytes(stream: bytes) -> set[int]:
    """The offsets just after the first byte of each frame header in ``stream``."""
    after, pos = set(), 0
    while pos < len(stream):
        size = stream[pos + 1] & 0x7F
        extra = 2 if size == 126 else 8 if size == 127 else 0
        if extra:
            size = int.from_bytes(stream[pos + 2 : pos + 2 + extra], "big")
        after.add(pos + 1)
        pos += 2 + extra + 4 + size
    return after


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000, 1 << 20])
def test_masked_frames_pass_through_in_any_chunks(size: int) -> None:
    reader, calls = Reader(), []
    check = MaskCheck(reader, lambda: calls.append(1))  # type: ignore[arg-type]
    stream = masked_stream()
    fed = []
    for chunk in chunked(stream, size):
        assert check.feed_data(chunk) == (False, b"")
        fed.append(len(reader.fed))
    assert reader.fed == stream
    assert not first_header_bytes(stream) & set(fed)  # never a header's first byte alone
    assert calls == []


@pytest.mark.parametrize("size", [1, 2, 5, 13, 1000, 1 << 20])
@pytest.mark.parametrize("length", [3, 200, 70000])
def test_the_first_unmasked_frame_is_replaced_and_reading_stops(size: int, length: int) -> None:
    reader, calls = Reader(), []
    check = MaskCheck(reader, lambda: calls.append(1))  # type: ignore[arg-type]
    good = masked_stream()
    bad = client_frame(0x1, b"x" * length, mask=False)
    results = [check.feed_data(chunk) for chunk in chunked(good + bad + good, size)]
    assert calls == [1]
    # What came before the bad frame, then the frame the reader fails on; nothing after, and
    # never a part of the bad frame's header (the reader would take it for a header).
    assert reader.fed == good + RESERVED_OPCODE_FRAME
    assert results[-1] == (True, b"")
    check.feed_eof()
    assert reader.eof


def test_reads_of_one_whole_frame_each_pass_and_an_unmasked_one_is_caught() -> None:
    """The one-frame-per-read shortcut: small masked frames pass; an unmasked one read alone
    is caught; a read of 132 bytes that only looks like one short frame is scanned."""
    reader, calls = Reader(), []
    check = MaskCheck(reader, lambda: calls.append(1))  # type: ignore[arg-type]
    small = [client_frame(0x1, b"x" * n) for n in (0, 1, 125)]
    for frame in small:
        assert check.feed_data(frame) == (False, b"")
    assert reader.fed == b"".join(small) and calls == []
    assert check.feed_data(client_frame(0x1, b"bad", mask=False)) == (True, b"")
    assert calls == [1] and reader.fed == b"".join(small) + RESERVED_OPCODE_FRAME
    # Second byte 0x80 | 126 (an extended length) and 132 bytes in all, but two frames.
    reader, calls = Reader(), []
    check = MaskCheck(reader, lambda: calls.append(1))  # type: ignore[arg-type]
    first = bytes((0x81, 0x80 | 126)) + struct.pack("!H", 10) + b"mask" + b"y" * 10
    second = client_frame(0x1, b"z" * (132 - len(first) - 2), mask=False)
    assert len(first) + len(second) == 132
    assert check.feed_data(first + second) == (True, b"")
    assert calls == [1] and reader.fed == first + RESERVED_OPCODE_FRAME


def test_a_short_unmasked_length_form_is_caught() -> None:
    reader = Reader()
    check = MaskCheck(reader, lambda: None)  # type: ignore[arg-type]
    frame = bytes((0x81, 126)) + struct.pack("!H", 300) + b"y" * 300
    assert check.feed_data(frame) == (True, b"")
    assert reader.fed == RESERVED_OPCODE_FRAME


# -- the socket budget ----------------------------------------------------------------------


def test_defaults_follow_the_open_file_limit() -> None:
    assert listener.socket_budget(20_000) == 19_000
    assert listener.default_connection_limit(20_000) == 17_100
    assert listener.socket_budget(1024) == 960  # the reserve is at least 64
    assert listener.default_connection_limit(1024) == 864
    assert listener.socket_budget(256) == 192
    assert listener.socket_budget(100) == 50  # the reserve is at most half
    assert listener.socket_budget(None) is None
    assert listener.default_connection_limit(None) is None


def test_a_release_gives_its_place_back_once_and_wakes_waiters() -> None:
    budget = SocketBudget(2)
    first, second = budget.take(), budget.take()
    assert budget.spent
    woken: list[int] = []
    budget.when_free(lambda: woken.append(1))
    first()
    first()  # a second call changes nothing
    assert (budget.open, woken, budget.spent) == (1, [1], False)
    second()
    assert budget.open == 0
    assert isinstance(first, Release)


def test_no_maximum_is_never_spent() -> None:
    budget = SocketBudget(None)
    for _ in range(1000):
        budget.take()
    assert not budget.spent


# -- the acceptor ---------------------------------------------------------------------------


class Served(asyncio.Protocol):
    """A protocol that holds its connection open and gives its place back when it is lost."""

    def __init__(self, release: Release, made: list[Served]) -> None:
        self.release = release
        self.transport: asyncio.BaseTransport | None = None
        made.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()


class FailingAccepts:
    """A listening socket whose first ``failures`` accepts fail with ``code``."""

    def __init__(self, sock: socket.socket, failures: int, code: int) -> None:
        self.sock = sock
        self.failures = failures
        self.code = code

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        if self.failures:
            self.failures -= 1
            raise OSError(self.code, "simulated")
        return self.sock.accept()

    def close(self) -> None:
        self.sock.close()


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def wait_for(condition: Callable[[], object], seconds: float = 5.0) -> None:
    async with asyncio.timeout(scaled(seconds)):
        while not condition():  # noqa: ASYNC110 (polls state of the code under test)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.EPROTO])
async def test_accept_errors_pause_accepting_then_it_goes_on(
    caplog: pytest.LogCaptureFixture, code: int
) -> None:
    sock = listening()
    flaky = FailingAccepts(sock, 3, code)
    made: list[Served] = []
    acceptor = Acceptor([flaky], lambda r: Served(r, made), SocketBudget(10))  # type: ignore[list-item]
    await acceptor.start_serving()
    caplog.set_level(logging.WARNING, "hubbub.server.listener")
    _, writer = await asyncio.open_connection(*sock.getsockname())
    try:
        await wait_for(lambda: made)  # accepted after three failures and their back-offs
        assert flaky.failures == 0
        lines = [r for r in caplog.records if "accepting paused" in r.getMessage()]
        assert len(lines) == 1  # throttled: one line for the three failures
        assert lines[0].exc_info is None
        assert sock.fileno() != -1  # the listener stays open
    finally:
        writer.close()
        acceptor.close()
    assert sock.fileno() == -1


async def test_a_spent_budget_pauses_accepting_until_a_connection_closes() -> None:
    sock = listening()
    made: list[Served] = []
    budget = SocketBudget(1)
    acceptor = Acceptor([sock], lambda r: Served(r, made), budget)
    await acceptor.start_serving()
    address = sock.getsockname()
    clients = [await asyncio.open_connection(*address) for _ in range(2)]  # the kernel queues
    try:
        await wait_for(lambda: made)
        await asyncio.sleep(0.1)
        assert len(made) == 1  # the second waits in the backlog
        transport = made[0].transport
        assert transport is not None
        transport.close()
        await wait_for(lambda: len(made) == 2)
        assert budget.open == 1
    finally:
        for _, writer in clients:
            writer.close()
        for protocol in made:
            if protocol.transport is not None:
                protocol.transport.close()
        acceptor.close()


# -- an upgraded connection -----------------------------------------------------------------


async def test_an_upgraded_connection_lets_the_http_parser_go_and_still_speaks() -> None:
    """Once a WebSocket, the connection holds no HTTP parser or request queue of its own;
    messages, pings and the close handshake still work."""
    from aiohttp import web

    from hubbub.config import Settings
    from hubbub.server.edge import NO_MESSAGES, EdgeProtocol, EdgeRunner, EdgeSite

    seen: list[tuple[object, object]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        protocol = request.protocol
        assert isinstance(protocol, EdgeProtocol)
        seen.append((protocol._parser, protocol._messages))
        async for msg in ws:
            await ws.send_str(msg.data.upper())
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = EdgeRunner(app, Settings(), SocketBudget(None))
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = EdgeSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                for text in ("one", "two"):
                    await ws.send_str(text)
                    assert (await ws.receive(timeout=scaled(5))).data == text.upper()
                await ws.close(code=4000)
                assert ws.closed and ws.close_code is not None
            # A plain request on a new connection is parsed as ever.
            async with session.get(f"http://127.0.0.1:{port}/nothing") as response:
                assert response.status == 404
        assert seen == [(None, NO_MESSAGES)]
        assert len(NO_MESSAGES) == 0
    finally:
        await runner.cleanup()
