"""A node on Redis stopped the moment it is ready still stops (its background tasks were
cancelled while redis-py read a reply, which swallowed the cancellation: the announce loop went
on for ever and `hubbub serve --workers 2` hung at SIGTERM)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hubbub import periodic
from hubbub.config import load_settings
from hubbub.server.runner import serve
from tests.support.redis import RedisServer
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


async def test_stopping_at_the_ready_line_ends_the_server(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Ten servers in a row, each told to stop as it prints its ready line."""
    settings = load_settings(
        {"port": 0, "engine": redis_server.url, "demos": False, "data_dir": tmp_path}
    )
    for _ in range(10):
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve(settings, on_ready=lambda line, stop=stop: stop.set(), stop=stop)
        )
        done, _ = await asyncio.wait((task,), timeout=scaled(5))  # (it takes milliseconds)
        if not done:  # hung: do not leave it running
            await periodic.stop(task)
        assert done, "the server did not stop"
        task.result()
