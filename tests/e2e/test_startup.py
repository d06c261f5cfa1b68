"""@hub.on_startup: a background task that publishes while the server runs, and goes quietly
at shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub import Hub
from tests.conftest import StartServer
from tests.support.inprocess import serving
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e


async def next_publication(ws: aiohttp.ClientWebSocketResponse, channel: str) -> Any:
    """The data of the next publication on ``channel`` (replies and other pushes skipped)."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        for line in msg.data.split("\n"):
            push = json.loads(line).get("push", {})
            if push.get("channel") == channel and "pub" in push:
                return push["pub"]["data"]


async def subscribed(http: aiohttp.ClientSession, ws_url: str, channel: str) -> Any:
    ws = await http.ws_connect(ws_url + "/connection/websocket")
    await ws.send_str(
        json.dumps({"id": 1, "connect": {}})
        + "\n"
        + json.dumps({"id": 2, "subscribe": {"channel": channel}})
    )
    return ws


async def test_a_startup_task_publishes_to_subscribers_and_is_cancelled_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The task runs once the server is up, its hub.publish reaches a subscriber, and at
    shutdown it is cancelled (its clean-up runs, a last publish in it still works) with
    nothing logged above INFO."""
    hub = Hub(port=0, namespaces=[{"name": "ticks"}])
    seen: dict[str, Any] = {"started": 0, "cleaned": False, "last": None}

    @hub.on_startup
    async def ticker() -> None:
        seen["started"] += 1
        n = 0
        try:
            while True:
                n += 1
                await hub.publish("ticks:t", {"n": n})
                await asyncio.sleep(0.01)
        finally:
            seen["last"] = await hub.publish("ticks:t", {"n": "last"})
            seen["cleaned"] = True

    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http, serving(hub, tmp_path) as url:
        ws = await subscribed(http, "ws" + url[len("http") :], "ticks:t")
        first = await next_publication(ws, "ticks:t")
        second = await next_publication(ws, "ticks:t")
        assert second["n"] == first["n"] + 1
        await ws.close()
    assert seen == {"started": 1, "cleaned": True, "last": 0}
    loud = [r for r in caplog.records if r.levelno > logging.INFO or r.exc_info]
    assert loud == []


async def test_a_failing_startup_function_does_not_stop_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub(port=0)

    @hub.on_startup
    async def broken() -> None:
        raise RuntimeError("cannot reach the feed")

    caplog.set_level(logging.ERROR, "hubbub.startup")
    async with aiohttp.ClientSession() as http, serving(hub, tmp_path) as url:
        async with http.get(url + "/health") as resp:
            assert resp.status == 200
        await eventually(lambda: caplog.records, 5, what="the failure logged")
    [record] = caplog.records
    assert "broken" in record.getMessage() and record.exc_info is not None


async def test_the_clock_example_ticks_and_stops_cleanly(start_server: StartServer) -> None:
    """examples/clock_hub.py served by `hubbub serve --app`: a subscriber gets its ticks, and
    SIGTERM ends the server with exit code 0 and no traceback."""
    server = start_server("--app", "examples.clock_hub:hub")
    async with aiohttp.ClientSession() as http:
        ws = await subscribed(http, server.ws, "clock:time")
        tick = await next_publication(ws, "clock:time")
        assert isinstance(tick["time"], float) and tick["n"] >= 1
        await ws.close()
    assert server.terminate() == 0
    log = server.stderr()
    for bad in ("Traceback", "Task was destroyed", "never retrieved", "ERROR", "WARNING"):
        assert bad not in log, log
