"""Live monitoring demo: host and hubbub metrics published to ``monitor:host`` once a second.

The publisher outlives its errors (a failed sample, e.g. EMFILE at the open-file limit, is
logged and retried after a back-off: :func:`hubbub.periodic.every`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import psutil

from hubbub.bounded import stop_tasks
from hubbub.core.jsontext import dumps
from hubbub.errors import HubbubError
from hubbub.node import Node
from hubbub.periodic import every

log = logging.getLogger(__name__)

CHANNEL: Final = "monitor:host"
#: Seconds the loop gets to end once cancelled (the lifecycle bounds the demos' whole stop).
STOP_TIMEOUT: Final = 0.5


class MonitorPublisher:
    """Samples the host (psutil) and the node every ``interval`` seconds and publishes."""

    def __init__(self, node: Node, interval: float = 1.0) -> None:
        self.node = node
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[float, int, int, int, int] | None = None

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # the first reading only sets the baseline
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the loop (again while it carries on: a publish can lose a cancellation,
        :mod:`hubbub.bounded`), at most :data:`STOP_TIMEOUT` seconds."""
        if self._task is not None:
            await stop_tasks([self._task], STOP_TIMEOUT, "monitor demo")
            self._task = None

    def sample(self) -> dict[str, Any]:
        now = time.time()
        net = psutil.net_io_counters()
        node = self.node
        current = (now, net.bytes_sent, net.bytes_recv, node.publications, node.deliveries)
        rates = {"net_sent": 0.0, "net_recv": 0.0, "publications": 0.0, "deliveries": 0.0}
        if self._last is not None:
            dt = max(1e-6, now - self._last[0])
            for i, key in enumerate(("net_sent", "net_recv", "publications", "deliveries"), 1):
                rates[key] = round((current[i] - self._last[i]) / dt, 1)
        self._last = current
        return {
            "time": int(now * 1000),
            "cpu": psutil.cpu_percent(interval=None),
            "memory": psutil.virtual_memory().percent,
            "net_sent_bps": rates["net_sent"],
            "net_recv_bps": rates["net_recv"],
            "connections": node.connection_count,
            "channels": len(node.channels()),
            "publications_per_s": rates["publications"],
            "deliveries_per_s": rates["deliveries"],
        }

    async def _run(self) -> None:
        await every(self.interval, self.publish_sample, "monitor demo")

    async def publish_sample(self) -> None:
        """One sample to the channel; an engine that refuses it is worth a line, not more."""
        sample = dumps(self.sample())
        try:
            await self.node.publish(CHANNEL, sample)
        except HubbubError as exc:
            log.warning("monitor demo: %s", exc)
