"""The Pusher HTTP API of a running ``hubbub serve``: the ``pusher`` PyPI library on every
route, and raw requests for what a library never sends (bad signatures, stale timestamps,
oversize bodies, bad JSON, ...): each a clear 4xx with a message, the server unharmed.

Triggers are observed by a Centrifugo client subscribed to the app's mapped channel (the app
maps into namespace ``ns``, so Pusher channel ``news`` is ``ns:news``), presence by a
Centrifugo client with a token in ``$ns:presence-room``; and with Pusher connections
(tests/support/pusherws.py): ``socket_id`` exclusion, presence users and counts,
``terminate_user_connections`` closing a signed-in connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pusher
import pytest

from hubbub.auth import mint
from hubbub.dialects.pusher.signing import sign_api_request
from hubbub.server.pusherapi import EVENTS_BODY_LIMIT
from tests.conftest import StartServer
from tests.support import pusherws
from tests.support.proto import Observer, call, connected
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

APP_ID, KEY, SECRET = "123", "app-key", "app-secret-0123456789"
TOKEN_SECRET = "s" * 40
CONFIG = f"""
token_hmac_secret = "{TOKEN_SECRET}"
presence_ttl = 3
[[namespaces]]
name = "ns"
presence = true
[[pusher_apps]]
id = "{APP_ID}"
key = "{KEY}"
secret = "{SECRET}"
namespace = "ns"
[[pusher_apps]]
id = "456"
key = "other-key"
secret = "other-secret-0123456789"
"""


def client(server: ServerProcess, secret: str = SECRET, key: str = KEY) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=APP_ID, key=key, secret=secret, host="127.0.0.1", port=server.port, ssl=False
    )


async def lib(method: Any, *args: Any) -> Any:
    """A call of the (blocking) library, off the event loop."""
    return await asyncio.to_thread(method, *args)


async def signed(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes = b"",
    params: dict[str, str] | None = None,
    *,
    secret: str = SECRET,
    key: str = KEY,
    skew: float = 0,
    tamper: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """A request signed as a server library signs it (then ``tamper``'s parameters set)."""
    query = sign_api_request(key, secret, method, path, params or {}, body, time.time() + skew)
    query.update(tamper or {})
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, server.url + path, params=query, data=body or None, headers=headers
        ) as resp,
    ):
        return resp.status, await resp.text()


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(config=CONFIG)


async def subscriber(http: aiohttp.ClientSession, server: ServerProcess, channel: str) -> Observer:
    ws = await http.ws_connect(server.ws + "/connection/websocket")
    await connected(ws)
    obs = Observer(ws)
    assert "error" not in await obs.command("subscribe", {"channel": channel})
    return obs


