"""Centrifugo's token claims with centrifuge-python (both formats): a connection token's
``subs`` (server-side subscriptions with their data, info and overrides) and ``b64info``, a
subscription token's ``data`` and ``override`` (join/leave turned on for one subscriber, and
its leave announced as its join was)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from centrifuge import (
    Client,
    ClientEventHandler,
    JoinContext,
    LeaveContext,
    ServerPublicationContext,
    ServerSubscribedContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]


KEY = "q" * 32
SECRET = "w" * 40
CONFIG = """
[[namespaces]]
name = "feed"
presence = true
join_leave = true
history_size = 10
history_ttl = 60

[[namespaces]]
name = "quiet"
history_size = 10
history_ttl = 60
"""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)


@pytest.fixture(params=[False, True], ids=["json", "protobuf"])
def protobuf(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def on(value: bool) -> dict[str, bool]:
    return {"value": value}


def decoded(data: Any, protobuf: bool) -> Any:
    """A JSON value as the SDK gives it: as it is (JSON), or in JSON text bytes (Protobuf)."""
    if not protobuf or data is None:
        return data
    assert isinstance(data, bytes), data
    return json.loads(data)


class ServerSide(ClientEventHandler):
    """Records the client's server-side subscriptions and their publications."""

    def __init__(self) -> None:
        self.subscribed: dict[str, Any] = {}
        self.pubs: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self.subscribed[ctx.channel] = ctx.data

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        await self.pubs.put((ctx.channel, ctx.pub.data))


class Watch(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.data: Any = None

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.data = ctx.data

    async def on_join(self, ctx: JoinContext) -> None:
        await self.events.put(("join", ctx.info.user))

    async def on_leave(self, ctx: LeaveContext) -> None:
        await self.events.put(("leave", ctx.info.user))


@asynccontextmanager
async def client(
    server: ServerProcess,
    user: str,
    protobuf: bool,
    events: ServerSide | None = None,
    **claims: Any,
) -> AsyncIterator[Client]:
    token = mint(SECRET, user, extra=claims)
    c = Client(
        server.ws + "/connection/websocket", token=token, use_protobuf=protobuf, events=events
    )
    await c.connect()
    await c.ready(scaled(10))
    try:
        yield c
    finally:
        await c.disconnect()


async def publish(server: ServerProcess, channel: str, data: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/publish",
            json={"channel": channel, "data": data},
            headers={"X-API-Key": KEY},
        ) as resp,
    ):
        assert "error" not in await resp.json()


async def presence_of(c: Client, channel: str, protobuf: bool) -> dict[str, Any]:
    """user -> (conn_info, chan_info) of the channel's presence, as JSON values."""
    result = await c.presence(channel)
    return {
        e.user: (decoded(e.conn_info, protobuf), decoded(e.chan_info, protobuf))
        for e in result.clients.values()
    }


async def test_subs_claim_subscribes_with_data_info_and_overrides(
    server: ServerProcess, protobuf: bool
) -> None:
    """The SDK reports each server-side subscription with its ``data``; others see its
    ``info`` (and the connection's ``b64info``) in presence; an override keeps it out of
    presence; publications reach it."""
    events = ServerSide()
    subs = {
        "feed:a": {"info": {"seat": 1}, "data": {"hi": "a"}},
        "feed:b": {"b64data": b64('{"hi": "b"}'), "override": {"presence": on(False)}},
    }
    async with (
        client(server, "bob", protobuf, channels=["feed:a", "feed:b"]) as bob,
        client(server, "ada", protobuf, events, subs=subs, b64info=b64('{"name": "Ada"}')),
    ):
        # (the SDK reports them as it reads the connect reply)
        await eventually(lambda: len(events.subscribed) == 2, 5, what="both subscriptions")
        got = {ch: decoded(data, protobuf) for ch, data in events.subscribed.items()}
        assert got == {"feed:a": {"hi": "a"}, "feed:b": {"hi": "b"}}
        here = await presence_of(bob, "feed:a", protobuf)
        assert here["ada"] == ({"name": "Ada"}, {"seat": 1})
        assert set(await presence_of(bob, "feed:b", protobuf)) == {"bob"}
        await publish(server, "feed:a", {"n": 1})
        channel, data = await asyncio.wait_for(events.pubs.get(), scaled(5))
        assert (channel, decoded(data, protobuf)) == ("feed:a", {"n": 1})


async def test_subscription_token_override_turns_join_leave_on(
    server: ServerProcess, protobuf: bool
) -> None:
    """In a namespace without join/leave, ada's token turns hers on and bob's forces him the
    pushes: bob sees her join, then her leave; her token's data is her subscribe's data."""
    async with client(server, "bob", protobuf) as bob, client(server, "ada", protobuf) as ada:
        watch = Watch()
        forced = mint(
            SECRET,
            "bob",
            channel="quiet:room",
            extra={"override": {"force_push_join_leave": on(True)}},
        )
        sub = bob.new_subscription("quiet:room", events=watch, token=forced)
        await sub.subscribe()
        await sub.ready(scaled(5))  # (his own join is not announced: the namespace's rule)
        theirs = Watch()
        loud = mint(
            SECRET,
            "ada",
            channel="quiet:room",
            extra={"override": {"join_leave": on(True)}, "data": {"welcome": "ada"}},
        )
        ada_sub = ada.new_subscription("quiet:room", events=theirs, token=loud)
        await ada_sub.subscribe()
        await ada_sub.ready(scaled(5))
        assert decoded(theirs.data, protobuf) == {"welcome": "ada"}
        assert await asyncio.wait_for(watch.events.get(), scaled(5)) == ("join", "ada")
        await ada_sub.unsubscribe()
        assert await asyncio.wait_for(watch.events.get(), scaled(5)) == ("leave", "ada")
