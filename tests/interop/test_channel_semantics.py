"""Centrifugo's per-namespace subscription semantics with centrifuge-python (both formats):
tags filters (the SDK's ``tags_filter``) and cache recovery (``force_recovery_mode = "cache"``,
``auto_cache_recover``). Publications go through the server API; what each subscriber's
handlers get is checked publication by publication (data, tags, offsets).

centrifuge-python has no ``since`` option: a subscription asks for recovery from a position
of its own only through ``get_state`` (called before the first subscribe), so "recover from
an empty position" is ``get_state`` returning ``StreamPosition(0, "")``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from centrifuge import (
    Client,
    PublicationContext,
    StreamPosition,
    SubscribedContext,
    SubscribingContext,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    SubscriptionState,
    SubscriptionUnsubscribedError,
    UnsubscribedContext,
)
from centrifuge.filter import Filter, FilterNode

from tests.conftest import StartServer
from tests.interop.test_centrifuge_python import JSON, PROTOBUF, Wire, negotiated, ready
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]


@pytest.fixture(params=[JSON, PROTOBUF], ids=lambda w: w.name)
def wire(request: pytest.FixtureRequest) -> Wire:
    return request.param  # type: ignore[no-any-return]


KEY = "sdk-semantics-api-key-0123456789"
CONFIG = """
[[namespaces]]
name = "tagged"
history_size = 100
history_ttl = 300
allow_tags_filter = true

[[namespaces]]
name = "untagged"
history_size = 100
history_ttl = 300

[[namespaces]]
name = "prices"
history_size = 100
history_ttl = 300
force_recovery = true
force_recovery_mode = "cache"

[[namespaces]]
name = "scores"
history_size = 100
history_ttl = 300
force_recovery = true
force_recovery_mode = "cache"
auto_cache_recover = true
"""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, config=CONFIG)


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def publish(server: ServerProcess, channel: str, data: Any, **extra: Any) -> int:
    """Publish through the server API; the publication's offset."""
    result = await api(server, "publish", {"channel": channel, "data": data, **extra})
    return int(result["offset"])


