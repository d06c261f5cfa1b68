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


META_TTL = 3600.0


async def memory(clock: FakeClock, tmp: Path) -> Engine:
    broker = LocalBroker(MemoryHistory(clock=clock, meta_ttl=META_TTL))
    return Engine(broker, MemoryPresence(clock=clock), clock)


async def sqlite(clock: FakeClock, tmp: Path) -> Engine:
    def make() -> LocalBroker:
        store = SqliteHistory(tmp / "h.db", clock=clock, meta_ttl=META_TTL, retention_interval=0)
        return LocalBroker(store)

    async def reopen() -> Broker:
        broker = make()
        await broker.open()
        return broker

    return Engine(make(), MemoryPresence(clock=clock), clock, reopen)


async def postgres(clock: FakeClock, url: str) -> Engine:
    def make() -> LocalBroker:
        store = PostgresHistory(url, clock=clock, meta_ttl=META_TTL, retention_interval=0)
        return LocalBroker(store)

    async def reopen() -> Broker:
        broker = make()
        await broker.open()
        return broker

    return Engine(make(), MemoryPresence(clock=clock), clock, reopen)


ENGINES = ("memory", "sqlite", "postgres")


@pytest.fixture(params=ENGINES)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    clock = FakeClock()
    if request.param == "memory":
        built = await memory(clock, tmp_path)
    elif request.param == "sqlite":
        built = await sqlite(clock, tmp_path)
    else:
        built = await postgres(clock, request.getfixturevalue("postgres_url"))
    await built.broker.open()
    yield built
    await built.broker.close()
