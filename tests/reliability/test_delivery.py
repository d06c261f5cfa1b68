"""Delivery under load and failures, counted by the delivery checker: nothing acknowledged
lost, nothing duplicated or reordered, offsets without gaps (see conftest.py for the scales).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartServer, need_binary
from tests.reliability.checker import DeliveryChecker
from tests.reliability.client import Publisher, Subscriber, api
from tests.reliability.conftest import API_KEY, CONFIG, record, scale
from tests.support.proxy import FlakyProxy
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

PATH = "/connection/websocket"


def url(server: ServerProcess) -> str:
    return server.ws + PATH


async def top(server: ServerProcess, channel: str) -> int:
    """The channel's stream position (its last offset)."""
    result = await api(server.url, "history", {"channel": channel, "limit": 0}, API_KEY)
    return int(result["offset"])


async def settle(subscribers: list[Subscriber], offset: int) -> None:
    """Until every subscriber reached ``offset`` (the stream's top once publishing ended)."""
    await asyncio.gather(*(s.wait_for_offset(offset, within=60) for s in subscribers))


async def test_fan_out_to_many_subscribers(start_server: StartServer) -> None:
    """200 x 20,000 (long), on the embedded default (SQLite history), half the subscribers
    with permessage-deflate, a third speaking Protobuf."""
    server = start_server(config=CONFIG)
    subscribers_n, publications = scale(50, 200), scale(2_000, 20_000)
    checker = DeliveryChecker()
    subs = [
        await Subscriber(
            f"s{i}", [url(server)], "fan", checker, compress=bool(i % 2), protobuf=i % 3 == 2
        ).start()
        for i in range(subscribers_n)
    ]
    publisher = await Publisher("p", url(server), "fan", checker).start()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await publisher.publish(publications, rate=4_000)
    await publisher.wait_answered()
    await settle(subs, await top(server, "fan"))
    elapsed = loop.time() - began
    for sub in subs:
        await sub.stop()
    await publisher.close()
    report = checker.report(contiguous_offsets=True)
    record(
        "fan-out",
        report,
        subscribers=subscribers_n,
        publications=publications,
        deliveries_per_s=round(report.delivered / elapsed),
    )
    assert report.clean, report
    assert report.delivered == subscribers_n * publications


@pytest.mark.parametrize("engine", ["redis", "postgresql"])
async def test_concurrent_publishes_through_two_nodes_get_offsets_one_to_n(
    start_server: StartServer, request: pytest.FixtureRequest, engine: str
) -> None:
    """Four publishers on two nodes at once: the acknowledged offsets are 1..N exactly, and
    a subscriber on each node sees them all in that order."""
    if engine == "redis":
        engine_url = request.getfixturevalue("redis_server").url
    else:
        engine_url = request.getfixturevalue("postgres_url")
    nodes = [start_server("--engine", engine_url, config=CONFIG) for _ in range(2)]
    per_publisher = scale(250, 5_000)
    checker = DeliveryChecker()
    subs = [
        await Subscriber(f"s{i}", [url(n)], "race", checker).start() for i, n in enumerate(nodes)
    ]
    offsets: list[int] = []

    async def publisher(name: str, node: ServerProcess) -> None:
        for seq in range(per_publisher):
            params = {"channel": "race", "data": {"p": name, "s": seq}}
            result = await api(node.url, "publish", params, API_KEY)
            checker.published(name, seq, acked=True)
            offsets.append(result["offset"])

    await asyncio.gather(*(publisher(f"p{i}", nodes[i % 2]) for i in range(4)))
    total = 4 * per_publisher
    await settle(subs, total)
    for s in subs:
        await s.stop()
    report = checker.report(contiguous_offsets=True)
    record(f"concurrent-publishes-{engine}", report, publications=total)
    assert sorted(offsets) == list(range(1, total + 1))
    assert report.clean, report


