"""permessage-deflate compressed once per publication (hubbub.server.sending.DeflateFramer):
every handshake grants server_no_context_takeover, and one compressed frame per window and
turn goes to every deflate connection of that window, while plain connections get the plain
frame. Real client libraries inflate what they get (aiohttp, websockets), next to the raw
:class:`tests.support.deflatepeer.DeflatePeer` that shows RSV1 and the wire size.

Served in-process, so that publications can be made in one loop turn and the framer spied on.
"""

from __future__ import annotations

import asyncio
import json
import os
from base64 import b64encode
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from hubbub.hub import Hub
from hubbub.server.sending import DeflateFramer
from tests.support.deflatepeer import BROWSER_OFFER, DeflatePeer
from tests.support.inprocess import serving
from tests.support.timing import scaled

CHANNEL = "live:c"
COMMANDS = '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"live:c"}}'
Served = tuple[Hub, str, int]


@asynccontextmanager
async def hub_served(tmp_path: Path, **settings: Any) -> AsyncIterator[Served]:
    """A hub with the ``live`` namespace and ``settings``, served; it, its host and port."""
    hub = Hub(port=0, history="memory", namespaces=[{"name": "live"}], **settings)
    async with serving(hub, tmp_path) as base:
        host, port = base.split("http://", 1)[1].rsplit(":", 1)
        yield hub, host, int(port)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with hub_served(tmp_path) as it:
        yield it


def _datas(lines: str) -> list[Any]:
    """The publications' data of one text message of the channel protocol."""
    out = []
    for line in lines.split("\n"):
        push = json.loads(line).get("push", {})
        if "pub" in push:
            out.append(push["pub"]["data"])
    return out


class Audience:
    """Subscribers of :data:`CHANNEL` of every kind, each with a function that returns the
    data of the next ``n`` publications it receives."""

    def __init__(self) -> None:
        self.readers: dict[str, Callable[[int], Awaitable[list[Any]]]] = {}
        self.extensions: dict[str, str | None] = {}
        self._closers: list[Callable[[], Any]] = []

    async def _add(
        self,
        name: str,
        extension: str | None,
        recv: Callable[[], Awaitable[str]],
        send: Callable[[str], Any],
        close: Callable[[], Any],
    ) -> None:
        """Subscribe through ``send`` and wait for both replies (then the subscription is in
        place); register the reader."""
        self.extensions[name] = extension
        self._closers.append(close)
        result = send(COMMANDS)
        if asyncio.iscoroutine(result):
            await result
        replies = 0
        while replies < 2:
            replies += sum(1 for line in (await recv()).split("\n") if '"id"' in line)

        async def read(n: int) -> list[Any]:
            got: list[Any] = []
            while len(got) < n:
                got += _datas(await recv())
            return got

        self.readers[name] = read

    async def aiohttp_client(self, http: aiohttp.ClientSession, url: str, compress: int) -> None:
        ws = await http.ws_connect(url, compress=compress)

        async def recv() -> str:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            return str(msg.data)

        extension = ws._response.headers.get("Sec-WebSocket-Extensions")
        await self._add(f"aiohttp compress={compress}", extension, recv, ws.send_str, ws.close)

    async def websockets_client(self, url: str, bits: int | None) -> None:
        ws: ClientConnection = await websockets.connect(
            url,
            extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=bits)],
            compression=None,
        )

        async def recv() -> str:
            message = await asyncio.wait_for(ws.recv(), scaled(10))
            assert isinstance(message, str)
            return message

        assert ws.response is not None
        extension = ws.response.headers.get("Sec-WebSocket-Extensions")
        name = f"websockets server_max_window_bits={bits}"
        await self._add(name, extension, recv, ws.send, ws.close)

    async def raw_client(self, host: str, port: int, offer: str | None) -> DeflatePeer:
        peer = await DeflatePeer.connect(host, port, "/connection/websocket", offer)
        await self._add(f"raw {offer}", peer.extension, peer.recv_text, peer.send_text, peer.close)
        return peer

    async def close(self) -> None:
        for close in self._closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result


async def subscribe_all(host: str, port: int, http: aiohttp.ClientSession) -> Audience:
    """Deflate clients of windows 9 to 15 (three libraries) and plain ones, on one channel."""
    url = f"ws://{host}:{port}/connection/websocket"
    audience = Audience()
    for compress in (0, 9, 10, 12, 15):
        await audience.aiohttp_client(http, url, compress)
    for bits in (None, 9, 11):
        await audience.websockets_client(url, bits)
    for offer in (None, BROWSER_OFFER, "permessage-deflate; server_max_window_bits=10"):
        await audience.raw_client(host, port, offer)
    # The replies came: the subscriptions are in place (a push follows its reply).
    return audience


def far_repeat() -> str:
    """Text that repeats a 4 KiB block 8 KiB later: a window of 12 bits or less cannot reach
    back to it (the compressor must then keep it literal)."""
    block = b64encode(os.urandom(3072)).decode()
    return block + b64encode(os.urandom(6144)).decode() + block


