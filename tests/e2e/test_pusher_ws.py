"""The Pusher protocol's WebSocket side (``/app/{key}``) frame by frame, with a plain WebSocket
client: what the session answers, refuses and relays (pusher-js itself: tests/interop)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support import pusherws
from tests.support.pusherws import Client
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

APP_ID = "123456"
KEY = "pusher-ws-key"
SECRET = "pusher-ws-secret-0123456789"
CONFIG = f"""
api_key = "pusher-ws-api-key-0123456789"
client_channel_limit = 8

[[pusher_apps]]
id = "{APP_ID}"
key = "{KEY}"
secret = "{SECRET}"
client_events = true
activity_timeout = 1

[[pusher_apps]]
id = "654321"
key = "other-key"
secret = "other-secret-0123456789"
max_connections = 1
"""


@pytest.fixture
def pserver(start_server: StartServer) -> ServerProcess:
    return start_server(config=CONFIG)


@asynccontextmanager
async def connect(server: ServerProcess, key: str = KEY) -> AsyncIterator[Client]:
    secret = SECRET if key == KEY else "other-secret-0123456789"
    async with pusherws.connect(server.ws, key, secret) as client:
        if client.first is None:
            assert client.socket_id
        yield client


async def trigger(server: ServerProcess, channel: str, event: str, data: Any) -> None:
    """An event of the unmapped app through hubbub's own server API."""
    await pusherws.server_api_event(
        server.url, "pusher-ws-api-key-0123456789", APP_ID, channel, event, data
    )


async def test_refusals_carry_the_protocols_codes(pserver: ServerProcess) -> None:
    for key, query, code in (
        ("nope", "?protocol=7", 4001),
        (KEY, "", 4008),
        (KEY, "?protocol=x", 4006),
        (KEY, "?protocol=4", 4007),
    ):
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{pserver.ws}/app/{key}{query}") as ws,
        ):
            msg = await asyncio.wait_for(ws.receive(), scaled(5))
            frame = json.loads(msg.data)
            assert frame["event"] == "pusher:error" and frame["data"]["code"] == code, frame
            msg = await asyncio.wait_for(ws.receive(), scaled(5))
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == code, (key, query, msg)


async def test_connection_quota(pserver: ServerProcess) -> None:
    async with connect(pserver, "other-key") as first:
        assert first.socket_id
        async with connect(pserver, "other-key") as second:
            assert second.first is not None and second.first["data"]["code"] == 4004


