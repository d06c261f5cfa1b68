"""Failures in a cluster: the engine (Redis, PostgreSQL) restarted under load, a node killed."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import aiohttp
import pytest

from tests.conftest import StartServer, need_binary, throwaway_postgres
from tests.support.postgres import PostgresServer
from tests.support.proxy import FlakyProxy
from tests.support.redis import RedisServer
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


KEY = "cluster-api-key-0123456789"
CONFIG = "presence_ttl = 3\nclient_command_rate = 1e6\nclient_command_burst = 100000\n"


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    server = RedisServer(need_binary("redis-server"), durable=True)
    try:
        yield server
    finally:
        server.destroy()


class Subscriber:
    """`hubbub subscribe` (centrifuge-python inside) in its own process, lines collected.
    Every one still running at the end of a test is stopped (``stop_subscribers``)."""

    running: ClassVar[list[Subscriber]] = []

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.got: list[tuple[int, Any]] = []
        self._reader = asyncio.create_task(self._read())
        Subscriber.running.append(self)

    @classmethod
    async def start(cls, url: str, channel: str) -> Subscriber:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub", "subscribe", channel, "--url", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            obj = json.loads(line)
            self.got.append((obj["offset"], obj["data"]))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), scaled(10))
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader


@pytest.fixture(autouse=True)
async def stop_subscribers() -> AsyncIterator[None]:
    """A failing test must not leave its `hubbub subscribe` processes running."""
    yield
    while Subscriber.running:
        await Subscriber.running.pop().stop()


async def subscribed(server_url: str, channel: str, count: int) -> None:
    """Wait until the cluster counts ``count`` subscribers of ``channel``."""
    for _ in range(int(scaled(100))):
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                server_url + "/api/presence_stats",
                json={"channel": channel},
                headers={"X-API-Key": KEY},
            ) as resp,
        ):
            if (await resp.json())["result"]["num_clients"] == count:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{channel} never had {count} subscribers")


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, since the test stops it."""
    yield from throwaway_postgres()


async def test_redis_restart_under_load(
    start_server: StartServer, durable_redis: RedisServer
) -> None:
    await restart_under_load(
        start_server, durable_redis.url, durable_redis.stop, durable_redis.start
    )


async def test_postgres_restart_under_load(
    start_server: StartServer, own_postgres: PostgresServer
) -> None:
    await restart_under_load(
        start_server, own_postgres.url, lambda: own_postgres.stop("immediate"), own_postgres.start
    )


async def restart_under_load(
    start_server: StartServer, url: str, stop: Callable[[], None], start: Callable[[], None]
) -> None:
    """The engine is killed and restarted while publishes flow: nothing acknowledged is lost,
    the subscriber recovers, publishing works again within 10 seconds."""
    a = start_server("--engine", url, "--api-key", KEY, config=CONFIG)
    b = start_server("--engine", url, "--api-key", KEY, config=CONFIG)
    collector = await Subscriber.start(b.url, "load")
    await subscribed(b.url, "load", 1)
    acked: list[tuple[int, int]] = []
    failures = 0
    restarted_at = 0.0
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:

        async def publish(n: int) -> None:
            nonlocal failures
            try:
                async with http.post(
                    a.url + "/api/publish",
                    json={"channel": "load", "data": n},
                    headers={"X-API-Key": KEY},
                    timeout=aiohttp.ClientTimeout(total=scaled(10)),
                ) as resp:
                    body = await resp.json()
            except (aiohttp.ClientError, TimeoutError):
                failures += 1
                return
            if "result" in body:
                acked.append((body["result"]["offset"], n))
            else:
                assert body["error"]["code"] == 100  # temporary: never an acknowledgement
                failures += 1

        n = 0
        for _ in range(60):
            await publish(n := n + 1)
        stop()
        for _ in range(10):
            await publish(n := n + 1)
        start()
        restarted_at = loop.time()
        recovered_at = None
        while loop.time() - restarted_at < scaled(10):
            before = len(acked)
            await publish(n := n + 1)
            if len(acked) > before and recovered_at is None:
                recovered_at = loop.time()
            if recovered_at is not None and loop.time() - recovered_at > 1:
                break
            await asyncio.sleep(0.05)
        assert recovered_at is not None, "publishing never worked again"
        assert recovered_at - restarted_at < scaled(10)
    assert failures >= 10  # the outage was real
    acked_data = {d for _, d in acked}
    for _ in range(int(scaled(100))):
        if acked_data <= {d for _, d in collector.got}:
            break
        await asyncio.sleep(0.1)
    got = [d for _, d in collector.got]
    assert acked_data <= set(got), f"missing {sorted(acked_data - set(got))[:10]}"
    assert len(got) == len(set(got)), "nothing twice"
    offsets = [o for o, _ in collector.got]
    assert offsets == sorted(offsets)
    await collector.stop()


async def test_killed_node_clients_move_and_presence_expires(
    start_server: StartServer, engine_url: str
) -> None:
    """kill -9 of a node: its clients reconnect to another node and recover; the presence
    entries it held expire."""
    a = start_server("--engine", engine_url, "--api-key", KEY, config=CONFIG)
    b = start_server("--engine", engine_url, "--api-key", KEY, config=CONFIG)
    proxy = await FlakyProxy(a.port).start()  # the "load balancer" in front of node a
    collector = await Subscriber.start(f"http://127.0.0.1:{proxy.port}", "room")
    stayer = await Subscriber.start(b.url, "room")
    await subscribed(b.url, "room", 2)

    async def api(method: str, params: dict[str, Any]) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.post(b.url + f"/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
        ):
            return (await resp.json())["result"]

    for n in range(3):
        await api("publish", {"channel": "room", "data": n})
    for _ in range(int(scaled(100))):
        if len(collector.got) == 3:
            break
        await asyncio.sleep(0.05)
    stats = await api("presence_stats", {"channel": "room"})
    assert stats["num_clients"] == 2
    proxy.target_port = b.port  # new connections go to node b
    a.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(a.proc.wait, scaled(10))
    for n in range(3, 6):
        await api("publish", {"channel": "room", "data": n})
    for _ in range(int(scaled(200))):
        if len(collector.got) >= 6:
            break
        await asyncio.sleep(0.05)
    assert [d for _, d in collector.got] == [0, 1, 2, 3, 4, 5]
    # node a's presence entry for the moved client expires (presence_ttl 3 s); b holds the new one
    for _ in range(int(scaled(100))):
        presence = await api("presence", {"channel": "room"})
        if len(presence["presence"]) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(presence["presence"]) == 2
    await collector.stop()
    await stayer.stop()
    await proxy.close()
