"""Several `hubbub serve` processes sharing one engine: Redis or PostgreSQL (the tests start
their own redis-server and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import Observer, connected
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "cluster-api-key-0123456789"
CONFIG = "presence_ttl = 3\n"


def nodes(start_server: StartServer, engine_url: str, n: int) -> list[ServerProcess]:
    return [start_server("--engine", engine_url, "--api-key", KEY, config=CONFIG) for _ in range(n)]


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def test_publications_reach_every_node_once_in_one_order(
    start_server: StartServer, engine_url: str
) -> None:
    servers = nodes(start_server, engine_url, 3)
    async with aiohttp.ClientSession() as http:
        observers = []
        for server in servers * 2:  # two subscribers on each node
            ws = await http.ws_connect(server.ws + "/connection/websocket")
            await connected(ws)
            obs = Observer(ws)
            assert "error" not in await obs.command("subscribe", {"channel": "news"})
            observers.append(obs)
        publishers = observers[:3]  # one per node

        async def publish_from(obs: Observer, k: int) -> None:
            for n in range(20):
                reply = await obs.command("publish", {"channel": "news", "data": {"k": k, "n": n}})
                assert "error" not in reply

        await asyncio.gather(*(publish_from(o, k) for k, o in enumerate(publishers)))
        seen = []
        for obs in observers:
            got = [(await obs.push("pub", "news"))["pub"] for _ in range(60)]
            seen.append([(p["offset"], p["data"]["k"], p["data"]["n"]) for p in got])
            assert obs.pushes.empty() or all("pub" not in x for x in obs.pushes._queue)  # type: ignore[attr-defined]
        assert all(s == seen[0] for s in seen), "every subscriber sees one order"
        assert [o for o, _, _ in seen[0]] == list(range(1, 61)), "each publication once"
        for k in range(3):
            assert [n for _, kk, n in seen[0] if kk == k] == list(range(20))

        # presence and stats are the same from every node; channels and info see the cluster
        stats = [await api(s, "presence_stats", {"channel": "news"}) for s in servers]
        assert all(st == {"num_clients": 6, "num_users": 0} for st in stats)
        presences = [await api(s, "presence", {"channel": "news"}) for s in servers]
        assert all(set(p["presence"]) == set(presences[0]["presence"]) for p in presences)
        for _ in range(int(scaled(50))):
            info = await api(servers[0], "info", {})
            channels = await api(servers[1], "channels", {})
            if (
                sorted(n["num_clients"] for n in info["nodes"]) == [2, 2, 2]
                and channels["channels"].get("news", {}).get("num_clients") == 6
            ):
                break  # each node's counts reach the others with its next heartbeat
            await asyncio.sleep(0.1)
        assert sorted(n["num_clients"] for n in info["nodes"]) == [2, 2, 2]
        assert channels["channels"]["news"]["num_clients"] == 6
        for obs in observers:
            obs.stop()
            await obs.ws.close()


async def test_history_and_recovery_across_nodes(
    start_server: StartServer, engine_url: str
) -> None:
    """Published on one node, recovered from another: the streams live in the engine."""
    a, b = nodes(start_server, engine_url, 2)
    async with aiohttp.ClientSession() as http:
        wa = await http.ws_connect(a.ws + "/connection/websocket")
        await connected(wa)
        pub = Observer(wa)
        sub_reply = await pub.command("subscribe", {"channel": "log"})
        epoch = sub_reply["subscribe"]["epoch"]
        for n in range(5):
            await pub.command("publish", {"channel": "log", "data": n})
        wb = await http.ws_connect(b.ws + "/connection/websocket")
        await connected(wb)
        other = Observer(wb)
        reply = await other.command(
            "subscribe", {"channel": "log", "recover": True, "epoch": epoch, "offset": 2}
        )
        result = reply["subscribe"]
        assert result["recovered"] is True
        assert [p["data"] for p in result["publications"]] == [2, 3, 4]
        health = json.loads(await (await http.get(b.url + "/health")).text())
        kind = engine_url.split(":", 1)[0]
        assert health["engine"] == {"kind": kind, "connected": True}
        for obs in (pub, other):
            obs.stop()
            await obs.ws.close()


async def test_two_workers_share_channels(start_server: StartServer, engine_url: str) -> None:
    """--workers 2: connections land on both processes and still exchange messages."""
    server = start_server("--engine", engine_url, "--workers", "2", "--api-key", KEY)
    async with aiohttp.ClientSession() as http:
        observers = []
        for _ in range(12):
            ws = await http.ws_connect(server.ws + "/connection/websocket")
            await connected(ws)
            obs = Observer(ws)
            assert "error" not in await obs.command("subscribe", {"channel": "w"})
            observers.append(obs)
        for _ in range(int(scaled(50))):
            info = await api(server, "info", {})
            if len(info["nodes"]) == 2 and sum(n["num_clients"] for n in info["nodes"]) == 12:
                break
            await asyncio.sleep(0.1)
        counts = sorted(n["num_clients"] for n in info["nodes"])
        assert len(counts) == 2 and sum(counts) == 12 and counts[0] > 0, counts
        await observers[0].command("publish", {"channel": "w", "data": "hello workers"})
        for obs in observers:
            assert (await obs.push("pub", "w"))["pub"]["data"] == "hello workers"
            obs.stop()
            await obs.ws.close()
    assert server.terminate() == 0


def test_workers_need_a_shared_engine(start_server: StartServer) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--workers", "2", "--port", "0"],
        capture_output=True, text=True, timeout=scaled(30),
    )  # fmt: skip
    assert out.returncode == 1
    assert "--engine redis://" in out.stderr


async def test_a_node_that_stops_leaves_the_cluster_at_once(
    start_server: StartServer, engine_url: str
) -> None:
    """A node stopped gracefully withdraws its announcement (Centrifugo's shutdown control
    command): the others neither list it in ``info`` nor wait for its answer to
    ``connections`` (which failed with 100 until its announcement expired, 10 s later)."""
    staying, leaving = nodes(start_server, engine_url, 2)
    for _ in range(int(scaled(50))):
        if len((await api(staying, "info", {}))["nodes"]) == 2:
            break
        await asyncio.sleep(0.1)
    assert (await api(staying, "connections", {"user": "u"})) == {"connections": {}}
    assert leaving.terminate() == 0
    assert len((await api(staying, "info", {}))["nodes"]) == 1
    assert (await api(staying, "connections", {"user": "u"})) == {"connections": {}}
