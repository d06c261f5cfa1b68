"""An attacker's and a demanding user's pass over the Pusher WebSocket side (``/app/{key}``):
odd frames and auth strings, presence edge cases, cache kinds, isolation between apps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from hubbub.dialects.pusher import signing
from tests.conftest import StartServer
from tests.support import pusherws
from tests.support.proto import call, connected, raw_client
from tests.support.pusherws import Client
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

APP_ID = "123456"
KEY = "attack-key"
SECRET = "attack-secret-0123456789"
OTHER_KEY = "attack-other"
OTHER_SECRET = "attack-other-secret-0123456789"
QUIET_KEY = "attack-quiet"
QUIET_SECRET = "attack-quiet-secret-0123456789"
SECRETS = {KEY: SECRET, OTHER_KEY: OTHER_SECRET, QUIET_KEY: QUIET_SECRET}
API_KEY = "attack-api-key-0123456789"
CONFIG = f"""
api_key = "{API_KEY}"
client_channel_limit = 8

[[pusher_apps]]
id = "{APP_ID}"
key = "{KEY}"
secret = "{SECRET}"
client_events = true

[[pusher_apps]]
id = "654321"
key = "{OTHER_KEY}"
secret = "{OTHER_SECRET}"
client_events = true
namespace = "shared"

[[pusher_apps]]
id = "777"
key = "{QUIET_KEY}"
secret = "{QUIET_SECRET}"

[[namespaces]]
name = "shared"
history_size = 10
history_ttl = 300
"""


@pytest.fixture
def pserver(start_server: StartServer) -> ServerProcess:
    return start_server(config=CONFIG)


@asynccontextmanager
async def connect(server: ServerProcess, key: str = KEY) -> AsyncIterator[Client]:
    async with pusherws.connect(server.ws, key, SECRETS[key]) as client:
        assert client.socket_id
        yield client


async def trigger(server: ServerProcess, channel: str, event: str, data: Any) -> None:
    """An event of the unmapped app through hubbub's own server API."""
    await pusherws.server_api_event(server.url, API_KEY, APP_ID, channel, event, data)