async def test_every_route_with_the_library(server: ServerProcess) -> None:
    p = client(server)
    async with aiohttp.ClientSession() as http:
        news = await subscriber(http, server, "ns:news")
        elsewhere = await subscriber(http, server, "outside")  # not one of the app's channels

        # trigger: delivered as a publication of the mapped channel, the event in its tags
        assert await lib(p.trigger, ["news", "private-x"], "greet", {"hello": 1}) == {}
        pub = (await news.push("pub", "ns:news"))["pub"]
        assert pub["data"] == {"hello": 1} and pub["tags"] == {"pusher_event": "greet"}
        await lib(p.trigger, "news", "plain", "just text")
        pub = (await news.push("pub", "ns:news"))["pub"]
        assert pub["data"] == "just text" and pub["tags"] == {"pusher_event": "plain"}

        # batch: in order
        batch = [{"channel": "news", "name": f"b{n}", "data": str(n)} for n in range(3)]
        assert await lib(p.trigger_batch, batch) == {}
        got = [(await news.push("pub", "ns:news"))["pub"]["tags"]["pusher_event"] for _ in "abc"]
        assert got == ["b0", "b1", "b2"]

        # presence: a Centrifugo user in the app's presence channel
        ws = await http.ws_connect(server.ws + "/connection/websocket")
        await call(ws, {"id": 1, "connect": {"token": mint(TOKEN_SECRET, "alice")}})
        token = mint(TOKEN_SECRET, "alice", channel="$ns:presence-room")
        (reply,) = await call(
            ws, {"id": 2, "subscribe": {"channel": "$ns:presence-room", "token": token}}
        )
        assert "error" not in reply, reply

        listed = await lib(p.channels_info)
        assert listed == {"channels": {"news": {}, "presence-room": {}}}
        listed = await lib(p.channels_info, "presence-", ["user_count", "subscription_count"])
        assert listed == {"channels": {"presence-room": {"user_count": 1, "subscription_count": 1}}}
        assert await lib(p.channel_info, "news", ["subscription_count"]) == {
            "occupied": True,
            "subscription_count": 1,
        }
        assert await lib(p.channel_info, "nobody-here") == {"occupied": False}
        assert await lib(p.channel_info, "presence-room", ["user_count"]) == {
            "occupied": True,
            "user_count": 1,
        }
        assert await lib(p.users_info, "presence-room") == {"users": [{"id": "alice"}]}
        assert await lib(p.users_info, "presence-empty") == {"users": []}
        assert await lib(p.terminate_user_connections, "u1") == {}

        # the trigger's info, read after publishing
        reply = await raw_trigger(
            server,
            {
                "name": "e",
                "data": "x",
                "channels": ["news", "presence-room"],
                "info": "subscription_count,user_count",
            },
        )
        assert reply == {
            "channels": {
                "news": {"subscription_count": 1},
                "presence-room": {"subscription_count": 1, "user_count": 1},
            }
        }
        status, text = await signed(
            server,
            "POST",
            f"/apps/{APP_ID}/batch_events",
            json.dumps(
                {
                    "batch": [
                        {"channel": "news", "name": "a", "data": "1"},
                        {"channel": "news", "name": "b", "data": "2", "info": "subscription_count"},
                    ]
                }
            ).encode(),
        )
        assert (status, json.loads(text)) == (200, {"batch": [{}, {"subscription_count": 1}]})

        # the other app sees none of these channels
        other = pusher.Pusher(
            app_id="456",
            key="other-key",
            secret="other-secret-0123456789",
            host="127.0.0.1",
            port=server.port,
            ssl=False,
        )
        assert await lib(other.channels_info) == {"channels": {}}
        await ws.close()
        for obs in (news, elsewhere):
            obs.stop()
            await obs.ws.close()


async def raw_trigger(server: ServerProcess, body: dict[str, Any]) -> Any:
    status, text = await signed(server, "POST", f"/apps/{APP_ID}/events", json.dumps(body).encode())
    assert status == 200, text
    return json.loads(text)


async def test_the_library_with_a_wrong_secret_is_refused_on_every_route(
    server: ServerProcess,
) -> None:
    bad = client(server, secret="not-the-secret-0123456789")
    calls = [
        (bad.trigger, "news", "e", "x"),
        (bad.trigger_batch, [{"channel": "news", "name": "e", "data": "x"}]),
        (bad.channels_info,),
        (bad.channel_info, "news"),
        (bad.users_info, "presence-room"),
        (bad.terminate_user_connections, "u1"),
    ]
    for method, *args in calls:
        with pytest.raises(pusher.errors.PusherBadAuth, match="Invalid signature"):
            await lib(method, *args)
    wrong_key = client(server, key="no-such-key")
    with pytest.raises(pusher.errors.PusherBadAuth, match="Unknown auth_key"):
        await lib(wrong_key.channels_info)
    with pytest.raises(pusher.errors.PusherBadAuth, match="Unknown auth_key"):
        await lib(wrong_key.terminate_user_connections, "u1")  # the route without an app id


