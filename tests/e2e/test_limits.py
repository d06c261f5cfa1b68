"""Rate limits that protect (issue 12, defect 8), against a server process with its default
limits: a sustained command flood ends in 3013, a connection sending big messages at full
speed is refused (111) then disconnected, a flooding raw room member is closed with 1008, and
the memory history store stays within its byte bound across channels."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import WS, call, connected, raw_client, wait_connections
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

#: No history where the floods go: publishes are acknowledged without touching a disk.
NO_HISTORY = """
[[namespaces]]
name = "nohist"
[[namespaces]]
name = "rooms"
"""
BIG = "x" * 60_000  # a publication's data under the 64 KiB message limit


class Replies:
    """Reads a channel-protocol connection until it closes: how many replies were refusals
    (111) and how many were ``success`` (by their text, so that reading keeps up with a
    flood rather than get the reader closed as slow), and the close code."""

    def __init__(self, ws: WS, success: str) -> None:
        self.refused = self.succeeded = 0
        self.close_code: int | None = None
        self._task = asyncio.create_task(self._read(ws, success))

    async def _read(self, ws: WS, success: str) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            self.refused += msg.data.count('"error":{"code":111,')
            self.succeeded += msg.data.count(success)
        self.close_code = ws.close_code

    async def closed(self, within: float) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._task), scaled(within))
        return self.close_code

    @property
    def done(self) -> bool:
        return self._task.done()


async def flood(
    ws: WS, frame: str, most: int, replies: Replies, per_frame: int = 1, window: int = 8
) -> int:
    """Send ``frame`` as fast as the server answers (at most ``window`` frames unanswered, so
    that this reader is not closed as slow), until the server closed the connection or
    ``most`` frames went out; the number sent."""
    sent = 0
    while sent < most and not replies.done:
        if (sent - window) * per_frame > replies.refused + replies.succeeded:
            await asyncio.sleep(0.001)
            continue
        try:
            await ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError):
            break
        sent += 1
    return sent


async def test_a_sustained_command_flood_is_disconnected_3013(start_server: StartServer) -> None:
    """Default limits (1000/s, burst 2000): refusals interleaved with refills still add up to a
    disconnect, after 111s (it never came while refusals counted only in a row)."""
    server = start_server()
    async with raw_client(server) as ws:
        await connected(ws)
        replies = Replies(ws, '"ping":{}')
        pings = "\n".join(json.dumps({"id": 2, "ping": {}}) for _ in range(200))
        await flood(ws, pings, 2000, replies, per_frame=200)  # at most 400,000 commands
        assert await replies.closed(5) == 3013
    assert replies.refused >= 100 and replies.succeeded >= 2000


async def test_big_publishes_at_full_speed_are_refused_then_disconnected(
    start_server: StartServer,
) -> None:
    """60 KB publishes as fast as they go: within the command limit, not within the byte
    limit (1 MiB/s, burst 4 MiB): 111, then 3013."""
    server = start_server(config=NO_HISTORY)
    async with raw_client(server) as ws:
        await connected(ws)
        replies = Replies(ws, '"publish":{}')
        publish = json.dumps({"id": 2, "publish": {"channel": "nohist:big", "data": BIG}})
        sent = await flood(ws, publish, 400, replies)  # at most 24 MB
        assert await replies.closed(5) == 3013
    assert replies.refused >= 100
    # About the burst went through (4 MiB in 60 KB frames, plus what refilled meanwhile).
    assert 60 <= replies.succeeded < sent


async def test_a_flooding_raw_room_member_is_closed_1008(start_server: StartServer) -> None:
    """A raw member over its byte budget loses what it sends beyond, then is closed with 1008;
    the other members get the burst and stay."""
    server = start_server(config=NO_HISTORY)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/rooms/flood") as sender,
        http.ws_connect(server.ws + "/rooms/flood") as other,
    ):
        await wait_connections(server, 2)
        received = 0

        async def read_other() -> None:
            nonlocal received
            async for msg in other:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                received += 1

        reader = asyncio.create_task(read_other())
        sent = 0
        while sent < 400 and not sender.closed:
            try:
                await sender.send_str(BIG)
            except (ConnectionError, aiohttp.ClientError):
                break
            sent += 1
        msg = await asyncio.wait_for(sender.receive(), scaled(20))
        while msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            msg = await asyncio.wait_for(sender.receive(), scaled(20))
        assert sender.close_code == 1008
        assert msg.extra == "rate limit exceeded"
        await wait_connections(server, 1)
        await other.send_str("still here")  # the room still works for the others
        await asyncio.sleep(0)
        reader.cancel()
    assert 60 <= received < sent


async def test_memory_history_is_bounded_across_channels(start_server: StartServer) -> None:
    """A 1 MiB memory history: 2.5 MB published over five channels; the oldest publications
    are evicted, the positions stay, and recovery from before the loss says recovered=false."""
    config = """
history = "memory"
memory_history_max_bytes = 1048576
[[namespaces]]
name = "kept"
history_size = 1000
history_ttl = 3600
"""
    server = start_server(config=config)
    data = "y" * 50_000
    async with raw_client(server) as ws:
        await connected(ws)
        for channel in ("kept:a", "kept:b", "kept:c", "kept:d", "kept:e"):
            commands = [
                {"id": 10 + n, "publish": {"channel": channel, "data": data}} for n in range(10)
            ]
            for command in commands:
                (reply,) = await call(ws, command)
                assert reply == {"id": command["id"], "publish": {}}
        held = 0
        for n, channel in enumerate(("kept:a", "kept:b", "kept:c", "kept:d", "kept:e")):
            (reply,) = await call(ws, {"id": 100 + n, "history": {"channel": channel, "limit": -1}})
            result = reply["history"]
            assert result["offset"] == 10  # every stream still knows its position
            held += sum(len(pub["data"]) for pub in result.get("publications", []))
            if channel == "kept:a":
                assert result.get("publications", []) == []  # the oldest went first
                epoch = result["epoch"]
        assert 0 < held <= 1048576
        (reply,) = await call(
            ws,
            {
                "id": 200,
                "subscribe": {"channel": "kept:a", "recover": True, "offset": 5, "epoch": epoch},
            },
        )
        assert reply["subscribe"]["recovered"] is False