async def test_public_channel_event_and_ping(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        await c.send("pusher:ping")
        assert (await c.recv())["event"] == "pusher:pong"
        reply = await c.subscribe("news")
        assert reply == {
            "event": "pusher_internal:subscription_succeeded",
            "channel": "news",
            "data": {},
        }
        await trigger(pserver, "news", "breaking", {"title": "hi"})
        frame = await c.expect("breaking")
        assert frame == {"event": "breaking", "channel": "news", "data": {"title": "hi"}}
        # The server pings a silent connection after the activity timeout (1 s here).
        frame = await c.recv(wait=5, pings=True)
        assert frame["event"] == "pusher:ping"
        await c.send("pusher:pong")


async def test_bad_frames_get_errors_and_the_connection_stays(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        for text in (
            "not json",
            "[1]",
            '{"event": 5}',
            '{"event":"pusher:nope"}',
            '{"event":"x"}',
            '{"event":"pusher:subscribe","data":{"channel":"bad name!"}}',
            '{"event":"client-x","channel":"news","data":NaN}',
        ):
            await c.ws.send_str(text)
            frame = await c.recv()
            assert frame["event"] == "pusher:error", (text, frame)
        await c.send("pusher:ping")
        assert (await c.recv())["event"] == "pusher:pong"


async def test_private_channel_needs_a_valid_signature(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        reply = await c.subscribe("private-orders", secret="wrong-secret-0123456789")
        assert reply["event"] == "pusher:subscription_error"
        assert reply["channel"] == "private-orders" and reply["data"]["status"] == 401
        reply = await c.subscribe("private-orders")
        assert reply["event"] == "pusher_internal:subscription_succeeded"
        await trigger(pserver, "private-orders", "new", "plain text")
        assert (await c.expect("new"))["data"] == "plain text"


async def test_client_events_not_echoed_and_user_id_on_presence(pserver: ServerProcess) -> None:
    async with connect(pserver) as a, connect(pserver) as b:
        ra = await a.subscribe("presence-room", {"user_id": "alice", "user_info": {"n": 1}})
        assert ra["data"]["presence"] == {"ids": ["alice"], "hash": {"alice": {"n": 1}}, "count": 1}
        rb = await b.subscribe("presence-room", {"user_id": 7})
        assert rb["data"]["presence"]["count"] == 2
        assert set(rb["data"]["presence"]["ids"]) == {"alice", "7"}
        added = await a.expect("pusher_internal:member_added")
        assert added["data"] == {"user_id": "7", "user_info": None}
        await b.send("client-typing", {"x": 1}, channel="presence-room")
        got = await a.expect("client-typing")
        assert got == {
            "event": "client-typing",
            "channel": "presence-room",
            "data": {"x": 1},
            "user_id": "7",
        }
        await b.nothing()
        # Not subscribed, not allowed kinds.
        await a.send("client-x", {}, channel="private-elsewhere")
        assert (await a.recv())["event"] == "pusher:error"
        await a.send("client-x", {}, channel="news")
        assert (await a.recv())["event"] == "pusher:error"
    # b left with the connection: nothing more to check here (member_removed below).


async def test_member_added_once_per_user(pserver: ServerProcess) -> None:
    async with connect(pserver) as watcher:
        await watcher.subscribe("presence-tabs", {"user_id": "w"})
        async with connect(pserver) as tab1:
            await tab1.subscribe("presence-tabs", {"user_id": "u"})
            assert (await watcher.expect("pusher_internal:member_added"))["data"]["user_id"] == "u"
            async with connect(pserver) as tab2:
                reply = await tab2.subscribe("presence-tabs", {"user_id": "u"})
                assert reply["data"]["presence"]["count"] == 2
                await watcher.nothing()
            await watcher.nothing()  # tab1 still there: u stays
        removed = await watcher.expect("pusher_internal:member_removed")
        assert removed["data"] == {"user_id": "u"}


async def test_cache_channel_last_event_or_miss(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        await c.subscribe("cache-weather")
        assert (await c.recv())["event"] == "pusher:cache_miss"
    await trigger(pserver, "cache-weather", "update", {"t": 1})
    await trigger(pserver, "cache-weather", "update", {"t": 2})
    async with connect(pserver) as c:
        await c.subscribe("cache-weather")
        assert (await c.expect("update"))["data"] == {"t": 2}


async def test_signin_and_server_to_user(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        refused = await c.subscribe("#server-to-user-42")
        assert refused["event"] == "pusher:subscription_error"
        user_data = json.dumps({"id": "42", "name": "x"})
        await c.send("pusher:signin", {"auth": "bad:sig", "user_data": user_data})
        assert (await c.recv())["event"] == "pusher:error"
        assert (await c.signin({"id": "42", "name": "x"}))["event"] == "pusher:signin_success"
        reply = await c.subscribe("#server-to-user-42")
        assert reply["event"] == "pusher_internal:subscription_succeeded"
        await trigger(pserver, "#server-to-user-42", "note", {"hello": "you"})
        assert (await c.expect("note"))["data"] == {"hello": "you"}
        assert (await c.subscribe("#server-to-user-43"))["event"] == "pusher:subscription_error"
        # The signed-in connection is its user's for the server API (pusher-<id>#<user>).
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                pserver.url + "/api/connections",
                json={"user": f"pusher-{APP_ID}#42"},
                headers={"X-API-Key": "pusher-ws-api-key-0123456789"},
            )
            (info,) = (await resp.json())["result"]["connections"].values()
        assert info["protocol"] == "pusher" and info["user"] == f"pusher-{APP_ID}#42"
        assert f"$pusher-{APP_ID}:#server-to-user-42" in info["state"]["channels"]
        await trigger_disconnect(pserver, f"pusher-{APP_ID}#42")
        frame = await c.recv()
        assert frame["event"] == "pusher:error" and frame["data"]["code"] == 4009
        msg = await asyncio.wait_for(c.ws.receive(), scaled(5))
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4009


async def trigger_disconnect(server: ServerProcess, user: str) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            server.url + "/api/disconnect",
            json={"user": user},
            headers={"X-API-Key": "pusher-ws-api-key-0123456789"},
        )
        assert "error" not in await resp.json()


async def test_subscriptions_per_connection_are_bounded(pserver: ServerProcess) -> None:
    async with connect(pserver) as c:
        for i in range(8):
            assert (await c.subscribe(f"ch-{i}"))[
                "event"
            ] == "pusher_internal:subscription_succeeded"
        refused = await c.subscribe("ch-8")
        assert refused["event"] == "pusher:subscription_error" and refused["channel"] == "ch-8"
        await c.send("pusher:unsubscribe", {"channel": "ch-0"})
        assert (await c.subscribe("ch-8"))["event"] == "pusher_internal:subscription_succeeded"


async def test_client_events_over_ten_a_second_are_refused(pserver: ServerProcess) -> None:
    async with connect(pserver) as a, connect(pserver) as b:
        for c in (a, b):
            assert (await c.subscribe("private-fast"))["event"].endswith("subscription_succeeded")
        for i in range(15):
            await a.send("client-n", {"i": i}, channel="private-fast")
        await a.send("pusher:ping")
        refused = []
        while (frame := await a.recv())["event"] != "pusher:pong":
            assert frame["event"] == "pusher:error" and frame["data"]["code"] == 4301, frame
            refused.append(frame)
        assert 1 <= len(refused) <= 5  # 10 at once, and what refilled meanwhile
        got = [(await b.expect("client-n"))["data"] for _ in range(15 - len(refused))]
        assert [d["i"] for d in got] == sorted(d["i"] for d in got)
        await b.nothing(0.3)
