"""centrifuge-python (the PyPI SDK, unchanged) against hubbub and the example chat hub.

Every scenario runs in both wire formats: JSON, and Protobuf (``use_protobuf=True``: the
subprotocol ``centrifuge-protobuf``, where the SDK takes and gives data as ``bytes``; the tests
encode JSON values to bytes and decode what arrives, so that the same assertions hold).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    JoinContext,
    LeaveContext,
    PublicationContext,
    ReplyError,
    StreamPosition,
    SubscribedContext,
    Subscription,
    SubscriptionEventHandler,
)

from tests.interop.conftest import Restart
from tests.support.proxy import FlakyProxy
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]


@dataclass(frozen=True)
class Wire:
    """A wire format as the SDK exposes it: JSON values as they are (JSON), or their JSON
    text as bytes (Protobuf)."""

    name: str

    @property
    def protobuf(self) -> bool:
        return self.name == "protobuf"

    @property
    def subprotocol(self) -> str | None:
        """What the WebSocket handshake must have negotiated."""
        return "centrifuge-protobuf" if self.protobuf else None

    def enc(self, value: Any) -> Any:
        """A JSON value as this format's SDK takes it."""
        return json.dumps(value).encode() if self.protobuf else value

    def dec(self, data: Any) -> Any:
        """What this format's SDK gives, as a JSON value."""
        if self.protobuf:
            assert isinstance(data, bytes), data
            return json.loads(data)
        return data


JSON, PROTOBUF = Wire("json"), Wire("protobuf")


@pytest.fixture(params=[JSON, PROTOBUF], ids=lambda w: w.name)
def wire(request: pytest.FixtureRequest) -> Wire:
    return request.param  # type: ignore[no-any-return]


class Recorder(SubscriptionEventHandler):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.pubs: asyncio.Queue[Any] = asyncio.Queue()
        self.joins: list[str] = []
        self.leaves: list[str] = []
        self.subscribed: list[SubscribedContext] = []

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.pubs.put(ctx.pub.data)

    async def on_join(self, ctx: JoinContext) -> None:
        self.joins.append(ctx.info.user)

    async def on_leave(self, ctx: LeaveContext) -> None:
        self.leaves.append(ctx.info.user)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def take_raw(self, n: int) -> list[Any]:
        """The next ``n`` publications' data as the SDK gave it."""
        return [await asyncio.wait_for(self.pubs.get(), scaled(10)) for _ in range(n)]

    async def take(self, n: int) -> list[Any]:
        """The next ``n`` publications' data as JSON values."""
        return [self.wire.dec(data) for data in await self.take_raw(n)]


async def ready(sub: Subscription) -> Subscription:
    """Subscribe and wait for the server's reply (subscribe() alone does not wait)."""
    await sub.subscribe()
    await sub.ready(scaled(10))
    return sub


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/connection/websocket"


def negotiated(client: Client) -> str | None:
    """The subprotocol of the client's current WebSocket (SDK state: its websockets
    connection), None for none."""
    conn = client._conn
    assert conn is not None, "the client has no connection"
    return conn.subprotocol  # type: ignore[no-any-return]


@asynccontextmanager
async def connected(port: int, name: str, wire: Wire) -> AsyncIterator[Client]:
    """A connected client in ``wire``'s format; that the server agreed on the format is
    checked (a Protobuf client whose handshake fell back to JSON fails here)."""
    client = Client(
        url(port),
        data=wire.enc({"name": name}),
        events=ClientEventHandler(),
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
        use_protobuf=wire.protobuf,
    )
    await client.connect()
    await client.ready(scaled(10))
    try:
        assert negotiated(client) == wire.subprotocol
        yield client
    finally:
        await client.disconnect()


async def test_publish_reaches_subscribers_of_two_channels(
    chat_server: ServerProcess, wire: Wire
) -> None:
    """Two clients, two channels: each publication reaches the other client's subscription."""
    port = chat_server.port
    async with connected(port, "ada", wire) as ada, connected(port, "bob", wire) as bob:
        ada_a, ada_b = Recorder(wire), Recorder(wire)
        for channel, rec in (("chat:a", ada_a), ("chat:b", ada_b)):
            await ready(ada.new_subscription(channel, rec))
        bob_a = bob.new_subscription("chat:a")
        bob_b = bob.new_subscription("chat:b")
        await ready(bob_a)
        await ready(bob_b)
        await bob_a.publish(wire.enc({"text": "to a"}))
        await bob_b.publish(wire.enc({"text": "to b"}))
        assert await ada_a.take(1) == [{"text": "to a", "from": "bob"}]
        assert await ada_b.take(1) == [{"text": "to b", "from": "bob"}]