EVENTS = f"/apps/{APP_ID}/events"
EVENT = {"name": "e", "data": "x", "channel": "news"}


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("stale timestamp", {"skew": -601}, 401, "Timestamp expired"),
    ("future timestamp", {"skew": 601}, 401, "Timestamp expired"),
    ("bad body_md5", {"tamper": {"body_md5": "0" * 32}}, 401, "body_md5 does not match"),
    ("bad signature", {"tamper": {"auth_signature": "0" * 64}}, 401, "Invalid signature"),
    ("wrong secret", {"secret": "x" * 20}, 401, "Invalid signature"),
    ("wrong key", {"key": "other-key"}, 401, "Unknown auth_key"),
    ("bad version", {"tamper": {"auth_version": "2.0"}}, 401, "auth_version"),
    ("no timestamp", {"tamper": {"auth_timestamp": "soon"}}, 401, "auth_timestamp"),
    ("bad JSON", {"body": b"{not json"}, 400, "not valid JSON"),
    ("not an object", {"body": b"[1, 2]"}, 400, "must be a JSON object"),
    ("not UTF-8", {"body": b'{"name": "\xff"}'}, 400, "not valid JSON"),
    (
        "over 100 channels",
        {"body": body_of({**EVENT, "channel": None, "channels": [f"c{n}" for n in range(101)]})},
        400,
        "At most 100 channels",
    ),
    (
        "data over 10 KiB",
        {"body": body_of({**EVENT, "data": "x" * (10 * 1024 + 1)})},
        413,
        "Event data over",
    ),
    ("bad channel", {"body": body_of({**EVENT, "channel": "a b"})}, 400, "Invalid channel name"),
    ("bad socket id", {"body": body_of({**EVENT, "socket_id": "x"})}, 400, "Invalid socket_id"),
    ("no name", {"body": body_of({**EVENT, "name": ""})}, 400, "Event name is required"),
    ("unknown info", {"body": body_of({**EVENT, "info": "color"})}, 400, "Unknown info"),
]


async def test_a_bad_trigger_gets_a_clear_4xx(server: ServerProcess) -> None:
    """One server for every case (a server each would cost the shared machine a second)."""
    for what, how, status, message in BAD_REQUESTS:
        how = dict(how)
        body = how.pop("body", body_of(EVENT))
        got, text = await signed(server, "POST", EVENTS, body, **how)
        assert (got, message in text) == (status, True), (what, got, text)
        assert "Traceback" not in text and SECRET not in text


