"""A connection is freed when it ends, by reference counting alone, however it ends.

A hubbub server runs the cyclic GC rarely (``runner.GC_THRESHOLDS``), so whatever a closed
connection leaves in a reference cycle waits for a full collection, holding zlib memory the GC
does not count (issue 12: RSS 171 MB -> 1.25 GB over 20,000 deflate connect/close cycles).

Each case serves in-process with the GC disabled, opens one connection on one endpoint, with
or without permessage-deflate, exchanges a message, ends it one way (the client's close
frame, the server's close, a protocol violation the server closes for, a TCP drop without a
close frame), then waits until the server's objects of that connection are gone:
``WebSocketConnection``, aiohttp's ``WebSocketResponse``, ``Request`` and ``RequestHandler``
(the protocol) and hubbub's ``Client`` (channel protocol), with no ``gc.collect()`` after the
connection was made. (A deflate connection has no compressor of its own: it shares its loop's
``DeflateFramer``.)
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web, web_protocol

from hubbub.config import Settings
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.client import Client
from hubbub.hub import Hub
from hubbub.server import app
from hubbub.server.policy import RAW_POLICY, Policy
from hubbub.server.websocket import WebSocketConnection
from tests.support import protobuf
from tests.support.deflatepeer import BROWSER_OFFER, DeflatePeer
from tests.support.inprocess import serving
from tests.support.timing import scaled

MAX_MESSAGE = 4096
ECHO, ROOM, CHANNEL = "/", "/rooms/x", "/connection/websocket"
#: The channel endpoint over Protobuf (the path is CHANNEL; the subprotocol makes the format).
CHANNEL_PROTOBUF = CHANNEL + "#protobuf"
ENDINGS = ["client-close", "server-close", "violation", "tcp-drop"]


@dataclass
class Tracked:
    """Weak references to the server's objects of the connections made, by kind."""

    refs: list[tuple[str, weakref.ref[Any]]] = field(default_factory=list)

    def add(self, kind: str, obj: object) -> None:
        self.refs.append((kind, weakref.ref(obj)))

    def alive(self) -> list[str]:
        return [kind for kind, ref in self.refs if ref() is not None]

    def connection(self) -> WebSocketConnection:
        (conn,) = [r() for kind, r in self.refs if kind == "WebSocketConnection"]
        assert isinstance(conn, WebSocketConnection)
        return conn


@dataclass
class Server:
    hub: Hub
    host: str
    port: int
    tracked: Tracked


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    tracked = Tracked()
    real_accept = app.accept

    async def tracking_accept(
        request: web.Request,
        settings: Settings,
        policy: Policy = RAW_POLICY,
        protocols: tuple[str, ...] = (),
    ) -> WebSocketConnection:
        conn = await real_accept(request, settings, policy, protocols)
        tracked.add("WebSocketConnection", conn)
        tracked.add("WebSocketResponse", conn.response)
        tracked.add("Request", request)
        return conn

    class TrackedClient(Client):
        __slots__ = ("__weakref__",)

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            tracked.add("Client", self)

    monkeypatch.setattr(app, "accept", tracking_accept)
    monkeypatch.setattr(centrifuge, "Client", TrackedClient)

    hub = Hub(port=0, history="memory", max_message_size=MAX_MESSAGE)
    async with serving(hub, tmp_path) as base:
        host, port = base.split("http://", 1)[1].rsplit(":", 1)
        yield Server(hub, host, int(port), tracked)


async def exchange(srv: Server, peer: DeflatePeer, path: str) -> None:
    """One message each way, so that every part of the connection was used."""
    if path == ECHO:
        peer.send_text("hello")
        assert await peer.recv_text() == "hello"
    elif path == ROOM:
        # The member is added after the handshake: publish until one arrives (later ones
        # are read past at the end).
        got = asyncio.ensure_future(peer.recv_text())
        async with asyncio.timeout(scaled(10)):
            while not got.done():
                await srv.hub.publish("rooms:x", {"n": 1})
                await asyncio.wait({got}, timeout=0.05)
        assert json.loads(got.result()) == {"n": 1}
    elif path == CHANNEL_PROTOBUF:
        peer.send_binary(
            protobuf.command(1, "connect", {}) + protobuf.command(2, "subscribe", {"channel": "c"})
        )
        ids: set[int] = set()
        while len(ids) < 2:
            frame = await peer.recv()
            ids |= {reply.id for reply in protobuf.split(frame.payload) if reply.id}
    else:
        peer.send_text('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"c"}}')
        replies: set[int] = set()
        while len(replies) < 2:
            for line in (await peer.recv_text()).split("\n"):
                replies.add(json.loads(line)["id"])


async def end(srv: Server, peer: DeflatePeer, path: str, ending: str) -> None:
    if ending == "client-close":
        peer.ws.send_close(1000)
        assert await peer.until_closed(answer=False) == 1000
    elif ending == "server-close":
        srv.tracked.connection().close(4000, "closed by the test")
        assert await peer.until_closed() == 4000
    elif ending == "violation":
        if path == CHANNEL_PROTOBUF:
            peer.send_text("a text frame on the protobuf protocol")
            assert await peer.until_closed() == 3501
        elif path == CHANNEL:
            peer.send_text("not json")
            assert await peer.until_closed() == 3501
        else:
            peer.send_text("x" * (MAX_MESSAGE + 1))
            assert await peer.until_closed() == 1009
    else:
        peer.drop()


def _handlers_alive() -> int:
    """aiohttp's protocol objects alive (they cannot be weakly referenced)."""
    return sum(1 for o in gc.get_objects() if isinstance(o, web_protocol.RequestHandler))


async def freed(tracked: Tracked) -> list[str]:
    """Wait (bounded) for every tracked object and every RequestHandler to be gone; what is
    still alive at the deadline."""
    deadline = asyncio.get_running_loop().time() + scaled(10)
    while asyncio.get_running_loop().time() < deadline:
        if not tracked.alive() and _handlers_alive() == 0:
            return []
        await asyncio.sleep(0.02)
    return tracked.alive() + ["RequestHandler"] * _handlers_alive()


@pytest.fixture
def gc_disabled() -> Iterator[None]:
    gc.collect()  # garbage of earlier tests, before the GC stops
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("gc_disabled")
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize(
    "path",
    [ECHO, ROOM, CHANNEL, CHANNEL_PROTOBUF],
    ids=["echo", "room", "channel", "channel-protobuf"],
)
async def test_an_ended_connection_is_freed_without_the_cyclic_gc(
    server: Server, path: str, deflate: bool, ending: str
) -> None:
    peer = await DeflatePeer.connect(
        server.host,
        server.port,
        CHANNEL if path == CHANNEL_PROTOBUF else path,
        BROWSER_OFFER if deflate else None,
        protobuf.SUBPROTOCOL if path == CHANNEL_PROTOBUF else None,
    )
    assert peer.deflate == deflate
    await exchange(server, peer, path)
    kinds = {kind for kind, _ in server.tracked.refs}
    expected = {"WebSocketConnection", "WebSocketResponse", "Request"}
    expected |= {"Client"} if path in (CHANNEL, CHANNEL_PROTOBUF) else set()
    assert kinds == expected
    await end(server, peer, path, ending)
    peer.close()
    del peer
    assert await freed(server.tracked) == []
