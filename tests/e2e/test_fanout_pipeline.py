"""The fan-out pipeline (hubbub.server.websocket): pushes of one loop turn coalesced into one
frame, frames built once per publication, slow consumers cut off without delaying others.

Served in-process so that publications can be made in one loop turn and the serialisers
counted. Clients connect both without compression (frames written as built) and with
permessage-deflate (compressed per connection by aiohttp)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.core.types import Publication
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.hub import Hub
from hubbub.server import websocket
from tests.support import protobuf
from tests.support.inprocess import serving
from tests.support.rawws import OP_TEXT, non_reader
from tests.support.timing import scaled

LIMIT = 65536


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[Hub, str]]:
    hub = Hub(
        port=0,
        history="memory",
        write_buffer_limit=LIMIT,
        client_command_rate=1e6,
        client_command_burst=100000,
        namespaces=[{"name": "live"}, {"name": "kept", "history_size": 100, "history_ttl": 60}],
    )
    async with serving(hub, tmp_path) as base:
        yield hub, "ws" + base[len("http") :] + "/connection/websocket"


async def subscriber(
    http: aiohttp.ClientSession, url: str, channels: list[str], *, compress: int
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url, compress=compress)
    commands = [{"id": 1, "connect": {}}] + [
        {"id": 2 + i, "subscribe": {"channel": c}} for i, c in enumerate(channels)
    ]
    await ws.send_str("\n".join(json.dumps(c) for c in commands))
    replies = 0
    while replies < len(commands):
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        replies += sum(1 for line in msg.data.split("\n") if json.loads(line).get("id"))
    return ws


async def pub_frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[list[dict[str, Any]]]:
    """Frames until ``n`` publications came, each frame as its list of pushes."""
    frames: list[list[dict[str, Any]]] = []
    count = 0
    while count < n:
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        lines = [json.loads(line) for line in msg.data.split("\n")]  # a split line fails here
        pushes = [line["push"] for line in lines if "pub" in line.get("push", {})]
        frames.append(pushes)
        count += len(pushes)
    return frames


@pytest.mark.parametrize("compress", [0, 15], ids=["plain", "deflate"])
async def test_pushes_of_one_turn_share_one_frame(hub: tuple[Hub, str], compress: int) -> None:
    the_hub, url = hub
    async with aiohttp.ClientSession() as http:
        clients = [
            await subscriber(http, url, ["live:a", "live:b"], compress=compress) for _ in range(3)
        ]
        # 40 publications over two channels, all in one loop turn (no history: no await).
        await asyncio.gather(
            *(the_hub.publish("live:a" if n % 2 else "live:b", {"n": n}) for n in range(40))
        )
        await the_hub.publish("live:a", {"n": 40})  # a later turn: a frame of its own
        for ws in clients:
            frames = await pub_frames(ws, 41)
            assert [len(f) for f in frames] == [40, 1]
            got = [(p["channel"], p["pub"]["data"]["n"]) for f in frames for p in f]
            assert got == [("live:a" if n % 2 else "live:b", n) for n in range(40)] + [
                ("live:a", 40)
            ]
            await ws.close()


@pytest.mark.parametrize("compress", [0, 15], ids=["plain", "deflate"])
async def test_a_burst_bigger_than_the_limit_in_one_turn_is_not_slow(
    hub: tuple[Hub, str], compress: int
) -> None:
    """A group commit completes many publications in one loop turn: more than
    write_buffer_limit for one connection in that turn is written out as it comes, and a
    subscriber that reads is not cut off as slow."""
    the_hub, url = hub
    async with aiohttp.ClientSession() as http:
        ws = await subscriber(http, url, ["live:burst"], compress=compress)
        count = 3 * LIMIT // 10_000  # three limits' worth of 10 KB publications, one turn
        await asyncio.gather(
            *(the_hub.publish("live:burst", {"n": n, "pad": "p" * 10_000}) for n in range(count))
        )
        frames = await pub_frames(ws, count)
        assert [p["pub"]["data"]["n"] for f in frames for p in f] == list(range(count))
        await ws.close()


async def test_a_publication_is_serialised_and_framed_once_per_format(
    hub: tuple[Hub, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encode once per format: 25 JSON and 25 Protobuf subscribers of one channel cost one
    JSON push, one Protobuf push and one frame of each."""
    the_hub, url = hub
    encoded: list[tuple[str, str]] = []
    framed: list[str | bytes] = []
    build_frame = websocket.build_frame

    def counting(codec: Any) -> None:
        encode = type(codec).publication

        def publication(self: Any, channel: str, pub: Publication) -> str | bytes:
            encoded.append((self.name, pub.data))
            return encode(self, channel, pub)  # type: ignore[no-any-return]

        monkeypatch.setattr(type(codec), "publication", publication)

    def counting_build_frame(message: str | bytes) -> bytes:
        framed.append(message)
        return build_frame(message)

    async with aiohttp.ClientSession() as http:
        clients = [await subscriber(http, url, ["live:x"], compress=0) for _ in range(25)]
        pb_clients = []
        for _ in range(25):
            ws = await http.ws_connect(url, protocols=(protobuf.SUBPROTOCOL,))
            await protobuf.call(ws, (1, "connect", {}), (2, "subscribe", {"channel": "live:x"}))
            pb_clients.append(ws)
        counting(JSON)
        counting(PROTOBUF)
        monkeypatch.setattr(websocket, "build_frame", counting_build_frame)
        await the_hub.publish("live:x", "once")
        for ws in clients:
            (frame,) = await pub_frames(ws, 1)
            assert frame[0]["pub"]["data"] == "once"
        for ws in pb_clients:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            (reply,) = protobuf.split(msg.data)
            assert reply.push.pub.data == b'"once"'
        assert sorted(encoded) == [("json", '"once"'), ("protobuf", '"once"')]
        assert len([m for m in framed if "once" in str(m)]) == 2
        for ws in clients + pb_clients:
            await ws.close()


