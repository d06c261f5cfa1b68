"""Positioning across nodes: a publication lost between the engine and a node (Redis pub/sub
and PostgreSQL NOTIFY deliver at most once) makes that node's positioned subscribers
resubscribe and recover it, instead of a silent gap (see tests/support/lossy.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.lossy import store_unannounced
from tests.support.proto import Observer, call, closed_with, connected
from tests.support.server import ServerProcess
from tests.support.timing import scaled

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


async def _normal_flows(publisher: ServerProcess, receiver: ServerProcess) -> None:
    """Positioned and recoverable subscribers on both servers while the publisher's node
    sees pipelined client publishes, API publishes from the other node, idempotent repeats,
    skip_history publishes and a history_remove; then quiet rounds of the position check.
    None of it loses a publication, so no subscriber may be told to resubscribe."""
    channel = "h:normal"
    await api(publisher, "publish", {"channel": channel, "data": "first"})
    async with aiohttp.ClientSession() as http:
        observers = []
        for server in (publisher, receiver):
            for flags in ({"positioned": True}, {"recoverable": True}):
                ws = await http.ws_connect(server.ws + "/connection/websocket")
                await connected(ws)
                obs = Observer(ws)
                reply = await obs.command("subscribe", {"channel": channel, **flags})
                assert reply["subscribe"]["offset"] == 1, reply
                observers.append(obs)
        ws = await http.ws_connect(publisher.ws + "/connection/websocket")
        await connected(ws)
        sent: list[Any] = []

        async def pipelined() -> None:
            frames = [
                json.dumps({"id": 10 + i, "publish": {"channel": channel, "data": f"p{i}"}})
                for i in range(150)
            ]
            sent.extend(f"p{i}" for i in range(150))
            await ws.send_str("\n".join(frames))

        async def from_the_api() -> None:
            for i in range(30):
                await api(receiver, "publish", {"channel": channel, "data": f"a{i}"})
                sent.append(f"a{i}")
                if i % 10 == 0:  # the same key again: no new publication
                    params = {"channel": channel, "data": f"i{i}", "idempotency_key": f"k{i}"}
                    first = await api(publisher, "publish", params)
                    again = await api(receiver, "publish", params)
                    assert again["offset"] == first["offset"]
                    sent.append(f"i{i}")
                if i % 7 == 0:
                    params = {"channel": channel, "data": f"s{i}", "skip_history": True}
                    await api(publisher, "publish", params)
                    sent.append(f"s{i}")

        await asyncio.gather(pipelined(), from_the_api())
        await api(receiver, "history_remove", {"channel": channel})
        for i in range(3):
            await api(publisher, "publish", {"channel": channel, "data": f"r{i}"})
            sent.append(f"r{i}")
        await asyncio.sleep(scaled(3))  # quiet: several rounds of the position check
        for obs in observers:
            pushes = []
            while not obs.pushes.empty():
                pushes.append(obs.pushes.get_nowait())
            assert not [p for p in pushes if "unsubscribe" in p], pushes[-5:]
            got = [p["pub"]["data"] for p in pushes if "pub" in p]
            assert sorted(got) == sorted(sent), (len(got), len(sent))
            obs.stop()
        await ws.close()


@pytest.mark.parametrize("history", ["memory", "sqlite", "postgresql"])
async def test_normal_publish_flows_never_make_positioned_subscribers_resubscribe(
    start_server: StartServer, history: str, request: pytest.FixtureRequest
) -> None:
    """One node with a local broker and each history store (see :func:`_normal_flows`)."""
    args = ["--api-key", KEY]
    if history == "memory":
        args += ["--history", "memory"]
    elif history == "postgresql":
        args += ["--history", request.getfixturevalue("postgres_url")]
    server = start_server(*args, config=CONFIG)
    await _normal_flows(server, server)


@pytest.mark.parametrize("topology", ["2nodes", "workers2"])
async def test_normal_publish_flows_never_make_positioned_subscribers_resubscribe_across_nodes(
    start_server: StartServer, engine_url: str, topology: str
) -> None:
    """Two nodes (or one server with two workers) on a cluster engine, the position check
    every 0.5 s (see :func:`_normal_flows`)."""
    config = "channel_position_check_delay = 0.5\n" + CONFIG
    args = ["--engine", engine_url, "--api-key", KEY]
    if topology == "workers2":
        server = start_server(*args, "--workers", "2", config=config)
        await _normal_flows(server, server)
        return
    publisher, receiver = (start_server(*args, config=config) for _ in range(2))
    await _normal_flows(publisher, receiver)
