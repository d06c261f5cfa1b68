"""An engine whose close never finishes: its ``close`` ignores every cancellation. In a
test's own process, monkeypatch ``hubbub.server.lifecycle.build_engines`` with
:func:`hung_engines`; for a served one, tests/support/hung_app.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from hubbub.config import Settings
from hubbub.engines.base import Broker, PresenceManager
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory, MemoryPresence


class HungBroker(LocalBroker):
    """A local broker whose close goes on, whatever cancels it, until :meth:`release`
    (then it ends at its next cancellation: a test releases it when it is done)."""

    released = False

    def release(self) -> None:
        self.released = True

    async def close(self) -> None:
        while not self.released:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)


def hung_engines(made: list[HungBroker]) -> Callable[[Settings], tuple[Broker, PresenceManager]]:
    """An engine factory (lifecycle.build_engines' shape) giving HungBrokers, kept in ``made``."""

    def engines(settings: Settings) -> tuple[Broker, PresenceManager]:
        broker = HungBroker(MemoryHistory())
        made.append(broker)
        return broker, MemoryPresence()

    return engines
