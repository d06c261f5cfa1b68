"""The HTTP proxy under attack, in process (a Hub served in the test's loop, an aiohttp
backend beside it): a connect proxy slower than the connect timeout, answers Centrifugo's
backends may give (no expiry on a sub refresh, far or past expiries, more server-side
channels than a connection may have)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hubbub import ConnectContext, Hub
from tests.support.inprocess import serving
from tests.support.proto import Observer
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

Answer = Callable[[dict[str, Any]], Awaitable[Any]]


@asynccontextmanager
async def backend(answers: dict[str, Answer]) -> AsyncIterator[str]:
    """An aiohttp backend answering ``answers[path](body)`` (JSON); yields its base URL."""

    async def handle(request: web.Request) -> web.StreamResponse:
        answer = answers[request.match_info["path"]]
        return web.json_response(await answer(json.loads(await request.read())))

    app = web.Application()
    app.router.add_post("/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[Observer]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url.replace("http", "ws", 1) + "/connection/websocket") as ws,
    ):
        conn = Observer(ws)
        try:
            yield conn
        finally:
            conn.stop()


async def test_a_connect_slower_than_the_connect_timeout_never_admits_the_client(
    tmp_path: Path,
) -> None:
    """The connection is closed as stale at ``client_connect_timeout`` and the connect still
    waiting for the proxy is cancelled: the backend's late answer admits nobody (no
    ``on_connect``, no registered client)."""
    asked = asyncio.Event()

    async def slow(body: dict[str, Any]) -> Any:
        asked.set()
        await asyncio.sleep(1.5)
        return {"result": {"user": "late"}}

    hooked: list[str] = []
    async with backend({"connect": slow}) as base:
        hub = Hub(
            port=0,
            proxy_connect_endpoint=base + "connect",
            proxy_timeout=5,
            client_connect_timeout=0.5,
        )

        @hub.on_connect
        async def on_connect(ctx: ConnectContext) -> None:
            hooked.append(ctx.user)

        async with serving(hub, tmp_path) as url, connection(url) as conn:
            await conn.ws.send_str(json.dumps({"id": 1, "connect": {}}))
            await asyncio.wait_for(asked.wait(), scaled(5))
            await eventually(lambda: conn.closed is not None, 5, what="the stale close")
            assert conn.ws.close_code == 3502
            await asyncio.sleep(1.5)  # the backend has answered by now
            assert hooked == [] and 1 not in conn.replies
            async with aiohttp.ClientSession() as http, http.get(url + "/health") as resp:
                assert (await resp.json())["connections"] == 0
