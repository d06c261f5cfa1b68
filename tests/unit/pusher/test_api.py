"""The Pusher HTTP API's methods on an in-process node (memory engine): socket_id exclusion,
the app's own channels only, counts and users from presence, terminate_connections."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hubbub.config import Settings
from hubbub.core.types import ClientInfo
from hubbub.dialects.pusher import api
from hubbub.dialects.pusher.httpapi import (
    ChannelQuery,
    ChannelsQuery,
    parse_batch,
    parse_trigger,
)
from hubbub.dialects.pusher.wire import PusherWire
from hubbub.node import Node
from hubbub.pushersettings import PusherApp, node_channel, user_key


@dataclass(eq=False)
class Transport:
    id: str
    inbox: list[str | bytes] = field(default_factory=list)

    def post(self, message: str | bytes) -> None:
        self.inbox.append(message)

    def close(self, code: int, reason: str) -> None:
        pass


@dataclass(eq=False)
class PusherMember:
    client_id: str
    wire: PusherWire
    transport: Transport

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        return False

    def positioned(self, channel: str) -> bool:
        return False


@dataclass(eq=False)
class SignedIn:
    """A ControlledClient as a signed-in Pusher connection registers (only disconnect)."""

    client_id: str
    user: str
    closed: list[tuple[int, str]] = field(default_factory=list)

    def disconnect(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


APP = PusherApp(id="1", key="k1", secret="s" * 16)
OTHER = PusherApp(id="2", key="k2", secret="t" * 16)


def make_node() -> Node:
    return Node(Settings(pusher_apps=[APP, OTHER]))


async def join(node: Node, app: PusherApp, name: str, socket_id: str) -> PusherMember:
    member = PusherMember(socket_id, PusherWire(app), Transport(socket_id))
    await node.add_member(node_channel(app, name), member)
    return member


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


async def test_trigger_skips_the_socket_id_and_answers_info() -> None:
    node = make_node()
    sender, other = await join(node, APP, "news", "1.1"), await join(node, APP, "news", "2.2")
    trigger = parse_trigger(
        body(
            {
                "name": "e",
                "data": '{"a":1}',
                "channel": "news",
                "socket_id": "1.1",
                "info": "subscription_count",
            }
        )
    )
    reply = await api.trigger(node, APP, trigger)
    assert json.loads(reply) == {"channels": {"news": {"subscription_count": 2}}}
    assert sender.transport.inbox == []
    (frame,) = other.transport.inbox
    assert isinstance(frame, str)
    assert json.loads(frame) == {"event": "e", "channel": "news", "data": '{"a":1}'}


async def test_batch_info_per_event() -> None:
    node = make_node()
    await join(node, APP, "a", "1.1")
    events = parse_batch(
        body(
            {
                "batch": [
                    {"channel": "a", "name": "e", "data": "x", "info": "subscription_count"},
                    {"channel": "b", "name": "e", "data": "y"},
                ]
            }
        )
    )
    reply = await api.batch(node, APP, events)
    assert json.loads(reply) == {"batch": [{"subscription_count": 1}, {}]}
    assert await api.batch(node, APP, events[1:]) == "{}"


async def test_only_the_apps_own_channels_are_listed() -> None:
    node = make_node()
    await join(node, APP, "news", "1.1")
    await join(node, APP, "private-orders", "1.1")
    await join(node, OTHER, "secret-news", "3.3")
    centrifugo = PusherMember("c", PusherWire(APP), Transport("c"))
    await node.add_member("news", centrifugo)  # a top-level Centrifugo channel
    await node.add_member(f"pusher-{APP.id}:$bad", centrifugo)  # the app's namespace, bad kind
    await node.add_member(f"pusher-{APP.id}:a b", centrifugo)  # no Pusher client could name it
    listed = json.loads(await api.channels(node, APP, ChannelsQuery()))
    assert listed == {"channels": {"news": {}, "private-orders": {}}}
    prefixed = await api.channels(
        node, APP, ChannelsQuery("private-", frozenset({"subscription_count"}))
    )
    assert json.loads(prefixed) == {"channels": {"private-orders": {"subscription_count": 1}}}
    listed = json.loads(await api.channels(node, OTHER, ChannelsQuery()))
    assert listed == {"channels": {"secret-news": {}}}


async def test_presence_counts_and_users() -> None:
    node = make_node()
    channel = node_channel(APP, "presence-room")
    for socket_id, user in (("1.1", "ann"), ("2.2", "ann"), ("3.3", "bob")):
        await join(node, APP, "presence-room", socket_id)
        await node.presence_add(channel, ClientInfo(socket_id, user, chan_info="{}"))
    info = frozenset({"user_count", "subscription_count"})
    reply = json.loads(await api.channel(node, APP, ChannelQuery("presence-room", info)))
    assert reply == {"occupied": True, "subscription_count": 3, "user_count": 2}
    users = json.loads(await api.users(node, APP, "presence-room"))
    assert users == {"users": [{"id": "ann"}, {"id": "bob"}]}
    listed = json.loads(await api.channels(node, APP, ChannelsQuery("presence-", info)))
    assert listed == {"channels": {"presence-room": {"subscription_count": 3, "user_count": 2}}}
    empty = json.loads(await api.channel(node, APP, ChannelQuery("presence-none", info)))
    assert empty == {"occupied": False, "subscription_count": 0, "user_count": 0}


async def test_terminate_connections_closes_the_apps_user_only() -> None:
    node = make_node()
    mine, same_name_elsewhere, centrifugo_user = (
        SignedIn("1.1", user_key(APP, "u1")),
        SignedIn("2.2", user_key(OTHER, "u1")),
        SignedIn("c", "u1"),
    )
    for client in (mine, same_name_elsewhere, centrifugo_user):
        node.register_client(client)  # type: ignore[arg-type]
    assert await api.terminate_connections(node, APP, "u1") == "{}"
    assert mine.closed == [api.TERMINATED]
    assert same_name_elsewhere.closed == [] and centrifugo_user.closed == []