async def test_odd_frames_and_auth_strings_get_errors(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        frames: list[Any] = [
            '{"event":"pusher:subscribe","data":{"channel":"x","auth":5}}',
            '{"event":"pusher:subscribe","data":{"channel":["x"]}}',
            '{"event":"pusher:subscribe","data":"null"}',
            '{"event":"pusher:subscribe","data":{"channel":"' + "a" * 201 + '"}}',
            '{"event":"pusher:subscribe","data":{"channel":"$pusher-654321:news"}}',
            '{"event":"pusher:subscribe","data":{"channel":"pusher-654321:news"}}',
            '{"event":"pusher:subscribe","data":{"channel":"#server-to-user-"}}',
            '{"event":"client-x","channel":"private-a","data":NaN}',
            "[" * 5000 + "]" * 5000,
            '{"event":"pusher:signin","data":{"auth":"x","user_data":5}}',
            '{"event":5}',
            "",
        ]
        for text in frames:
            await c.ws.send_str(text)
            frame = await c.recv()
            assert frame["event"] == "pusher:error", (text[:80], frame)
            assert frame["data"]["message"] != "Internal server error", text[:80]
        for auth in ("", ":", f"{KEY}:", f"{OTHER_KEY}:" + "0" * 64, "x" * 5000, f"{KEY}:\u00e9"):
            await c.send("pusher:subscribe", {"channel": "private-a", "auth": auth})
            frame = await c.recv()
            assert frame["event"] == "pusher:subscription_error", (auth[:40], frame)
        name = "a" * 200
        assert (await c.subscribe(name))["event"] == "pusher_internal:subscription_succeeded"
        name = "presence-" + "b" * 191
        reply = await c.subscribe(name, {"user_id": "u"})
        assert reply["event"] == "pusher_internal:subscription_succeeded"


async def test_presence_channel_data_shapes(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        for data in (
            {"user_id": True},
            {"user_id": 1.5},
            {"user_id": ""},
            {"user_id": None},
            {"user_id": "x" * 129},
            {"user_id": "u", "user_info": "x" * 1100},
            {"user_info": {}},
        ):
            reply = await c.subscribe("presence-shapes", data)
            assert reply["event"] == "pusher:subscription_error", (data, reply)
        # Signed for another socket: refused.
        text = json.dumps({"user_id": "u"})
        auth = f"{KEY}:" + signing.sign(
            SECRET, signing.channel_string_to_sign("1.1", "presence-shapes", text)
        )
        await c.send(
            "pusher:subscribe", {"channel": "presence-shapes", "auth": auth, "channel_data": text}
        )
        assert (await c.recv())["event"] == "pusher:subscription_error"


async def test_signin_signed_for_another_socket_is_refused(pserver: ServerProcess) -> None:
    async with connect(pserver) as a, connect(pserver) as b:
        text = json.dumps({"id": "42"})
        auth = f"{KEY}:" + signing.sign(SECRET, signing.user_string_to_sign(a.socket_id, text))
        await b.send("pusher:signin", {"auth": auth, "user_data": text})
        frame = await b.recv()
        assert frame["event"] == "pusher:error"
        assert (await b.subscribe("#server-to-user-42"))["event"] == "pusher:subscription_error"


async def test_no_member_added_to_the_joiner_itself(pserver: ServerProcess) -> None:
    async with connect(pserver) as a, connect(pserver) as b:
        await a.subscribe("presence-self", {"user_id": "a"})
        await a.nothing(0.3)
        await b.subscribe("presence-self", {"user_id": "b"})
        await b.nothing(0.3)
        assert (await a.expect("pusher_internal:member_added"))["data"]["user_id"] == "b"
        await b.send("pusher:unsubscribe", {"channel": "presence-self"})
        assert (await a.expect("pusher_internal:member_removed"))["data"]["user_id"] == "b"
        await b.nothing(0.3)
        # Rejoining after leaving announces again, once.
        await b.subscribe("presence-self", {"user_id": "b"})
        assert (await a.expect("pusher_internal:member_added"))["data"]["user_id"] == "b"
        await a.nothing(0.3)


async def test_presence_cache_channel_gets_its_cache_miss(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        reply = await c.subscribe("presence-cache-room", {"user_id": "u"})
        assert reply["event"] == "pusher_internal:subscription_succeeded"
        assert (await c.recv())["event"] == "pusher:cache_miss"
    await trigger(pserver, "presence-cache-room", "update", {"t": 1})
    async with connect(pserver) as c:
        reply = await c.subscribe("presence-cache-room", {"user_id": "v"})
        assert reply["event"] == "pusher_internal:subscription_succeeded"
        assert reply["data"]["presence"]["ids"] == ["v"]
        got = await c.recv()
        assert got["event"] == "update" and got["data"] == {"t": 1}, got
        await c.nothing(0.3)


async def test_private_cache_channel_gets_its_cache_miss(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        reply = await c.subscribe("private-cache-room")
        assert reply["event"] == "pusher_internal:subscription_succeeded"
        assert (await c.recv())["event"] == "pusher:cache_miss"


async def test_no_client_event_leaks_between_apps(pserver: ServerProcess) -> None:
    async with connect(pserver) as a, connect(pserver, OTHER_KEY) as b, connect(pserver) as a2:
        for c in (a, b, a2):
            assert (await c.subscribe("private-shared"))["event"].endswith("succeeded")
        await a.send("client-hi", {"n": 1}, channel="private-shared")
        assert (await a2.expect("client-hi"))["data"] == {"n": 1}
        await b.nothing(0.3)
        await a.nothing(0.3)


async def test_centrifugo_clients_stay_out_of_pusher_apps_channels(pserver: ServerProcess) -> None:
    """An unmapped app's channels (``pusher-<id>:...``) are closed to Centrifugo clients; a
    mapped app's authorized kinds (``$shared:private-...``) need a subscription token."""
    async with raw_client(pserver) as ws:
        await connected(ws)
        closed = [
            f"pusher-{APP_ID}:news",
            f"$pusher-{APP_ID}:private-a",
            f"$pusher-{APP_ID}:presence-a",
            "$shared:private-a",
            "$shared:presence-a",
            "$shared:private-encrypted-a",
            "$shared:#server-to-user-42",
        ]
        for n, channel in enumerate(closed, 10):
            for command in ("subscribe", "publish", "history", "presence"):
                params: dict[str, Any] = {"channel": channel}
                if command == "publish":
                    params["data"] = {"x": 1}
                (reply,) = await call(ws, {"id": n, command: params})
                assert "error" in reply, (command, channel, reply)
        (reply,) = await call(ws, {"id": 99, "subscribe": {"channel": "shared:news"}})
        assert "error" not in reply, reply


async def test_presence_channel_full_at_100_users_but_not_for_a_users_other_tab(
    pserver: ServerProcess,
) -> None:
    async with AsyncExitStack() as stack:
        for i in range(100):
            c = await stack.enter_async_context(connect(pserver))
            reply = await c.subscribe("presence-full", {"user_id": f"u{i}"})
            assert reply["event"] == "pusher_internal:subscription_succeeded", (i, reply)
        assert reply["data"]["presence"]["count"] == 100
        late = await stack.enter_async_context(connect(pserver))
        refused = await late.subscribe("presence-full", {"user_id": "u100"})
        assert refused["event"] == "pusher:subscription_error", refused
        assert refused["data"]["status"] == 403
        tab = await stack.enter_async_context(connect(pserver))
        reply = await tab.subscribe("presence-full", {"user_id": "u0"})
        assert reply["event"] == "pusher_internal:subscription_succeeded", reply
        assert reply["data"]["presence"]["count"] == 100


async def test_client_events_on_every_channel_kind(pserver: ServerProcess) -> None:
    allowed = ["private-k", "presence-k", "private-cache-k", "presence-cache-k"]
    refused = ["news", "cache-k", "private-encrypted-k", "private-encrypted-cache-k"]
    async with connect(pserver) as a, connect(pserver) as b:
        for i, c in enumerate((a, b)):
            for name in allowed + refused:
                data = {"user_id": f"u{i}"} if name.startswith("presence-") else None
                assert (await c.subscribe(name, data))["event"].endswith("succeeded"), name
                if "cache-" in name:
                    assert (await c.recv())["event"] == "pusher:cache_miss", name
        for name in ("presence-k", "presence-cache-k"):
            added = await a.expect("pusher_internal:member_added")
            assert added["channel"] == name and added["data"]["user_id"] == "u1", added
        await a.nothing(0.3)
        await b.nothing(0.3)
        for name in refused:
            await a.send("client-k", {"on": name}, channel=name)
            assert (await a.recv())["event"] == "pusher:error", name
        for name in allowed:
            await a.send("client-k", {"on": name}, channel=name)
            got = await b.expect("client-k")
            assert got["channel"] == name and got["data"] == {"on": name}, got
        await b.nothing(0.3)
        await a.nothing(0.3)
    # Client events are never kept: a cache channel's subscriber gets a miss after them.
    async with connect(pserver) as c:
        await c.subscribe("private-cache-k")
        assert (await c.recv())["event"] == "pusher:cache_miss"


async def test_an_app_without_client_events_refuses_them(pserver: ServerProcess) -> None:
    async with connect(pserver, QUIET_KEY) as a, connect(pserver, QUIET_KEY) as b:
        for c in (a, b):
            assert (await c.subscribe("private-no"))["event"].endswith("succeeded")
        await a.send("client-k", {}, channel="private-no")
        assert (await a.recv())["event"] == "pusher:error"
        await b.nothing(0.3)
