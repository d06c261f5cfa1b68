"""Channel names as Centrifugo has them, with centrifuge-python (both formats): names with
``# $ / | ~ ; + !``, user-limited channels (``dm:chat#alice,bob``) and private (``$``) channels
that need a subscription token; publishing to them and reading them takes being subscribed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from centrifuge import (
    CentrifugeError,
    Client,
    PublicationContext,
    ReplyError,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]


KEY = "n" * 32
SECRET = "c" * 40
CONFIG = """
[[namespaces]]
name = "dm"
allow_user_limited_channels = true
allow_subscribe_for_client = false
history_size = 10
history_ttl = 60

[[namespaces]]
name = "odd"
"""


class Inbox(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: asyncio.Queue[Any] = asyncio.Queue()
        self.unsubscribed: list[int] = []

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.pubs.put(ctx.pub.data)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx.code)


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)


@pytest.fixture(params=[False, True], ids=["json", "protobuf"])
def protobuf(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@asynccontextmanager
async def client(server: ServerProcess, user: str, protobuf: bool) -> AsyncIterator[Client]:
    c = Client(server.ws + "/connection/websocket", token=mint(SECRET, user), use_protobuf=protobuf)
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
        body = await resp.json()
    assert "error" not in body, body


def encode(value: Any, protobuf: bool) -> Any:
    return json.dumps(value).encode() if protobuf else value


def decoded(data: Any, protobuf: bool) -> Any:
    return json.loads(data) if protobuf else data


async def subscribe(c: Client, channel: str, token: str = "") -> tuple[Inbox, int | None]:
    """Subscribe; the inbox, and None once subscribed or the code it was refused with (the
    SDK unsubscribes with the error's code)."""
    inbox = Inbox()
    sub = c.new_subscription(channel, events=inbox, token=token)
    await sub.subscribe()
    try:
        await sub.ready(scaled(5))
    except CentrifugeError:
        assert inbox.unsubscribed, "refused, but the SDK did not say why"
        return inbox, inbox.unsubscribed[-1]
    return inbox, None


async def test_names_with_centrifugos_characters_carry_publications(
    server: ServerProcess, protobuf: bool
) -> None:
    channels = ["odd:a/b", "odd:x|y~z;+!", "odd:p*q&r%s"]
    async with client(server, "ada", protobuf) as c:
        inboxes = [(await subscribe(c, ch))[0] for ch in channels]
        for n, channel in enumerate(channels):
            await publish(server, channel, {"n": n})
        got = [decoded(await asyncio.wait_for(i.pubs.get(), scaled(5)), protobuf) for i in inboxes]
    assert got == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_user_limited_channels_admit_their_users_only(
    server: ServerProcess, protobuf: bool
) -> None:
    channel = "dm:chat#alice,bob"
    async with (
        client(server, "alice", protobuf) as alice,
        client(server, "bob", protobuf) as bob,
        client(server, "carol", protobuf) as carol,
    ):
        (a, a_err), (b, b_err) = await subscribe(alice, channel), await subscribe(bob, channel)
        assert a_err is None and b_err is None
        _, c_err = await subscribe(carol, channel)
        assert (c_err is not None and "103" in str(c_err)) or "permission" in str(c_err).lower()
        await publish(server, channel, {"to": "alice and bob"})
        for inbox in (a, b):
            data = await asyncio.wait_for(inbox.pubs.get(), scaled(5))
            assert decoded(data, protobuf) == {"to": "alice and bob"}
        # The namespace's flags refuse clients; the user list is what lets alice in.
        assert (await subscribe(alice, "dm:chat"))[1] == 103
        # Publishing and reading take being subscribed (listed users only, then).
        await alice.publish(channel, encode({"from": "alice"}, protobuf))
        assert decoded(await asyncio.wait_for(b.pubs.get(), scaled(5)), protobuf) == {
            "from": "alice"
        }
        for refused in (
            carol.publish(channel, encode({"from": "carol"}, protobuf)),
            carol.history(channel),
            carol.presence_stats(channel),
        ):
            with pytest.raises(ReplyError) as info:
                await refused
            assert info.value.code == 103


async def test_private_channels_need_a_subscription_token(
    server: ServerProcess, protobuf: bool
) -> None:
    async with client(server, "ada", protobuf) as c:
        assert (await subscribe(c, "$odd:secret"))[1] == 103
        inbox, ok = await subscribe(
            c, "$odd:secret2", token=mint(SECRET, "ada", channel="$odd:secret2")
        )
        assert ok is None
        await publish(server, "$odd:secret2", ["private"])
        assert decoded(await asyncio.wait_for(inbox.pubs.get(), scaled(5)), protobuf) == ["private"]
