"""Raw rooms at ``/rooms/{room}``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
import pytest

from tests.support.proto import wait_connections
from tests.support.rawws import RawWebSocket, handshake
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def members(url: str, n: int) -> AsyncIterator[list[aiohttp.ClientWebSocketResponse]]:
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
        yield [await stack.enter_async_context(http.ws_connect(url)) for _ in range(n)]


async def receive_n(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[str | bytes]:
    out = []
    for _ in range(n):
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
        out.append(msg.data)
    return out


async def test_three_members_one_order_no_self_echo(server: ServerProcess) -> None:
    """Messages from all members reach every other member in one order, never the sender."""
    async with members(server.ws + "/rooms/lobby", 3) as (a, b, c):
        await wait_connections(server, 3)
        sends = [(a, "a1"), (b, b"\x00b1\xff"), (c, "c1"), (a, b"a2"), (b, "b2"), (c, "c2 ü")]
        for ws, message in sends:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
        got = {name: await receive_n(ws, 4) for name, ws in (("a", a), ("b", b), ("c", c))}
        for name, ws in (("a", a), ("b", b), ("c", c)):
            # exactly the others' messages, each sender's in the order it sent them
            for sender in (a, b, c):
                from_sender = [m for w, m in sends if w is sender]
                seen = [m for m in got[name] if m in from_sender]
                assert seen == ([] if sender is ws else from_sender)
        # one order for all: any two members see the messages they share in the same order
        for x, y in (("a", "b"), ("b", "c"), ("a", "c")):
            assert [m for m in got[x] if m in got[y]] == [m for m in got[y] if m in got[x]]
        # binary stays binary, text stays text
        assert b"\x00b1\xff" in got["a"] and "c2 ü" in got["a"]
        # nothing more arrives (in particular no self-echo)
        for ws in (a, b, c):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.receive(), scaled(0.2))


async def test_rooms_are_separate(server: ServerProcess) -> None:
    """A message in one room does not reach another room."""
    async with (
        members(server.ws + "/rooms/one", 2) as (a, b),
        members(server.ws + "/rooms/two", 1) as (c,),
    ):
        await wait_connections(server, 3)
        await a.send_str("for room one")
        assert await receive_n(b, 1) == ["for room one"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(c.receive(), scaled(0.3))


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/rooms/bad%20name", "contains ' '"),
        ("/rooms/" + "x" * 256, "limit is 255"),
        ("/rooms/", "empty"),
        ("/rooms/a/b", "contains '/'"),
        ("/rooms/:start", "must not start with ':'"),
    ],
)
async def test_bad_room_name_is_400_with_reason(
    server: ServerProcess, path: str, reason: str
) -> None:
    """A bad room name is refused at the handshake with HTTP 400 saying why."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    status, _ = await handshake(reader, writer, "127.0.0.1", server.port, path)
    body = await asyncio.wait_for(reader.read(4096), scaled(5))
    writer.close()
    assert status == 400
    assert reason in body.decode()


async def test_oversize_member_closed_others_carry_on(start_server) -> None:  # type: ignore[no-untyped-def]
    """A member sending an oversize message gets 1009; the room keeps working for the rest."""
    server = start_server("--max-message-size", "2048")
    async with members(server.ws + "/rooms/r", 3) as (a, b, c):
        await wait_connections(server, 3)
        await a.send_bytes(b"z" * 4096)
        msg = await asyncio.wait_for(a.receive(), scaled(10))
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert a.close_code == 1009
        await wait_connections(server, 2)
        await b.send_str("still works")
        assert await receive_n(c, 1) == ["still works"]


async def test_slow_member_is_cut_off_others_get_everything(start_server) -> None:  # type: ignore[no-untyped-def]
    """A member that stops reading is closed as slow; the others receive every message."""
    # 25 MB from one sender: above its default byte budget, which this test is not about.
    limits = "client_byte_rate = 1e9\nclient_byte_burst = 1000000000\n"
    server = start_server(config="write_buffer_limit = 65536\n" + limits)
    async with (
        await RawWebSocket.connect("127.0.0.1", server.port, "/rooms/r"),
        members(server.ws + "/rooms/r", 2) as (sender, fast),
    ):
        await wait_connections(server, 3)
        chunk = "x" * 10000
        count = 2500  # ~25 MB: more than the slow socket's kernel buffers can hold
        window = 3  # the sender keeps the fast member's queue well under the limit
        received = 0
        progress = asyncio.Event()

        async def read_all() -> None:
            nonlocal received
            for i in range(count):
                msg = await asyncio.wait_for(fast.receive(), scaled(20))
                assert msg.data == f"{i:06d}" + chunk
                received += 1
                progress.set()

        reader = asyncio.create_task(read_all())
        for i in range(count):
            while i - received >= window:
                progress.clear()
                await asyncio.wait_for(progress.wait(), scaled(20))
            await sender.send_str(f"{i:06d}" + chunk)
        await reader
        assert received == count
        await wait_connections(server, 2)  # the slow one is gone
        assert "closing slow consumer" in server.stderr()
