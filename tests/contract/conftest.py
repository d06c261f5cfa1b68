"""The engine conformance suite: every test runs against every engine listed here.

A new engine (SQLite, PostgreSQL, Redis) is done when it is added to ENGINES and passes.
Engines take a ``clock`` so that expiry is tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hubbub.engines.base import Broker, PresenceManager
from hubbub.engines.memory import MemoryBroker, MemoryPresence


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


def memory(clock: FakeClock) -> Engine:
    return Engine(MemoryBroker(clock=clock, meta_ttl=3600), MemoryPresence(clock=clock), clock)


ENGINES: dict[str, Callable[[FakeClock], Engine]] = {"memory": memory}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param](FakeClock())