def engine_args(request: pytest.FixtureRequest, engine: str) -> list[str]:
    """``hubbub serve`` arguments for ``engine``: the embedded default (SQLite history),
    the Redis engine or the PostgreSQL engine (fresh for this test)."""
    if engine == "redis":
        return ["--engine", request.getfixturevalue("redis_server").url]
    if engine == "pgengine":
        return ["--engine", request.getfixturevalue("postgres_url")]
    return []


@pytest.mark.parametrize("engine", ["sqlite", "redis", "pgengine"])
async def test_recovery_storm(
    start_server: StartServer, request: pytest.FixtureRequest, engine: str
) -> None:
    """10 subscribers behind a proxy that cuts every connection every 500 ms, 8 times, while
    a publisher publishes every millisecond: each recovers, nothing lost or doubled (a third
    of them over Protobuf)."""
    server = start_server(*engine_args(request, engine), config=CONFIG)
    proxy = await FlakyProxy(server.port).start()
    checker = DeliveryChecker()
    proxied = f"ws://127.0.0.1:{proxy.port}{PATH}"
    try:
        subs = [
            await Subscriber(
                f"s{i}", [proxied], "storm", checker, compress=bool(i % 2), protobuf=i % 3 == 2
            ).start()
            for i in range(10)
        ]
        publisher = await Publisher("p", url(server), "storm", checker).start()
        cuts = scale(8, 40)
        publishing = asyncio.create_task(publisher.publish(cuts * 500, rate=1_000))
        for _ in range(cuts):
            await asyncio.sleep(0.5)
            proxy.cut()
            await asyncio.sleep(0.02)
            proxy.restore()
        await publishing
        await publisher.wait_answered()
        await settle(subs, await top(server, "storm"))
        for sub in subs:
            await sub.stop()
        await publisher.close()
    finally:
        await proxy.close()
    report = checker.report(contiguous_offsets=True)
    reconnects = sum(s.connects - 1 for s in subs)
    unrecovered = sum(s.unrecovered for s in subs)
    record(
        f"recovery-storm-{engine}",
        report,
        cuts=cuts,
        reconnects=reconnects,
        unrecovered=unrecovered,
    )
    assert reconnects >= cuts * len(subs) // 2, "the proxy did cut the subscribers"
    assert unrecovered == 0
    assert report.clean, report


async def test_subscribe_history_race(start_server: StartServer) -> None:
    """300 subscribers join while 2,000 publications a second come in: each one's stream
    continues exactly after the position its subscribe reply gave (no gap, no double)."""
    server = start_server(config=CONFIG)
    joins = scale(100, 300)
    checker = DeliveryChecker()
    publisher = await Publisher("p", url(server), "race", checker).start()
    seconds = scale(3, 8)
    publishing = asyncio.create_task(publisher.publish(seconds * 2_000, rate=2_000))
    subs: list[Subscriber] = []
    for i in range(joins):
        sub = await Subscriber(f"s{i}", [url(server)], "race", checker).start()
        # One publisher on a new channel: its seq n has offset n + 1, so the subscriber is
        # owed from the seq after its position.
        assert sub.first_offset is not None
        checker.owed_from(sub.name, "p", sub.first_offset)
        subs.append(sub)
        await asyncio.sleep(seconds / joins * random.random())
    await publishing
    await publisher.wait_answered()
    last = await top(server, "race")
    await settle(subs, last)
    for sub in subs:
        await sub.stop()
    await publisher.close()
    report = checker.report(contiguous_offsets=True)
    record("subscribe-history-race", report, joins=joins, publications=last)
    assert report.clean, report
    for sub in subs:
        assert sub.first_offset is not None
        expected = last - sub.first_offset
        assert sub.count == expected, f"{sub.name}: {sub.count} after {sub.first_offset}"


def kill_pubsub_clients(redis: RedisServer) -> int:
    """CLIENT KILL TYPE pubsub on the test's Redis: as an evicting Redis does."""
    with socket.create_connection(("127.0.0.1", redis.port), timeout=2) as s:
        s.sendall(b"CLIENT KILL TYPE pubsub\r\n")
        answer = s.recv(64)
    assert answer.startswith(b":"), answer
    return int(answer[1:].split(b"\r")[0])


