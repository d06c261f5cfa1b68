"""Serving a :class:`hubbub.Hub` inside the test's own event loop (for tests that count what
the server does, patch it, or make publications in one loop turn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from hubbub.hub import Hub
from hubbub.server.runner import serve
from tests.support.timing import scaled


@asynccontextmanager
async def serving(hub: Hub, data_dir: Path) -> AsyncIterator[str]:
    """Serve ``hub`` (demos off) until the block ends; yields its base URL ``http://H:P``."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(
            hub.settings(data_dir=data_dir, demos=False),
            hub=hub,
            on_ready=lambda line: ready.set_result(line),
            stop=stop,
        )
    )
    try:
        line = await asyncio.wait_for(ready, scaled(10))
        yield "http" + line.split("listening on http", 1)[1]
    finally:
        stop.set()
        await asyncio.wait_for(task, scaled(10))
