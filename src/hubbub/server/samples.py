"""The node's totals once a second over the last five minutes, so that the admin dashboard's
charts open with the recent past instead of empty.

One loop timer (no task) takes a sample every :data:`INTERVAL` seconds from the server's
start to its cleanup: the time and the node's publication, delivery and connection totals.
At most :data:`KEPT` samples are kept (the oldest dropped first), about 10 KB. The page
derives rates from successive totals, as it does for the samples it polls afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Final

from aiohttp import web

from hubbub.node import Node

INTERVAL: Final = 1.0
#: Five minutes of samples, and one more so that the oldest minute has a rate too.
KEPT: Final = 301


class Samples:
    """Samples of ``node``'s totals: ``(time, publications, deliveries, connections)``."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._kept: deque[tuple[float, int, int, int]] = deque(maxlen=KEPT)
        self._timer: asyncio.TimerHandle | None = None

    def _take(self) -> None:
        node = self._node
        sample = (time.time(), node.publications, node.deliveries, node.connection_count)
        self._kept.append(sample)
        self._timer = asyncio.get_running_loop().call_later(INTERVAL, self._take)

    def recent(self) -> list[tuple[float, int, int, int]]:
        """The kept samples, oldest first."""
        return list(self._kept)

    async def start(self, _app: web.Application) -> None:
        """From the app's startup on (an aiohttp startup signal)."""
        if self._timer is None:
            self._take()

    async def stop(self, _app: web.Application) -> None:
        """At the app's cleanup: no timer is left behind."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