class Events(SubscriptionEventHandler):
    """What one subscription's handlers got: publications (offset, data as JSON, tags) in a
    queue, and every subscribing, subscribed, unsubscribed and error event."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.pubs: asyncio.Queue[tuple[int, Any, dict[str, str]]] = asyncio.Queue()
        self.subscribing: list[int] = []
        self.subscribed: list[SubscribedContext] = []
        self.unsubscribed: list[tuple[int, str]] = []
        self.errors: list[SubscriptionErrorContext] = []

    async def on_publication(self, ctx: PublicationContext) -> None:
        pub = ctx.pub
        await self.pubs.put((pub.offset, self.wire.dec(pub.data), dict(pub.tags or {})))

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append((ctx.code, ctx.reason))

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.errors.append(ctx)

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.subscribing.append(ctx.code)

    async def take(self, n: int) -> list[tuple[int, Any, dict[str, str]]]:
        return [await asyncio.wait_for(self.pubs.get(), scaled(10)) for _ in range(n)]

    async def data(self, n: int) -> list[Any]:
        return [data for _, data, _ in await self.take(n)]


@asynccontextmanager
async def client(port: int, wire: Wire) -> AsyncIterator[Client]:
    """An anonymous client in ``wire``'s format (checked: a Protobuf client that fell back to
    JSON fails here)."""
    c = Client(
        f"ws://127.0.0.1:{port}/connection/websocket",
        use_protobuf=wire.protobuf,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
    )
    await c.connect()
    await c.ready(scaled(10))
    try:
        assert negotiated(c) == wire.subprotocol
        yield c
    finally:
        await c.disconnect()


# Four subscribers of one channel: three filters, none of which lets everything through, and
# a subscriber without a filter. Each predicate is the filter's meaning, written out by hand.
FILTERS: dict[str, tuple[FilterNode | None, Any]] = {
    "eng_big": (
        Filter.all(Filter.eq("team", "eng"), Filter.gte("size", "10")),
        lambda t: t.get("team") == "eng" and float(t.get("size", "nan")) >= 10,
    ),
    "not_ops": (
        Filter.negate(Filter.eq("team", "ops")),
        lambda t: t.get("team") != "ops",
    ),
    "qa_or_urgent": (
        Filter.any(Filter.is_in("team", ["qa", "eng"]), Filter.exists("urgent")),
        lambda t: t.get("team") in ("qa", "eng") or "urgent" in t,
    ),
    "everything": (None, lambda t: True),
}
#: Tags of the publications, in order (the last one passes every filter).
TAGS: list[dict[str, str]] = [
    {"team": "eng", "size": "12"},
    {"team": "ops", "size": "50"},
    {"team": "eng", "size": "9"},
    {"team": "ops", "urgent": "1"},
    {"team": "qa", "size": "100"},
    {},
    {"team": "eng", "size": "10.0"},
]


async def test_tags_filters_give_each_subscriber_its_publications(
    server: ServerProcess, wire: Wire
) -> None:
    """Several subscribers of one channel, each with its filter (one without): every
    publication published with tags reaches exactly the subscribers whose filter it passes,
    with its data and tags, in order; none reaches a subscriber twice."""
    channel = "tagged:board"
    async with (
        client(server.port, wire) as a,
        client(server.port, wire) as b,
        client(server.port, wire) as c,
        client(server.port, wire) as d,
    ):
        events = {}
        for (name, (tags_filter, _)), conn in zip(FILTERS.items(), (a, b, c, d), strict=True):
            events[name] = Events(wire)
            await ready(conn.new_subscription(channel, events[name], tags_filter=tags_filter))
        offsets = []
        for n, tags in enumerate(TAGS):
            offsets.append(await publish(server, channel, {"n": n}, tags=tags))
        for name, (_, passes) in FILTERS.items():
            expected = [
                (offset, {"n": n}, tags)
                for n, (offset, tags) in enumerate(zip(offsets, TAGS, strict=True))
                if passes(tags)
            ]
            got = await events[name].take(len(expected))
            assert got == expected, name
            assert 0 < len(expected) < len(TAGS) or name == "everything"
            assert got[-1][1] == {"n": len(TAGS) - 1}, "the last one passes every filter"
        await asyncio.sleep(scaled(0.2))
        assert all(e.pubs.empty() for e in events.values()), "nothing more reached anyone"
        assert all(not e.errors and not e.unsubscribed for e in events.values())


async def test_a_filtered_subscription_recovers_only_what_passes_its_filter(
    server: ServerProcess, wire: Wire
) -> None:
    """A recoverable filtered subscription whose client was away: the recovered publications
    are the ones its filter lets through, and its position moves past the others (the next
    live publication arrives once, nothing is recovered twice)."""
    channel = "tagged:away"
    events = Events(wire)
    async with client(server.port, wire) as conn:
        sub = conn.new_subscription(
            channel, events, recoverable=True, tags_filter=Filter.eq("team", "eng")
        )
        await ready(sub)
        await publish(server, channel, {"n": 0}, tags={"team": "eng"})
        assert await events.data(1) == [{"n": 0}]
        await conn.disconnect()
        assert sub.state == SubscriptionState.SUBSCRIBING  # kept, with its position
        for n, team in enumerate(["ops", "eng", "ops", "eng", "ops"], start=1):
            await publish(server, channel, {"n": n}, tags={"team": team})
        await conn.connect()
        await eventually(lambda: len(events.subscribed) == 2, what="the resubscribe")
        assert await events.take(2) == [
            (3, {"n": 2}, {"team": "eng"}),
            (5, {"n": 4}, {"team": "eng"}),
        ]
        last = events.subscribed[-1]
        assert (last.was_recovering, last.recovered) == (True, True)
        assert last.stream_position is not None and last.stream_position.offset == 6
        await publish(server, channel, {"n": 6}, tags={"team": "eng"})
        assert await events.take(1) == [(7, {"n": 6}, {"team": "eng"})]
        await asyncio.sleep(scaled(0.2))
        assert events.pubs.empty()


async def test_a_tags_filter_where_the_namespace_does_not_allow_it_unsubscribes(
    server: ServerProcess, wire: Wire
) -> None:
    """The server refuses the filter with 107: centrifuge-python takes a non-temporary
    subscribe error as final (unsubscribed with the error's code, no error event, ready()
    raises); the client stays connected and its other subscriptions work."""
    async with client(server.port, wire) as conn:
        refused = Events(wire)
        sub = conn.new_subscription("untagged:board", refused, tags_filter=Filter.eq("team", "eng"))
        await sub.subscribe()
        with pytest.raises(SubscriptionUnsubscribedError):
            await sub.ready(scaled(5))
        assert sub.state == SubscriptionState.UNSUBSCRIBED
        assert [code for code, _ in refused.unsubscribed] == [107]
        assert refused.errors == [] and refused.subscribed == []
        # Well-formed by the SDK's builder, but not by the protocol: eq needs a value.
        malformed = Events(wire)
        bad = conn.new_subscription("tagged:board", malformed, tags_filter=Filter.eq("team", ""))
        await bad.subscribe()
        with pytest.raises(SubscriptionUnsubscribedError):
            await bad.ready(scaled(5))
        assert [code for code, _ in malformed.unsubscribed] == [107]
        # Still connected: a plain subscription of the same namespace gets publications.
        plain = Events(wire)
        await ready(conn.new_subscription("untagged:other", plain))
        await publish(server, "untagged:other", {"still": "here"}, tags={"team": "eng"})
        assert await plain.take(1) == [(1, {"still": "here"}, {"team": "eng"})]
        assert refused.pubs.empty()


async def from_nothing(channel: str) -> StreamPosition:
    """get_state for "recover from an empty position" (see the module docstring)."""
    return StreamPosition(offset=0, epoch="")


async def drop_and_come_back(server: ServerProcess, conn: Client, events: Events) -> None:
    """The server disconnects ``conn`` with a code that lets it reconnect; wait until its
    subscription is subscribed again."""
    before = len(events.subscribed)
    await api(
        server,
        "disconnect",
        {"user": "", "client": conn.client_id, "disconnect": {"code": 3001, "reason": "back"}},
    )
    await eventually(lambda: len(events.subscribed) > before, what="the resubscribe")


async def check_cache_recovery(
    server: ServerProcess, wire: Wire, channel: str, **options: Any
) -> None:
    """Shared by the cache tests: ``channel`` has three publications; a subscriber made with
    ``options`` gets the latest (only), in its publication handler after the subscribed
    event; after a reconnect it gets nothing again when nothing changed, and only the latest
    of what was published while it was away otherwise."""
    for price in (100, 101, 102):
        await publish(server, channel, {"price": price})
    events = Events(wire)
    async with client(server.port, wire) as conn:
        sub = conn.new_subscription(channel, events, **options)
        await ready(sub)
        assert await events.take(1) == [(3, {"price": 102}, {})]
        first = events.subscribed[0]
        assert (first.was_recovering, first.recovered, first.recoverable) == (True, True, True)
        assert first.stream_position is not None and first.stream_position.offset == 3
        epoch = first.stream_position.epoch

        # Disconnected by the server, back at once: nothing changed, nothing again.
        await drop_and_come_back(server, conn, events)
        again = events.subscribed[-1]
        assert (again.was_recovering, again.recovered) == (True, True)
        await publish(server, channel, {"price": 103})
        assert await events.take(1) == [(4, {"price": 103}, {})], "live, and not 102 again"

        # Away while two were published: the latest of them only (cache, not stream).
        await conn.disconnect()
        await publish(server, channel, {"price": 104})
        await publish(server, channel, {"price": 105})
        await conn.connect()
        await eventually(lambda: len(events.subscribed) == 3, what="the resubscribe")
        assert await events.take(1) == [(6, {"price": 105}, {})]
        last = events.subscribed[-1]
        assert (last.was_recovering, last.recovered) == (True, True)
        assert last.stream_position == StreamPosition(offset=6, epoch=epoch)
        await publish(server, channel, {"price": 106})
        assert await events.take(1) == [(7, {"price": 106}, {})]
        await asyncio.sleep(scaled(0.2))
        assert events.pubs.empty() and not events.errors


async def test_cache_mode_gives_the_latest_publication_from_an_empty_position(
    server: ServerProcess, wire: Wire
) -> None:
    await check_cache_recovery(server, wire, "prices:aapl", get_state=from_nothing)


async def test_auto_cache_recover_gives_the_latest_without_a_position(
    server: ServerProcess, wire: Wire
) -> None:
    await check_cache_recovery(server, wire, "scores:final")


async def test_cache_mode_gives_nothing_to_a_subscriber_that_does_not_ask(
    server: ServerProcess, wire: Wire
) -> None:
    """Without auto_cache_recover and without a position, a subscriber of a cache channel gets
    its position but no publication; the next one reaches it live."""
    await publish(server, "prices:msft", {"price": 1})
    events = Events(wire)
    async with client(server.port, wire) as conn:
        await ready(conn.new_subscription("prices:msft", events))
        first = events.subscribed[0]
        assert (first.was_recovering, first.recovered) == (False, False)
        assert first.stream_position is not None and first.stream_position.offset == 1
        await publish(server, "prices:msft", {"price": 2})
        assert await events.take(1) == [(2, {"price": 2}, {})]