async def test_history_limit_since_reverse(chat_server: ServerProcess, wire: Wire) -> None:
    """history honours limit, since and reverse."""
    async with connected(chat_server.port, "ada", wire) as ada:
        sub = ada.new_subscription("chat:hist")
        await ready(sub)
        for i in range(5):
            await sub.publish(wire.enc({"text": f"m{i}"}))
        everything = await sub.history(limit=10)
        texts = [wire.dec(p.data)["text"] for p in everything.publications]
        assert texts == [f"m{i}" for i in range(5)]
        assert [p.offset for p in everything.publications] == [1, 2, 3, 4, 5]
        assert everything.offset == 5
        last_two = await sub.history(limit=2, reverse=True)
        assert [p.offset for p in last_two.publications] == [5, 4]
        since = await sub.history(limit=10, since=StreamPosition(offset=3, epoch=everything.epoch))
        assert [p.offset for p in since.publications] == [4, 5]
        with pytest.raises(ReplyError) as info:
            await sub.history(limit=10, since=StreamPosition(offset=3, epoch="other"))
        assert info.value.code == 112


async def test_presence_stats_join_and_leave(chat_server: ServerProcess, wire: Wire) -> None:
    """Presence lists both clients; joins and leaves are pushed."""
    async with connected(chat_server.port, "ada", wire) as ada:
        rec = Recorder(wire)
        sub = ada.new_subscription("chat:room", rec, join_leave=True)
        await ready(sub)
        async with connected(chat_server.port, "bob", wire) as bob:
            bob_sub = bob.new_subscription("chat:room")
            await ready(bob_sub)
            presence = await sub.presence()
            assert sorted(info.user for info in presence.clients.values()) == ["ada", "bob"]
            stats = await sub.presence_stats()
            assert (stats.num_clients, stats.num_users) == (2, 2)
        for _ in range(int(scaled(100))):
            if "bob" in rec.leaves:
                break
            await asyncio.sleep(0.02)
        assert "bob" in rec.joins
        assert "bob" in rec.leaves
        stats = await sub.presence_stats()
        assert (stats.num_clients, stats.num_users) == (1, 1)


async def test_rpc_into_python_hook(chat_server: ServerProcess, wire: Wire) -> None:
    async with connected(chat_server.port, "ada", wire) as ada:
        result = await ada.rpc("whoami", wire.enc({}))
        assert wire.dec(result.data)["user"] == "ada"
        with pytest.raises(ReplyError) as info:
            await ada.rpc("no_such_method", wire.enc({}))
        assert info.value.code == 104


async def test_rejected_publish_is_the_sdks_error(chat_server: ServerProcess, wire: Wire) -> None:
    """The publish hook's ClientError reaches the SDK as ReplyError with its code."""
    async with connected(chat_server.port, "ada", wire) as ada:
        sub = ada.new_subscription("chat:a")
        await ready(sub)
        with pytest.raises(ReplyError) as info:
            await sub.publish(wire.enc({"text": "buy spam now"}))
        assert (info.value.code, info.value.message) == (4003, "message refused")


async def test_recovery_after_connection_loss(chat_server: ServerProcess, wire: Wire) -> None:
    """The network drops, messages are published meanwhile, the SDK reconnects on its own and
    gets every missed message exactly once and in order."""
    proxy = await FlakyProxy(chat_server.port).start()
    rec = Recorder(wire)
    try:
        async with (
            connected(proxy.port, "ada", wire) as ada,
            connected(chat_server.port, "bob", wire) as bob,
        ):
            await ready(ada.new_subscription("chat:rec", rec))
            publisher = bob.new_subscription("chat:rec")
            await ready(publisher)
            for i in range(3):
                await publisher.publish(wire.enc({"text": f"m{i}"}))
            assert len(await rec.take(3)) == 3
            proxy.cut()
            for i in range(3, 8):
                await publisher.publish(wire.enc({"text": f"m{i}"}))
            await asyncio.sleep(0.3)
            proxy.restore()
            missed = await rec.take(5)
            await publisher.publish(wire.enc({"text": "m8"}))
            live = await rec.take(1)
            assert negotiated(ada) == wire.subprotocol  # the new connection's too
        texts = [m["text"] for m in missed + live]
        assert texts == [f"m{i}" for i in range(3, 9)]
        assert rec.pubs.empty()
        assert proxy.accepted >= 2
        last = rec.subscribed[-1]
        assert (last.was_recovering, last.recovered) == (True, True)
    finally:
        await proxy.close()