async def test_more_bad_requests_and_the_server_still_serves(server: ServerProcess) -> None:
    async def expect(status: int, message: str, *args: Any, **kwargs: Any) -> None:
        got, text = await signed(server, *args, **kwargs)
        assert got == status and message in text, (args, got, text)

    batch = {"batch": [{"channel": "news", "name": f"e{n}", "data": "x"} for n in range(11)]}
    await expect(400, "At most 10 events", "POST", f"/apps/{APP_ID}/batch_events", body_of(batch))
    await expect(400, "batch must be", "POST", f"/apps/{APP_ID}/batch_events", b"{}")
    await expect(404, "Unknown app id", "POST", "/apps/999/events", body_of(EVENT))
    channels = f"/apps/{APP_ID}/channels"
    await expect(400, "user_count may only", "GET", channels, params={"info": "user_count"})
    await expect(
        400, "user_count may only", "GET", channels + "/news", params={"info": "user_count"}
    )
    await expect(400, "presence channels", "GET", channels + "/news/users")
    await expect(400, "Invalid user id", "POST", f"/apps/{APP_ID}/users/a!b/terminate_connections")
    # a GET takes no body; a body over the route's bound is refused before it is read
    await expect(413, "larger than 0 bytes", "GET", channels, b"x")
    big = b"{" + b" " * EVENTS_BODY_LIMIT + b"}"
    await expect(413, "Request body larger than", "POST", EVENTS, big)
    async with aiohttp.ClientSession() as http:
        # a query key given twice
        async with http.get(server.url + channels + "?auth_key=a&AUTH_KEY=b") as resp:
            assert resp.status == 400 and "more than once" in await resp.text()
        # unsigned
        async with http.get(server.url + channels) as resp:
            assert resp.status == 401 and "Unknown auth_key" in await resp.text()
        # a route asked with another method
        async with http.get(server.url + EVENTS) as resp:
            assert resp.status == 405
        async with http.post(server.url + channels) as resp:
            assert resp.status == 405

        # a body larger than it says (chunked: no Content-Length)
        async def chunks() -> Any:
            for _ in range(EVENTS_BODY_LIMIT // 10_000 + 2):
                yield b" " * 10_000

        async with http.post(server.url + EVENTS, data=chunks()) as resp:
            assert resp.status == 413
    assert await lib(client(server).channels_info) == {"channels": {}}


async def test_two_nodes_list_channels_cluster_wide(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    a, b = (start_server("--engine", redis_server.url, config=CONFIG) for _ in range(2))
    async with aiohttp.ClientSession() as http:
        obs = [
            await subscriber(http, a, "ns:news"),
            await subscriber(http, b, "ns:news"),
            await subscriber(http, b, "ns:sport"),
        ]

        async def listed() -> Any:
            found = await lib(client(a).channels_info, None, ["subscription_count"])
            want = {"news": {"subscription_count": 2}, "sport": {"subscription_count": 1}}
            return found == {"channels": want}

        await eventually(listed, 10, what="node a listing node b's channels")
        assert await lib(client(a).channel_info, "sport", ["subscription_count"]) == {
            "occupied": True,
            "subscription_count": 1,
        }
        # a trigger on node a reaches the subscriber on node b
        await lib(client(a).trigger, "sport", "goal", {"score": 1})
        assert (await obs[2].push("pub", "ns:sport"))["pub"]["data"] == {"score": 1}
        for o in obs:
            o.stop()
            await o.ws.close()


async def test_with_pusher_connections(server: ServerProcess) -> None:
    """Pusher clients of the app: the trigger's socket_id is skipped, presence members are
    the users and the counts, terminate_user_connections closes the signed-in one (4009)."""
    p = client(server)
    async with (
        pusherws.connect(server.ws, KEY, SECRET) as a,
        pusherws.connect(server.ws, KEY, SECRET) as b,
        pusherws.connect(server.ws, KEY, SECRET) as signed_in,
    ):
        for c, user in ((a, "ann"), (b, "bob")):
            reply = await c.subscribe("presence-room", {"user_id": user, "user_info": {}})
            assert reply["event"] == "pusher_internal:subscription_succeeded", reply
        await a.expect("pusher_internal:member_added")
        assert (await a.subscribe("news"))["event"] == "pusher_internal:subscription_succeeded"
        assert (await b.subscribe("news"))["event"] == "pusher_internal:subscription_succeeded"

        await lib(p.trigger, "news", "hi", {"n": 1}, a.socket_id)
        assert (await b.expect("hi"))["data"] == {"n": 1}
        await a.nothing(0.5)  # the sender's socket_id does not get it

        assert await lib(p.users_info, "presence-room") == {"users": [{"id": "ann"}, {"id": "bob"}]}
        info = await lib(p.channel_info, "presence-room", ["user_count", "subscription_count"])
        assert info == {"occupied": True, "user_count": 2, "subscription_count": 2}

        assert (await signed_in.signin({"id": "carol"}))["event"] == "pusher:signin_success"
        assert await lib(p.terminate_user_connections, "carol") == {}
        frame = await signed_in.recv()
        assert frame["event"] == "pusher:error" and frame["data"]["code"] == 4009
        msg = await asyncio.wait_for(signed_in.ws.receive(), scaled(5))
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4009
        await b.nothing(0.2)  # the others stay