async def test_slow_consumer_is_cut_off_while_100_others_get_everything(
    hub: tuple[Hub, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hubbub.server.websocket")
    the_hub, url = hub
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    # A client that subscribes and then never reads, with a tiny receive buffer.
    slow = await non_reader(host, int(port), "/connection/websocket")
    slow.send_frame(
        OP_TEXT,
        b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"kept:s"}}\n'
        b'{"id":3,"subscribe":{"channel":"live:heavy"}}',
    )
    count, chunk = 300, "y" * 2000
    async with aiohttp.ClientSession() as http:
        fast = [await subscriber(http, url, ["kept:s"], compress=0) for _ in range(100)]
        received = [0] * len(fast)

        async def read(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            while received[i] < count:
                for push in (p for f in await pub_frames(ws, 1) for p in f):
                    assert push["pub"]["data"] == f"{received[i]:04d}{chunk}"
                    assert push["pub"]["offset"] == received[i] + 1
                    received[i] += 1

        readers = asyncio.gather(*(read(i, ws) for i, ws in enumerate(fast)))
        for n in range(count):
            await the_hub.publish("kept:s", f"{n:04d}{chunk}")
            if n < 100:  # 10 MB more for the slow one: more than any socket buffer holds
                await the_hub.publish("live:heavy", "z" * 100_000)
            if n % 20 == 19:
                await asyncio.sleep(0.01)  # let the readers keep up, as real ones would
        await asyncio.wait_for(readers, scaled(60))
        assert received == [count] * len(fast)
        # The slow one was closed: its socket ends (after whatever the kernel had buffered).
        try:
            data = await asyncio.wait_for(slow.reader.read(), scaled(20))
        except ConnectionResetError:  # aborted: the peer was not reading
            data = b""
        assert len(data) < 100 * 100_000
        assert "closing slow consumer" in caplog.text
        for ws in fast:
            await ws.close()
    slow.writer.close()
