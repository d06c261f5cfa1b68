"""The engine conformance suite: every test runs against every engine listed here.

A new engine is done when it is added to ENGINES and passes. Engines take a ``clock`` so that
expiry is tested without sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubbub.engines.base import Broker, PresenceManager
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory, MemoryPresence
from hubbub.engines.postgres import PostgresHistory
from hubbub.engines.sqlite import SqliteHistory
from tests.support.timing import scaled


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Engine:
    broker: Broker
    presence: PresenceManager
    clock: FakeClock
    #: Builds a second engine on the same storage (a restart); None for non-durable engines.
    reopen: Callable[[], Awaitable[Broker]] | None = None
    #: False where expiry is the backend's own (Redis keys expire in real time).
    fake_time: bool = True


META_TTL = 3600.0


async def memory(clock: FakeClock, tmp: Path) -> Engine:
    broker = LocalBroker(MemoryHistory(clock=clock, meta_ttl=META_TTL))
    return Engine(broker, MemoryPresence(clock=clock), clock)


def reopenable(
    make: Callable[[], Broker],
    presence: PresenceManager,
    clock: FakeClock,
    broker: Broker | None = None,
) -> Engine:
    """An engine whose storage outlives the broker: ``reopen`` builds a second one on it."""

    async def reopen() -> Broker:
        fresh = make()
        await fresh.open()
        return fresh

    return Engine(broker or make(), presence, clock, reopen)


async def sqlite(clock: FakeClock, tmp: Path) -> Engine:
    def make() -> Broker:
        store = SqliteHistory(tmp / "h.db", clock=clock, meta_ttl=META_TTL, retention_interval=0)
        return LocalBroker(store)

    return reopenable(make, MemoryPresence(clock=clock), clock)


async def postgres(clock: FakeClock, url: str) -> Engine:
    def make() -> Broker:
        store = PostgresHistory(url, clock=clock, meta_ttl=META_TTL, retention_interval=0)
        return LocalBroker(store)

    return reopenable(make, MemoryPresence(clock=clock), clock)


async def redis(clock: FakeClock, url: str) -> Engine:
    from hubbub.engines.redis import RedisBroker, RedisPresence

    def make() -> RedisBroker:
        return RedisBroker(url, clock=clock, meta_ttl=META_TTL)

    first = make()
    engine = reopenable(make, RedisPresence(first, clock=clock), clock, first)
    engine.fake_time = False
    return engine


async def pgengine(clock: FakeClock, url: str) -> Engine:
    from hubbub.engines.pgbroker import PostgresBroker, PostgresPresence

    def make() -> PostgresBroker:
        return PostgresBroker(url, clock=clock, meta_ttl=META_TTL, retention_interval=0)

    first = make()
    return reopenable(make, PostgresPresence(first, clock=clock), clock, first)


ENGINES = ("memory", "sqlite", "postgres", "redis", "pgengine")


@pytest.fixture(params=ENGINES)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    clock = FakeClock()
    if request.param == "memory":
        built = await memory(clock, tmp_path)
    elif request.param == "sqlite":
        built = await sqlite(clock, tmp_path)
    elif request.param == "postgres":
        built = await postgres(clock, request.getfixturevalue("postgres_url"))
    elif request.param == "pgengine":
        built = await pgengine(clock, request.getfixturevalue("postgres_url"))
    else:
        built = await redis(clock, request.getfixturevalue("redis_server").url)
    await built.broker.open()
    yield built
    await built.broker.close()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds (engines with a network fan-out deliver asynchronously)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(within)
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def needs_fake_time(engine: Engine) -> None:
    if not engine.fake_time:
        pytest.skip("this engine's expiry runs on the backend's own clock")
