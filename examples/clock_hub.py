"""A publisher inside the application: a startup function publishes the server's clock.

Run it with ``hubbub serve --app examples.clock_hub:hub`` (or ``python -m examples.clock_hub``)
and subscribe to the channel ``clock:time`` with any Centrifugo SDK, or from the shell:
``hubbub subscribe clock:time``. Every second a publication ``{"time": ..., "n": ...}`` arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from hubbub import Hub, StoreError

log = logging.getLogger(__name__)

CHANNEL: Final = "clock:time"
INTERVAL: Final = 1.0

# A namespace of its own, without history (a subscriber wants the next tick, not the ones it
# missed); anyone may subscribe, only the server publishes.
hub = Hub(namespaces=[{"name": "clock", "allow_publish_for_client": False}])


@hub.on_startup
async def clock() -> None:
    """Publish the time every INTERVAL seconds while the server runs (cancelled at shutdown).
    A failed publish (the store is down) is logged and the clock goes on."""
    n = 0
    while True:
        n += 1
        try:
            await hub.publish(CHANNEL, {"time": time.time(), "n": n})
        except StoreError as exc:
            log.warning("clock: tick %d not published: %s", n, exc)
        await asyncio.sleep(INTERVAL)


if __name__ == "__main__":
    hub.run()