async def test_recovery_after_server_restart(
    chat_server: ServerProcess, restart_chat: Restart, wire: Wire
) -> None:
    """The server stops (SIGTERM) and starts again on the same port, data directory and engine;
    messages are published before, while the subscriber is still reconnecting, and after.
    The subscriber gets every message exactly once, in order, and its subscription is
    recovered in the same stream (same epoch).

    The subscriber goes through a proxy that is made to refuse connections once the server is
    down, so that the messages of the middle batch are certainly published before it is back.
    """
    proxy = await FlakyProxy(chat_server.port).start()
    rec = Recorder(wire)
    try:
        async with (
            connected(proxy.port, "ada", wire) as ada,
            connected(chat_server.port, "bob", wire) as bob,
        ):
            await ready(ada.new_subscription("chat:restart", rec))
            bob_rec = Recorder(wire)
            publisher = bob.new_subscription("chat:restart", bob_rec)
            await ready(publisher)
            for i in range(3):
                await publisher.publish(wire.enc({"text": f"m{i}"}))
            before = await rec.take(3)
            # Off the event loop: the SDKs see the server's shutdown meanwhile.
            await asyncio.to_thread(chat_server.terminate)
            proxy.cut()
            restarted = await asyncio.to_thread(restart_chat, chat_server)
            assert restarted.port == chat_server.port
            for _ in range(int(scaled(500))):  # bob reconnects and resubscribes by itself
                if len(bob_rec.subscribed) >= 2:
                    break
                await asyncio.sleep(0.02)
            assert len(bob_rec.subscribed) == 2
            await publisher.ready(scaled(10))
            for i in range(3, 8):
                await publisher.publish(wire.enc({"text": f"m{i}"}))
            assert rec.pubs.empty()  # ada is still away
            proxy.restore()
            missed = await rec.take(5)
            await publisher.publish(wire.enc({"text": "m8"}))
            live = await rec.take(1)
            assert negotiated(ada) == wire.subprotocol
        texts = [m["text"] for m in before + missed + live]
        assert texts == [f"m{i}" for i in range(9)]
        assert rec.pubs.empty()
        first, last = rec.subscribed[0], rec.subscribed[-1]
        assert (last.was_recovering, last.recovered) == (True, True)
        assert first.stream_position is not None and last.stream_position is not None
        assert last.stream_position.epoch == first.stream_position.epoch
        assert last.stream_position.offset == 8  # m0..m7 when it was back
    finally:
        await proxy.close()


async def test_mixed_formats_on_one_channel(verbatim_server: ServerProcess) -> None:
    """A JSON and a Protobuf client on the same channels: each gets the other's publications
    as the same JSON value; the bytes a Protobuf client publishes reach Protobuf subscribers
    byte for byte (history included); data that is not JSON is refused with 107."""
    port = verbatim_server.port
    async with connected(port, "jay", JSON) as jay, connected(port, "pat", PROTOBUF) as pat:
        recs = {}
        subs = {}
        for who, client, wire in (("jay", jay, JSON), ("pat", pat, PROTOBUF)):
            for channel in ("chat:mix", "raw:mix"):
                recs[who, channel] = Recorder(wire)
                subs[who, channel] = await ready(
                    client.new_subscription(channel, recs[who, channel])
                )

        # Through the chat hook (rewritten by the server): the same value for both.
        await subs["jay", "chat:mix"].publish({"text": "from json"})
        await subs["pat", "chat:mix"].publish(b'{"text": "from protobuf"}')
        expected = [{"text": "from json", "from": "jay"}, {"text": "from protobuf", "from": "pat"}]
        assert await recs["jay", "chat:mix"].take(2) == expected
        assert await recs["pat", "chat:mix"].take(2) == expected

        # Verbatim: the Protobuf publisher's bytes as they were, the JSON value for JSON.
        await subs["pat", "raw:mix"].publish(b'{"a": 1}')
        await subs["jay", "raw:mix"].publish({"b": [1, "two"]})
        assert await recs["pat", "raw:mix"].take_raw(2) == [b'{"a": 1}', b'{"b":[1,"two"]}']
        assert await recs["jay", "raw:mix"].take_raw(2) == [{"a": 1}, {"b": [1, "two"]}]
        history = await subs["pat", "raw:mix"].history(limit=10)
        assert [p.data for p in history.publications] == [b'{"a": 1}', b'{"b":[1,"two"]}']
        history = await subs["jay", "raw:mix"].history(limit=10)
        assert [p.data for p in history.publications] == [{"a": 1}, {"b": [1, "two"]}]

        # Not JSON: JSON subscribers could not read it.
        for channel in ("chat:mix", "raw:mix"):
            with pytest.raises(ReplyError) as info:
                await subs["pat", channel].publish(b"\xffnot json")
            assert info.value.code == 107
        with pytest.raises(ReplyError) as info:
            await subs["pat", "raw:mix"].publish(b"not json either")
        assert info.value.code == 107
        await subs["pat", "raw:mix"].publish(b"[]")  # still connected and publishing
        assert await recs["jay", "raw:mix"].take_raw(1) == [[]]
        assert await recs["pat", "raw:mix"].take_raw(1) == [b"[]"]
        assert all(rec.pubs.empty() for rec in recs.values())
        assert (negotiated(jay), negotiated(pat)) == (None, "centrifuge-protobuf")
