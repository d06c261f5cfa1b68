"""Acknowledged means durable: kill -9 mid-stream, restart, nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import call, connected, raw_client
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

CONFIG = """
client_command_rate = 1e6
client_command_burst = 100000
[channel]
history_size = 20000
history_ttl = 3600
force_recovery = true
"""
PUBLISHERS = 5
TOTAL = 5000
KILL_AFTER = 2000


def store_args(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    if kind == "sqlite":
        return []  # the default: SQLite in the data dir the fixture gives every server
    return ["--history", request.getfixturevalue("postgres_url")]


async def read_all(server: ServerProcess, channel: str) -> tuple[list[dict[str, Any]], str, int]:
    """Every publication in history, oldest first, page by page (1000 a call)."""
    async with raw_client(server) as ws:
        await connected(ws)
        pubs: list[dict[str, Any]] = []
        since = 0
        n = 2
        while True:
            (reply,) = await call(
                ws,
                {
                    "id": n,
                    "history": {"channel": channel, "limit": 1000, "since": {"offset": since}},
                },
            )
            n += 1
            result = reply["history"]
            pubs += result["publications"]
            if not result["publications"]:
                return pubs, result["epoch"], result["offset"]
            since = result["publications"][-1]["offset"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_kill_9_loses_no_acknowledged_publication(
    start_server: StartServer, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """5 publishers with acknowledgements, kill -9 mid-stream, restart on the same store:
    every acknowledged publication is in history once, offsets have no gap, and a subscriber
    recovers from its last seen offset without gaps or duplicates."""
    args = [*store_args(kind, tmp_path, request), "--data-dir", str(tmp_path / "data")]
    server = start_server(*args, config=CONFIG)
    acked: set[tuple[int, int]] = set()
    seen: list[int] = []
    epoch = ""
    killed = asyncio.Event()
    subscribed = asyncio.Event()

    async def publisher(p: int) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(server.ws + "/connection/websocket") as ws,
        ):
            await connected(ws)
            for n in range(TOTAL // PUBLISHERS):
                cmd = {"id": 10 + n, "publish": {"channel": "crash", "data": {"p": p, "n": n}}}
                try:
                    (reply,) = await call(ws, cmd)
                except (AssertionError, TimeoutError, aiohttp.ClientError, ConnectionError):
                    return  # the server died under us
                assert "error" not in reply, reply
                acked.add((p, n))
                if len(acked) >= KILL_AFTER and not killed.is_set():
                    server.proc.send_signal(signal.SIGKILL)
                    killed.set()

    async def subscriber() -> None:
        nonlocal epoch
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(server.ws + "/connection/websocket") as ws,
        ):
            await connected(ws)
            (reply,) = await call(ws, {"id": 2, "subscribe": {"channel": "crash"}})
            epoch = reply["subscribe"]["epoch"]
            subscribed.set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                for line in msg.data.split("\n"):
                    pub = json.loads(line).get("push", {}).get("pub")
                    if pub:
                        seen.append(pub["offset"])

    sub_task = asyncio.create_task(subscriber())
    try:
        # Publishing starts once the subscriber is subscribed (it must see offset 1 onwards).
        await asyncio.wait_for(subscribed.wait(), scaled(10))
        await asyncio.wait_for(
            asyncio.gather(*(publisher(p) for p in range(PUBLISHERS))), scaled(120)
        )
        assert killed.is_set()
        await asyncio.wait_for(sub_task, scaled(10))
    finally:
        sub_task.cancel()
    await asyncio.to_thread(server.proc.wait, scaled(10))

    restarted = start_server(*args, config=CONFIG)
    pubs, epoch_after, top = await read_all(restarted, "crash")
    offsets = [p["offset"] for p in pubs]
    assert offsets == list(range(1, top + 1)), "offsets must be gap-free and in order"
    stored = [(p["data"]["p"], p["data"]["n"]) for p in pubs]
    assert len(stored) == len(set(stored)), "no publication twice"
    assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged publications lost"
    assert epoch_after == epoch
    assert seen == list(range(1, len(seen) + 1))

    # The subscriber comes back with its last position and gets exactly the rest.
    last = seen[-1] if seen else 0
    async with raw_client(restarted) as ws:
        await connected(ws)
        (reply,) = await call(
            ws,
            {
                "id": 2,
                "subscribe": {"channel": "crash", "recover": True, "epoch": epoch, "offset": last},
            },
        )
    result = reply["subscribe"]
    if top - last <= 300:  # recovery_max_publications
        assert result["recovered"] is True
        assert [p["offset"] for p in result.get("publications", [])] == list(
            range(last + 1, top + 1)
        )
    else:
        assert result["recovered"] is False
        assert "publications" not in result


async def test_store_outage_fails_publishes_and_recovers(
    start_server: StartServer, postgres: Any, postgres_url: str
) -> None:
    """PostgreSQL stops mid-run: publishes get the temporary error (never an ack), clients
    stay connected; when it is back, publishing works again."""
    server = start_server("--history", postgres_url, config=CONFIG)
    async with raw_client(server) as sub, raw_client(server) as pub:
        await connected(sub)
        await connected(pub)
        await call(sub, {"id": 2, "subscribe": {"channel": "o"}})
        (ok,) = await call(pub, {"id": 2, "publish": {"channel": "o", "data": 1}})
        assert ok == {"id": 2, "publish": {}}
        postgres.stop()
        try:
            (failed,) = await call(pub, {"id": 3, "publish": {"channel": "o", "data": 2}})
            assert failed["error"] == {
                "code": 100,
                "message": "internal server error",
                "temporary": True,
            }
            (ping,) = await call(sub, {"id": 3, "ping": {}})  # still served
            assert ping == {"id": 3, "ping": {}}
        finally:
            postgres.start()
        ids = iter(range(10, 1_000_000))

        async def published() -> bool:
            (reply,) = await call(pub, {"id": next(ids), "publish": {"channel": "o", "data": 3}})
            return "error" not in reply

        await eventually(published, 10, interval=0.1, what="publishing working again")
        (history,) = await call(sub, {"id": 4, "history": {"channel": "o", "limit": 10}})
        assert [p["data"] for p in history["history"]["publications"]] == [1, 3]


async def test_recovery_beyond_retention_is_not_recovered(start_server: StartServer) -> None:
    """history_size 3: a client that missed more than 3 gets recovered false and nothing;
    one that missed 3 gets them."""
    server = start_server(
        config="[channel]\nhistory_size = 3\nhistory_ttl = 60\nforce_recovery = true\n"
    )
    async with raw_client(server) as ws:
        await connected(ws)
        (sub,) = await call(ws, {"id": 2, "subscribe": {"channel": "r"}})
        epoch = sub["subscribe"]["epoch"]
        for i in range(10):
            await call(ws, {"id": 10 + i, "publish": {"channel": "r", "data": i}})
        await call(ws, {"id": 3, "unsubscribe": {"channel": "r"}})
        recover = {"channel": "r", "recover": True, "epoch": epoch}
        (far,) = await call(ws, {"id": 4, "subscribe": {**recover, "offset": 2}})
        assert far["subscribe"]["recovered"] is False
        assert "publications" not in far["subscribe"]
        await call(ws, {"id": 5, "unsubscribe": {"channel": "r"}})
        (near,) = await call(ws, {"id": 6, "subscribe": {**recover, "offset": 7}})
        assert near["subscribe"]["recovered"] is True
        assert [p["data"] for p in near["subscribe"]["publications"]] == [7, 8, 9]