async def test_every_client_of_every_window_decodes_every_publication(served: Served) -> None:
    """Plain and deflate subscribers of windows 9-15 each get every publication right: small
    (under compression_min_size), compressible, incompressible, several in one turn."""
    hub, host, port = served
    async with aiohttp.ClientSession() as http:
        audience = await subscribe_all(host, port, http)
        try:
            for name, extension in audience.extensions.items():
                if "compress=0" in name or name == "raw None":
                    assert extension is None, name
                else:  # granted to everyone who offered, asked for or not
                    assert extension is not None, name
                    assert extension.endswith("; server_no_context_takeover"), name
            singles: list[Any] = ["s", {"text": "compressible " * 40}, far_repeat(), 7]
            for data in singles:  # one turn each: a frame per message
                await hub.publish(CHANNEL, data)
            burst = [{"n": n, "pad": "p" * n} for n in range(30)]
            await asyncio.gather(*(hub.publish(CHANNEL, data) for data in burst))  # one turn
            for name, read in audience.readers.items():
                assert await read(len(singles) + len(burst)) == singles + burst, name
        finally:
            await audience.close()


async def test_a_frame_is_compressed_once_per_window_per_turn(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One compression per window (and level and minimum size) for each publication, and one
    per window for the coalesced frame of a turn, whatever the number of subscribers."""
    hub, host, port = served
    calls: Counter[tuple[int, str | bytes]] = Counter()
    frame = DeflateFramer.frame

    def spy(self: DeflateFramer, message: str | bytes) -> bytes:
        calls[self.window_bits, message] += 1
        return frame(self, message)

    async with aiohttp.ClientSession() as http:
        audience = await subscribe_all(host, port, http)
        try:
            monkeypatch.setattr(DeflateFramer, "frame", spy)
            await hub.publish(CHANNEL, {"text": "compressible " * 40})
            await asyncio.gather(*(hub.publish(CHANNEL, {"n": n}) for n in range(5)))
            for read in audience.readers.values():
                assert len(await read(6)) == 6
        finally:
            await audience.close()
    # Windows granted: 9, 10, 12 (aiohttp 12 and 15, websockets None, raw browser) and 11.
    assert sorted({bits for bits, _ in calls}) == [9, 10, 11, 12]
    assert set(calls.values()) == {1}, calls
    assert len(calls) == 4 * 2  # per window: the single publication and the turn's frame
    joined = [message for _, message in calls if isinstance(message, str) and "\n" in message]
    assert len(joined) == 4 and all(m.count("\n") == 4 for m in joined)


async def test_messages_under_min_size_go_out_plain(tmp_path: Path) -> None:
    """Under ``compression_min_size`` bytes a deflate client gets a plain frame (no RSV1)."""
    async with hub_served(tmp_path, compression_min_size=200) as (hub, host, port):
        audience = Audience()
        peer = await audience.raw_client(host, port, BROWSER_OFFER)
        read = audience.readers[f"raw {BROWSER_OFFER}"]
        try:
            await hub.publish(CHANNEL, "x" * 100)  # a push of ~150 bytes
            assert await read(1) == ["x" * 100]
            assert not peer.compressed
            await hub.publish(CHANNEL, "x" * 200)
            assert await read(1) == ["x" * 200]
            assert peer.compressed
        finally:
            await audience.close()


@pytest.mark.parametrize("level", [0, 9])
async def test_the_level_is_used(tmp_path: Path, level: int) -> None:
    """``compression_level`` 0 stores (the frame is longer than the message), 9 compresses."""
    async with hub_served(tmp_path, compression_level=level) as (hub, host, port):
        audience = Audience()
        peer = await audience.raw_client(host, port, BROWSER_OFFER)
        try:
            data = "compressible " * 100
            await hub.publish(CHANNEL, data)
            assert await audience.readers[f"raw {BROWSER_OFFER}"](1) == [data]
            assert peer.compressed
            plain = len(json.dumps({"push": {"channel": CHANNEL, "pub": {"data": data}}}))
            assert (peer.wire_size > plain) if level == 0 else (peer.wire_size < plain / 5)
        finally:
            await audience.close()


async def test_the_reply_path_uses_the_shared_framer(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Echo replies (``send``) of deflate clients are compressed context-free by the framer
    and inflate right, message after message, in aiohttp and websockets."""
    _, host, port = served
    windows: list[int] = []
    frame = DeflateFramer.frame

    def spy(self: DeflateFramer, message: str | bytes) -> bytes:
        windows.append(self.window_bits)
        return frame(self, message)

    monkeypatch.setattr(DeflateFramer, "frame", spy)
    messages = ["hello " * 30, far_repeat(), "hello " * 30]
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://{host}:{port}/", compress=10)
        try:
            assert "server_no_context_takeover" in ws._response.headers["Sec-WebSocket-Extensions"]
            for message in messages:
                await ws.send_str(message)
                assert (await asyncio.wait_for(ws.receive(), scaled(10))).data == message
        finally:
            await ws.close()
    async with websockets.connect(f"ws://{host}:{port}/") as client:  # 15 bits offered
        for message in messages:
            await client.send(message)
            assert await asyncio.wait_for(client.recv(), scaled(10)) == message
    assert windows == [10] * 3 + [12] * 3
