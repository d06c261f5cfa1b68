"""Positioning across nodes: a publication lost between the engine and a node (Redis pub/sub
and PostgreSQL NOTIFY deliver at most once) makes that node's positioned subscribers
resubscribe and recover it, instead of a silent gap (see tests/support/lossy.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.lossy import store_unannounced
from tests.support.proto import Observer, call, closed_with, connected
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

KEY = "positioning-api-key-0123456789"
SECRET = "p" * 40
CONFIG = f"""
presence_ttl = 3
token_hmac_secret = "{SECRET}"
[[namespaces]]
name = "h"
history_size = 100
history_ttl = 300

[[namespaces]]
name = "r"
history_size = 100
history_ttl = 300
force_recovery = true
"""


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def test_a_lost_publication_makes_positioned_subscribers_recover_it(
    start_server: StartServer, engine_url: str
) -> None:
    publisher, receiver = (
        start_server("--engine", engine_url, "--api-key", KEY, config=CONFIG) for _ in range(2)
    )
    channel = "h:feed"
    epoch = (await api(publisher, "publish", {"channel": channel, "data": {"n": 1}}))["epoch"]
    async with aiohttp.ClientSession() as http:
        observers = []
        for flags in ({"positioned": True}, {"recoverable": True}, {}):
            ws = await http.ws_connect(receiver.ws + "/connection/websocket")
            await connected(ws)
            obs = Observer(ws)
            reply = await obs.command("subscribe", {"channel": channel, **flags})
            assert reply["subscribe"].get("offset", 0) == (1 if flags else 0)
            observers.append(obs)
        positioned, recoverable, plain = observers
        await api(publisher, "publish", {"channel": channel, "data": {"n": 2}})
        for obs in observers:
            assert (await obs.push("pub", channel))["pub"]["data"] == {"n": 2}
        lost = await store_unannounced(engine_url, channel, '{"n":3}')
        assert lost == 3
        await api(publisher, "publish", {"channel": channel, "data": {"n": 4}})
        for obs in (positioned, recoverable):
            push = await obs.push("unsubscribe", channel)  # before 4 could reach it
            assert push["unsubscribe"]["code"] == 2500
            assert obs.pushes.empty(), "nothing after the gap reached it"
            reply = await obs.command(
                "subscribe", {"channel": channel, "recover": True, "offset": 2, "epoch": epoch}
            )
            result = reply["subscribe"]
            assert result["recovered"]
            assert [p["data"] for p in result["publications"]] == [{"n": 3}, {"n": 4}]
        # Not positioned: Centrifugo's at-most-once, the gap goes unnoticed.
        assert (await plain.push("pub", channel))["pub"]["data"] == {"n": 4}
        await api(publisher, "publish", {"channel": channel, "data": {"n": 5}})
        for obs in observers:
            assert (await obs.push("pub", channel))["pub"]["offset"] == 5
        health = await (await http.get(receiver.url + "/health")).json()
        assert health["connections"] == 3
        for obs in observers:
            obs.stop()
            await obs.ws.close()


async def test_a_lost_last_publication_is_found_by_the_periodic_check(
    start_server: StartServer, engine_url: str
) -> None:
    """Nothing follows the lost publication: the node reads the stream top of its quiet
    positioned channels every ``channel_position_check_delay`` and finds it behind."""
    config = "channel_position_check_delay = 0.3\n" + CONFIG
    publisher, receiver = (
        start_server("--engine", engine_url, "--api-key", KEY, config=config) for _ in range(2)
    )
    channel = "h:quiet"
    epoch = (await api(publisher, "publish", {"channel": channel, "data": {"n": 1}}))["epoch"]
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(receiver.ws + "/connection/websocket")
        await connected(ws)
        obs = Observer(ws)
        assert "error" not in await obs.command(
            "subscribe", {"channel": channel, "positioned": True}
        )
        await asyncio.sleep(1.0)  # a few quiet rounds: the position is right, nothing happens
        assert obs.pushes.empty()
        assert await store_unannounced(engine_url, channel, '{"n":2}') == 2
        push = await obs.push("unsubscribe", channel)
        assert push["unsubscribe"]["code"] == 2500
        reply = await obs.command(
            "subscribe", {"channel": channel, "recover": True, "offset": 1, "epoch": epoch}
        )
        assert [p["data"] for p in reply["subscribe"]["publications"]] == [{"n": 2}]
        obs.stop()
        await ws.close()


async def test_a_server_side_subscription_behind_a_gap_reconnects_and_recovers(
    start_server: StartServer, engine_url: str
) -> None:
    """The client cannot resubscribe a subscription the server made (a token's channels): it
    is disconnected with 3010 "insufficient state" instead (Centrifugo's rule), and its
    reconnect recovers the channel from the position it had."""
    publisher, receiver = (
        start_server("--engine", engine_url, "--api-key", KEY, config=CONFIG) for _ in range(2)
    )
    channel = "r:side"
    epoch = (await api(publisher, "publish", {"channel": channel, "data": {"n": 1}}))["epoch"]
    token = mint(SECRET, "sam", channels=[channel])
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(receiver.ws + "/connection/websocket")
        (reply,) = await call(ws, {"id": 1, "connect": {"token": token}})
        assert reply["connect"]["subs"][channel]["offset"] == 1
        assert await store_unannounced(engine_url, channel, '{"n":2}') == 2
        await api(publisher, "publish", {"channel": channel, "data": {"n": 3}})
        code, reason = await closed_with(ws)
        assert (code, reason) == (3010, "insufficient state")
        ws = await http.ws_connect(receiver.ws + "/connection/websocket")
        subs = {channel: {"recover": True, "offset": 1, "epoch": epoch}}
        (reply,) = await call(ws, {"id": 1, "connect": {"token": token, "subs": subs}})
        result = reply["connect"]["subs"][channel]
        assert result["recovered"]
        assert [p["data"] for p in result["publications"]] == [{"n": 2}, {"n": 3}]
        await ws.close()
