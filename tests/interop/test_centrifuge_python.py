"""centrifuge-python (the PyPI SDK, unchanged) against hubbub and the example chat hub."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
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

from tests.support.proxy import FlakyProxy
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.interop,
    # centrifuge-python can leave the socket of an abandoned reconnect attempt to the garbage
    # collector (allocated in centrifuge/client.py, websockets.connect). The SDK runs in this
    # process only here, so ResourceWarning is ignored here only; everywhere else it fails.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(autouse=True)
def collect_the_sdks_garbage() -> Iterator[None]:
    """After each test (its event loop closed): collect what the SDK left, warnings ignored,
    so that its sockets do not surface as a ResourceWarning in whichever later test the
    garbage collector happens to run."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


class Recorder(SubscriptionEventHandler):
    def __init__(self) -> None:
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

    async def take(self, n: int) -> list[Any]:
        return [await asyncio.wait_for(self.pubs.get(), scaled(10)) for _ in range(n)]


async def ready(sub: Subscription) -> Subscription:
    """Subscribe and wait for the server's reply (subscribe() alone does not wait)."""
    await sub.subscribe()
    await sub.ready(scaled(10))
    return sub


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/connection/websocket"


@asynccontextmanager
async def connected(port: int, name: str) -> AsyncIterator[Client]:
    client = Client(
        url(port),
        data={"name": name},
        events=ClientEventHandler(),
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
    )
    await client.connect()
    await client.ready(scaled(10))
    try:
        yield client
    finally:
        await client.disconnect()


async def test_publish_reaches_subscribers_of_two_channels(chat_server: ServerProcess) -> None:
    """Two clients, two channels: each publication reaches the other client's subscription."""
    async with connected(chat_server.port, "ada") as ada, connected(chat_server.port, "bob") as bob:
        ada_a, ada_b = Recorder(), Recorder()
        for channel, rec in (("chat:a", ada_a), ("chat:b", ada_b)):
            await ready(ada.new_subscription(channel, rec))
        bob_a = bob.new_subscription("chat:a")
        bob_b = bob.new_subscription("chat:b")
        await ready(bob_a)
        await ready(bob_b)
        await bob_a.publish({"text": "to a"})
        await bob_b.publish({"text": "to b"})
        assert await ada_a.take(1) == [{"text": "to a", "from": "bob"}]
        assert await ada_b.take(1) == [{"text": "to b", "from": "bob"}]


async def test_history_limit_since_reverse(chat_server: ServerProcess) -> None:
    """history honours limit, since and reverse."""
    async with connected(chat_server.port, "ada") as ada:
        sub = ada.new_subscription("chat:hist")
        await ready(sub)
        for i in range(5):
            await sub.publish({"text": f"m{i}"})
        everything = await sub.history(limit=10)
        assert [p.data["text"] for p in everything.publications] == [f"m{i}" for i in range(5)]
        assert [p.offset for p in everything.publications] == [1, 2, 3, 4, 5]
        assert everything.offset == 5
        last_two = await sub.history(limit=2, reverse=True)
        assert [p.offset for p in last_two.publications] == [5, 4]
        since = await sub.history(limit=10, since=StreamPosition(offset=3, epoch=everything.epoch))
        assert [p.offset for p in since.publications] == [4, 5]
        with pytest.raises(ReplyError) as info:
            await sub.history(limit=10, since=StreamPosition(offset=3, epoch="other"))
        assert info.value.code == 112


async def test_presence_stats_join_and_leave(chat_server: ServerProcess) -> None:
    """Presence lists both clients; joins and leaves are pushed."""
    async with connected(chat_server.port, "ada") as ada:
        rec = Recorder()
        sub = ada.new_subscription("chat:room", rec, join_leave=True)
        await ready(sub)
        async with connected(chat_server.port, "bob") as bob:
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


async def test_rpc_into_python_hook(chat_server: ServerProcess) -> None:
    async with connected(chat_server.port, "ada") as ada:
        result = await ada.rpc("whoami", {})
        assert result.data["user"] == "ada"
        with pytest.raises(ReplyError) as info:
            await ada.rpc("no_such_method", {})
        assert info.value.code == 104


async def test_rejected_publish_is_the_sdks_error(chat_server: ServerProcess) -> None:
    """The publish hook's ClientError reaches the SDK as ReplyError with its code."""
    async with connected(chat_server.port, "ada") as ada:
        sub = ada.new_subscription("chat:a")
        await ready(sub)
        with pytest.raises(ReplyError) as info:
            await sub.publish({"text": "buy spam now"})
        assert (info.value.code, info.value.message) == (4003, "message refused")


async def test_recovery_after_connection_loss(chat_server: ServerProcess) -> None:
    """The network drops, messages are published meanwhile, the SDK reconnects on its own and
    gets every missed message exactly once and in order."""
    proxy = await FlakyProxy(chat_server.port).start()
    rec = Recorder()
    try:
        async with connected(proxy.port, "ada") as ada, connected(chat_server.port, "bob") as bob:
            await ready(ada.new_subscription("chat:rec", rec))
            publisher = bob.new_subscription("chat:rec")
            await ready(publisher)
            for i in range(3):
                await publisher.publish({"text": f"m{i}"})
            assert len(await rec.take(3)) == 3
            proxy.cut()
            for i in range(3, 8):
                await publisher.publish({"text": f"m{i}"})
            await asyncio.sleep(0.3)
            proxy.restore()
            missed = await rec.take(5)
            await publisher.publish({"text": "m8"})
            live = await rec.take(1)
        texts = [m["text"] for m in missed + live]
        assert texts == [f"m{i}" for i in range(3, 9)]
        assert rec.pubs.empty()
        assert proxy.accepted >= 2
        last = rec.subscribed[-1]
        assert (last.was_recovering, last.recovered) == (True, True)
    finally:
        await proxy.close()
