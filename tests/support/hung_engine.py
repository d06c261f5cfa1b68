"""An app for ``hubbub serve --app tests.support.hung_engine:hub`` whose engine never finishes
closing: its ``close`` ignores every cancellation. Importing this module replaces the server's
engine factory, in that process only (a shutdown test's server, nothing else imports it)."""

from __future__ import annotations

import asyncio
import contextlib

import hubbub.server.lifecycle
from hubbub import Hub
from hubbub.config import Settings
from hubbub.engines.base import Broker, PresenceManager
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory, MemoryPresence


class HungBroker(LocalBroker):
    async def close(self) -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)


def _engines(settings: Settings) -> tuple[Broker, PresenceManager]:
    return HungBroker(MemoryHistory()), MemoryPresence()


hubbub.server.lifecycle.build_engines = _engines
hub = Hub()
