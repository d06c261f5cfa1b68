"""Positioning with centrifuge-python (both formats) on two nodes sharing Redis or PostgreSQL:
a publication lost between the engine and the subscriber's node (Redis pub/sub and PostgreSQL
NOTIFY deliver at most once; tests/support/lossy.py loses one on purpose) must not become a
silent gap. The node sends its positioned subscribers unsubscribe 2500, the SDK resubscribes
with recovery by itself, and its publication handler sees every publication exactly once, in
offset order."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from centrifuge import Client

from tests.conftest import StartServer
from tests.interop.test_centrifuge_python import JSON, PROTOBUF, Wire, negotiated, ready
from tests.interop.test_channel_semantics import Events
from tests.support.lossy import store_unannounced
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]


@pytest.fixture(params=[JSON, PROTOBUF], ids=lambda w: w.name)
def wire(request: pytest.FixtureRequest) -> Wire:
    return request.param  # type: ignore[no-any-return]


KEY = "sdk-positioning-api-key-0123456789"
CONFIG = """
[[namespaces]]
name = "h"
history_size = 100
history_ttl = 300

[[namespaces]]
name = "forced"
history_size = 100
history_ttl = 300
force_positioning = true
force_recovery = true
"""


async def publish(server: ServerProcess, channel: str, data: Any) -> dict[str, Any]:
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
    return body["result"]  # type: ignore[no-any-return]


#: (channel, subscription options, whether the subscriber is positioned)
SUBSCRIBERS: list[tuple[str, dict[str, Any], bool]] = [
    ("h:feed", {"positioned": True, "recoverable": True}, True),  # asks for it
    ("forced:feed", {}, True),  # the namespace forces it
    ("h:feed", {}, False),  # neither: Centrifugo's at-most-once, the gap goes unnoticed
]


async def test_a_lost_publication_is_recovered_by_the_sdk(
    start_server: StartServer, engine_url: str, wire: Wire
) -> None:
    publisher, receiver = (
        start_server("--engine", engine_url, "--api-key", KEY, config=CONFIG) for _ in range(2)
    )
    channels = sorted({channel for channel, _, _ in SUBSCRIBERS})
    epochs = {ch: (await publish(publisher, ch, {"n": 1}))["epoch"] for ch in channels}
    clients: list[Client] = []
    events: list[Events] = []
    try:
        for channel, options, _ in SUBSCRIBERS:
            client = Client(
                receiver.ws + "/connection/websocket",
                use_protobuf=wire.protobuf,
                min_reconnect_delay=0.05,
                max_reconnect_delay=0.3,
            )
            clients.append(client)
            await client.connect()
            await client.ready(scaled(10))
            assert negotiated(client) == wire.subprotocol
            events.append(Events(wire))
            await ready(
                client.new_subscription(channel, events[-1], min_resubscribe_delay=0.05, **options)
            )
        for channel in channels:
            await publish(publisher, channel, {"n": 2})
        for ev in events:
            assert await ev.take(1) == [(2, {"n": 2}, {})]
        for channel in channels:
            assert await store_unannounced(engine_url, channel, '{"n":3}') == 3
        for n in (4, 5):
            for channel in channels:
                await publish(publisher, channel, {"n": n})
        for ev, (channel, _, positioned) in zip(events, SUBSCRIBERS, strict=True):
            if positioned:
                got = await ev.take(3)
                assert got == [(n, {"n": n}, {}) for n in (3, 4, 5)], channel
                assert ev.subscribing == [0, 2500]  # subscribed, then resubscribed by itself
                last = ev.subscribed[-1]
                assert (last.was_recovering, last.recovered) == (True, True)
                assert last.stream_position is not None
                assert last.stream_position.epoch == epochs[channel]
            else:
                got = await ev.take(2)
                assert got == [(n, {"n": n}, {}) for n in (4, 5)], "3 was lost indeed"
                assert ev.subscribing == [0] and len(ev.subscribed) == 1
        for channel in channels:
            await publish(publisher, channel, {"n": 6})
        for ev in events:
            assert await ev.take(1) == [(6, {"n": 6}, {})]
        await asyncio.sleep(scaled(0.2))
        for ev in events:
            assert ev.pubs.empty() and not ev.errors and not ev.unsubscribed
    finally:
        for client in clients:
            await client.disconnect()