async def test_redis_evicting_the_nodes_pubsub_connection(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """The node's pub/sub connection is killed three times under load (as Redis does with
    client-output-buffer-limit): the node resubscribes, its clients recover, nothing lost."""
    nodes = [start_server("--engine", redis_server.url, config=CONFIG) for _ in range(2)]
    checker = DeliveryChecker()
    subs = [
        await Subscriber(f"s{i}", [url(nodes[i % 2])], "evict", checker).start() for i in range(6)
    ]
    publisher = await Publisher("p", url(nodes[0]), "evict", checker).start()
    kills = scale(3, 10)
    publishing = asyncio.create_task(publisher.publish(kills * 1_000, rate=1_000))
    killed = 0
    for _ in range(kills):
        await asyncio.sleep(0.8)
        killed += kill_pubsub_clients(redis_server)
    await publishing
    await publisher.wait_answered()
    await settle(subs, await top(nodes[0], "evict"))
    for sub in subs:
        await sub.stop()
    await publisher.close()
    report = checker.report(contiguous_offsets=True)
    record("redis-evicts-pubsub", report, kills=kills, connections_killed=killed)
    assert killed >= kills
    assert sum(s.unrecovered for s in subs) == 0
    assert report.clean, report


async def history_of(server: ServerProcess, channel: str) -> list[tuple[str, int, int]]:
    """Every publication in the channel's history: (publisher, seq, offset), oldest first."""
    out: list[tuple[str, int, int]] = []
    since = 0
    while True:
        params = {"channel": channel, "limit": 1000, "since": {"offset": since}}
        result = await api(server.url, "history", params, API_KEY)
        pubs = result["publications"]
        if not pubs:
            return out
        out += [(p["data"]["p"], p["data"]["s"], p["offset"]) for p in pubs]
        since = pubs[-1]["offset"]


@pytest.mark.parametrize("store", ["sqlite", "postgresql", "pgengine"])
async def test_kill_9_three_times_loses_nothing_acknowledged(
    start_server: StartServer, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    """kill -9 three times while a pipelined publisher is acknowledged, restarting on the same
    store each time: every acknowledged publication is in history exactly once, offsets run
    1..N without a gap (publications never acknowledged may or may not be there)."""
    if store == "sqlite":
        args: list[str] = []
    elif store == "postgresql":
        args = ["--history", request.getfixturevalue("postgres_url")]
    else:
        args = ["--engine", request.getfixturevalue("postgres_url")]
    args += ["--data-dir", str(tmp_path / "kept")]
    config = CONFIG
    per_round = scale(1_000, 17_000)
    checker = DeliveryChecker()
    for round_ in range(3):
        server = start_server(*args, config=config)
        publisher = await Publisher(f"p{round_}", url(server), "crash", checker).start()
        publishing = asyncio.create_task(publisher.publish(per_round, rate=10_000))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(30)
        while publisher.acked < per_round // 2:
            assert loop.time() < deadline, f"only {publisher.acked} acknowledged"
            await asyncio.sleep(0.005)
        await asyncio.sleep(random.random() * 0.02)  # anywhere in a tick: mid-commit too
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
            await publishing
        await publisher.close()
    survivor = start_server(*args, config=config)
    stored = await history_of(survivor, "crash")
    checker.subscriber("history")
    checker.received_all("history", stored)
    report = checker.report(contiguous_offsets=True)
    record(f"kill-9-x3-{store}", report, stored=len(stored))
    assert [o for _, _, o in stored] == list(range(1, len(stored) + 1)), "offsets 1..N"
    assert report.lost == 0 and report.duplicated == 0, report


@pytest.mark.parametrize("engine", ["redis", "pgengine"])
async def test_a_killed_nodes_clients_move_and_recover(
    start_server: StartServer, request: pytest.FixtureRequest, engine: str
) -> None:
    """500 clients (long; 100 in make test) on a node that is killed with -9 while a
    publisher on the other node goes on: 95% are back on the other node within 10 s, and
    every client ends with every publication once, in order."""
    shared = engine_args(request, engine)  # one engine for both nodes
    a = start_server(*shared, config=CONFIG)
    b = start_server(*shared, config=CONFIG)
    clients = scale(100, 500)
    checker = DeliveryChecker()
    subs = [
        await Subscriber(f"s{i}", [url(a), url(b)], "move", checker, protobuf=i % 3 == 2).start()
        for i in range(clients)
    ]
    publisher = await Publisher("p", url(b), "move", checker).start()
    publishing = asyncio.create_task(publisher.publish(scale(3_000, 10_000), rate=500))
    await asyncio.sleep(1.0)
    loop = asyncio.get_running_loop()
    a.proc.send_signal(signal.SIGKILL)
    killed_at = loop.time()
    a.proc.wait()
    moved_in = None
    while moved_in is None:
        back = sum(1 for s in subs if s.connects >= 2 and s.recoveries >= 1)
        if back >= 0.95 * clients:
            moved_in = loop.time() - killed_at
        elif loop.time() - killed_at > scaled(30):
            raise AssertionError(f"only {back} of {clients} clients came back")
        await asyncio.sleep(0.05)
    await publishing
    await publisher.wait_answered()
    await settle(subs, await top(b, "move"))
    for sub in subs:
        await sub.stop()
    await publisher.close()
    report = checker.report(contiguous_offsets=True)
    record(
        f"node-killed-{engine}",
        report,
        clients=clients,
        moved_95pct_s=round(moved_in, 2),
        publish_errors=publisher.errors,
    )
    assert moved_in <= 10.0, f"95% back after {moved_in:.1f} s"
    assert publisher.failed == 0, publisher.errors  # the surviving node never refused
    assert sum(s.unrecovered for s in subs) == 0
    behind = [
        (s.name, s.count, s.connects, s.recoveries, s.unrecovered, s.errors[-2:])
        for s in subs
        if s.count != publisher.acked
    ]
    assert report.clean, (report, behind[:5])


async def test_redis_down_under_load(start_server: StartServer) -> None:
    """Redis (durable, AOF) killed for 10 s (long; 3 s in make test) while a publisher goes
    on through two nodes: publishes fail meanwhile (never acknowledged), resume after, and
    every subscriber ends with every acknowledged publication once, in order."""
    redis = RedisServer(need_binary("redis-server"), durable=True)
    try:
        nodes = [start_server("--engine", redis.url, config=CONFIG) for _ in range(2)]
        checker = DeliveryChecker()
        subs = [
            await Subscriber(f"s{i}", [url(nodes[i % 2])], "down", checker).start()
            for i in range(6)
        ]
        publisher = await Publisher("p", url(nodes[0]), "down", checker).start()
        outage = scale(3, 10)
        publishing = asyncio.create_task(publisher.publish((outage + 4) * 500, rate=500))
        await asyncio.sleep(2)
        acked_before = publisher.acked
        redis.stop()
        await asyncio.sleep(outage)
        redis.start()
        await publishing
        await publisher.wait_answered()
        await settle(subs, await top(nodes[0], "down"))
        for sub in subs:
            await sub.stop()
        await publisher.close()
    finally:
        redis.destroy()
    report = checker.report(contiguous_offsets=True)
    record(
        "redis-down",
        report,
        outage_s=outage,
        acked=publisher.acked,
        refused=publisher.failed,
        recoveries=sum(s.recoveries for s in subs),
    )
    assert publisher.failed > 0, "publishes failed while Redis was down"
    assert publisher.acked > acked_before + 500, "and were acknowledged again after"
    assert sum(s.unrecovered for s in subs) == 0
    assert report.clean, report
