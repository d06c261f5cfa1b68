"""Pusher webhooks end to end: a real ``hubbub serve`` with a ``[[pusher_apps]]`` entry whose
``webhook_url`` is a backend (tests/support/webhook_receiver.py) that checks every request
with the ``pusher`` PyPI library's ``validate_webhook``.

Occupancy comes from Centrifugo clients on the app's mapped namespace (``ns:news`` is the
app's ``news``); member_added/removed, client_event and cache_miss from Pusher clients on
``/app/{key}`` (plain WebSocket frames). Retries are scaled down as in test_webhooks.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from hubbub.dialects.pusher import signing
from tests.conftest import StartServer
from tests.support.proto import WS, call
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled
from tests.support.webhook_receiver import PusherReceiver, Receiver

pytestmark = pytest.mark.e2e

TOKEN_SECRET = "token-secret-for-the-pusher-hooks-0123"
NAMESPACE = '[[namespaces]]\nname = "ns"\n'


@pytest.fixture
async def preceiver() -> AsyncIterator[PusherReceiver]:
    rec = PusherReceiver()
    await rec.up()
    try:
        yield rec
    finally:
        await rec.down()


def config(preceiver: PusherReceiver, top: str = "", **app: Any) -> str:
    """Top-level keys (``top``), the namespace ``ns``, the app mapped into it."""
    app.setdefault("namespace", "ns")
    app.setdefault("client_events", True)
    return (
        f'token_hmac_secret = "{TOKEN_SECRET}"\n'
        "webhook_max_backoff = 0.3\nwebhook_timeout = 1.0\n"
        + top
        + NAMESPACE
        + preceiver.app_config(**app)
    )


async def centrifugo(http: aiohttp.ClientSession, server: ServerProcess, user: str) -> WS:
    ws = await http.ws_connect(server.ws + "/connection/websocket")
    (reply,) = await call(ws, {"id": 1, "connect": {"token": mint(TOKEN_SECRET, user)}})
    assert "connect" in reply, reply
    return ws


async def command(ws: WS, n: int, method: str, params: dict[str, Any]) -> None:
    (reply,) = await call(ws, {"id": n, method: params})
    assert "error" not in reply, reply


class PusherClient:
    """A Pusher protocol 7 client on plain frames: enough to subscribe and send events."""

    def __init__(self, ws: WS, key: str, secret: str) -> None:
        self.ws, self.key, self.secret = ws, key, secret
        self.socket_id = ""

    async def recv(self) -> dict[str, Any]:
        msg = await asyncio.wait_for(self.ws.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def expect(self, event: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame["event"] == event:
                return frame
            assert frame["event"] != "pusher:error", frame

    async def subscribe(self, channel: str, member: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            channel_data = json.dumps(member) if member is not None else None
            data["auth"] = signing.channel_auth(
                self.key, self.secret, self.socket_id, channel, channel_data
            )
            if channel_data is not None:
                data["channel_data"] = channel_data
        await self.ws.send_str(json.dumps({"event": "pusher:subscribe", "data": data}))
        await self.expect("pusher_internal:subscription_succeeded")


async def pusher_client(
    http: aiohttp.ClientSession, server: ServerProcess, rec: PusherReceiver
) -> PusherClient:
    ws = await http.ws_connect(f"{server.ws}/app/{rec.key}?protocol=7&client=test&version=1")
    client = PusherClient(ws, rec.key, rec.secret)
    established = await client.expect("pusher:connection_established")
    client.socket_id = json.loads(established["data"])["socket_id"]
    return client


def assert_pushers_requests(rec: PusherReceiver) -> None:
    assert rec.requests and rec.bad_signatures == 0
    for request in rec.requests:
        assert request["valid"]
        assert request["headers"]["X-Pusher-Key"] == rec.key
        assert request["headers"]["Content-Type"] == "application/json"
        assert set(request["body"]) == {"time_ms", "events"}


async def test_occupancy_of_the_apps_channels_without_hubbubs_webhooks(
    start_server: StartServer, preceiver: PusherReceiver
) -> None:
    """No global webhook_url: the app still gets channel_occupied/vacated of its channels,
    under their Pusher names, and nothing of the channels that are not its own."""
    server = start_server(config=config(preceiver))
    async with aiohttp.ClientSession() as http:
        ws = await centrifugo(http, server, "ann")
        await command(ws, 2, "subscribe", {"channel": "ns:news"})
        await command(ws, 3, "subscribe", {"channel": "elsewhere"})
        await eventually(lambda: preceiver.of_type("channel_occupied"), what="occupied")
        await command(ws, 4, "unsubscribe", {"channel": "ns:news"})
        await eventually(lambda: preceiver.of_type("channel_vacated"), what="vacated")
        await ws.close()
    await asyncio.sleep(scaled(0.5))  # (time for anything else to arrive)
    assert preceiver.events == [
        {"name": "channel_occupied", "channel": "news"},
        {"name": "channel_vacated", "channel": "news"},
    ]
    assert_pushers_requests(preceiver)


async def test_both_kinds_of_webhooks_together(
    start_server: StartServer, preceiver: PusherReceiver
) -> None:
    """hubbub's webhooks (webhook_url) get their events as always, node names and all; the
    app gets its own."""
    own = Receiver()
    await own.up()
    try:
        top = f'webhook_url = "{own.url}"\nwebhook_secret = "{own.secret}"\n'
        server = start_server(config=config(preceiver, top))
        async with aiohttp.ClientSession() as http:
            ws = await centrifugo(http, server, "bo")
            await command(ws, 2, "subscribe", {"channel": "ns:news"})
            await ws.close()
            await eventually(lambda: own.of_type("channel_vacated"), what="hubbub's vacated")
            await eventually(lambda: preceiver.of_type("channel_vacated"), what="the app's")
        kinds = sorted(e["type"] for e in own.events.values())
        facts = ("connect", "subscribe", "channel_occupied", "unsubscribe", "channel_vacated")
        assert kinds == sorted([*facts, "disconnect"])
        assert {e["channel"] for e in own.of_type("channel_occupied")} == {"ns:news"}
        assert own.bad_signatures == 0
        assert [e["channel"] for e in preceiver.of_type("channel_occupied")] == ["news"]
        assert_pushers_requests(preceiver)
    finally:
        await own.down()


async def test_a_retried_webhook_has_a_fresh_time_and_a_valid_signature(
    start_server: StartServer, preceiver: PusherReceiver
) -> None:
    """The backend answers 500 first (after 0.2 s), then 200: the retried request carries
    the same events with a later time_ms, signed anew, and the library takes it."""
    preceiver.fail_first, preceiver.fail_delay = 1, 0.2
    server = start_server(config=config(preceiver, webhook_events=["channel_occupied"]))
    async with aiohttp.ClientSession() as http:
        ws = await centrifugo(http, server, "cy")
        await command(ws, 2, "subscribe", {"channel": "ns:news"})
        await eventually(lambda: preceiver.events, what="the retried webhook accepted")
        await ws.close()
    first, second = preceiver.requests[:2]
    assert first["body"]["events"] == second["body"]["events"] == preceiver.events
    assert second["body"]["time_ms"] >= first["body"]["time_ms"] + 200
    assert first["headers"]["X-Pusher-Signature"] != second["headers"]["X-Pusher-Signature"]
    assert_pushers_requests(preceiver)


async def test_member_client_event_and_cache_miss_from_pusher_clients(
    start_server: StartServer, preceiver: PusherReceiver
) -> None:
    """Pusher clients on /app/{key}: member_added/removed once per user, client_event with
    the data string and user_id on presence channels, cache_miss."""
    server = start_server(config=config(preceiver))
    async with aiohttp.ClientSession() as http:
        a = await pusher_client(http, server, preceiver)
        b = await pusher_client(http, server, preceiver)
        await a.subscribe("presence-room", {"user_id": "alice"})
        await b.subscribe("presence-room", {"user_id": "bob"})
        await a.subscribe("private-orders")
        await a.subscribe("cache-quotes")
        await b.ws.send_str(
            json.dumps({"event": "client-typing", "channel": "presence-room", "data": {"x": 1}})
        )
        await a.ws.send_str(
            json.dumps({"event": "client-note", "channel": "private-orders", "data": "hi"})
        )
        await eventually(lambda: len(preceiver.of_type("client_event")) == 2, what="client events")
        await b.ws.close()
        await eventually(lambda: preceiver.of_type("member_removed"), what="member_removed")
        await a.ws.close()
        await eventually(
            lambda: len(preceiver.of_type("channel_vacated")) == 3, what="the channels vacated"
        )
    assert sorted(e["user_id"] for e in preceiver.of_type("member_added")) == ["alice", "bob"]
    assert preceiver.of_type("member_removed", channel="presence-room") == [
        {"name": "member_removed", "channel": "presence-room", "user_id": user}
        for user in ("bob", "alice")  # (bob left first)
    ]
    assert preceiver.of_type("client_event", channel="presence-room") == [
        {
            "name": "client_event",
            "channel": "presence-room",
            "event": "client-typing",
            "data": '{"x":1}',
            "socket_id": b.socket_id,
            "user_id": "bob",
        }
    ]
    assert preceiver.of_type("client_event", channel="private-orders") == [
        {
            "name": "client_event",
            "channel": "private-orders",
            "event": "client-note",
            "data": "hi",
            "socket_id": a.socket_id,
        }
    ]
    assert preceiver.of_type("cache_miss") == [{"name": "cache_miss", "channel": "cache-quotes"}]
    assert sorted(e["channel"] for e in preceiver.of_type("channel_occupied")) == [
        "cache-quotes",
        "presence-room",
        "private-orders",
    ]
    assert_pushers_requests(preceiver)
