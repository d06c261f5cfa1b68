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


YEAR = 365 * 24 * 3600


@asynccontextmanager
async def proxied_hub(tmp_path: Path, answers: dict[str, Answer]) -> AsyncIterator[str]:
    """A Hub asking ``answers``' backend for connect, subscribe (namespace ``px``, and
    ``ref`` whose subscriptions the server refreshes) and sub_refresh; yields its URL."""
    async with backend(answers) as base:
        hub = Hub(
            port=0,
            proxy_connect_endpoint=base + "connect",
            proxy_subscribe_endpoint=base + "subscribe",
            proxy_sub_refresh_endpoint=base + "sub_refresh",
            client_channel_limit=4,
            namespaces=[
                {"name": "px", "proxy_subscribe": True},
                {"name": "ref", "proxy_subscribe": True, "proxy_sub_refresh": True},
            ],
        )
        async with serving(hub, tmp_path) as url:
            yield url


def answer(**result: Any) -> Answer:
    async def respond(body: dict[str, Any]) -> Any:
        return {"result": result}

    return respond


async def test_a_sub_refresh_result_without_expire_at_ends_the_expiry(tmp_path: Path) -> None:
    """Centrifugo's rule: a sub refresh ``result`` neither expired nor with an ``expire_at``
    leaves the subscription without expiry (a connection's refresh would close it)."""
    refreshed = asyncio.Event()

    async def sub_refresh(body: dict[str, Any]) -> Any:
        refreshed.set()
        return {"result": {}}

    async def subscribe(body: dict[str, Any]) -> Any:
        return {"result": {"expire_at": int(time.time()) + 2}}

    answers = {"connect": answer(user="u"), "subscribe": subscribe, "sub_refresh": sub_refresh}
    async with proxied_hub(tmp_path, answers) as url, connection(url) as conn:
        assert "connect" in await conn.command("connect", {})
        assert "subscribe" in await conn.command("subscribe", {"channel": "ref:a"})
        await asyncio.wait_for(refreshed.wait(), scaled(10))
        await asyncio.sleep(1.5)  # past the expiry: still subscribed, nothing pushed
        assert conn.pushes.empty() and conn.closed is None
        reply = await conn.command("subscribe", {"channel": "ref:a"})
        assert reply["error"]["code"] == 105  # already subscribed


async def test_expiries_in_the_past_are_110_and_far_ones_a_year(tmp_path: Path) -> None:
    """An ``expire_at`` not ahead is error 110 "expired" for a connect and a subscribe (as
    Centrifugo: not a token's 109); one beyond a year (here 2**62) is a year, as Centrifugo
    caps it, so the TTL fits the protocol's 32 bits."""
    answers: dict[str, Answer] = {"connect": answer(user="u", expire_at=1000)}
    async with proxied_hub(tmp_path, answers) as url:
        async with connection(url) as conn:
            reply = await conn.command("connect", {})
            assert reply["error"] == {"code": 110, "message": "expired"}
        answers["connect"] = answer(user="u", expire_at=2**62)
        answers["subscribe"] = answer(expire_at=int(time.time()) - 1)
        async with connection(url) as conn:
            result = (await conn.command("connect", {}))["connect"]
            assert result["expires"] and YEAR - 5 <= result["ttl"] <= YEAR
            reply = await conn.command("subscribe", {"channel": "px:past"})
            assert reply["error"] == {"code": 110, "message": "expired"}
            answers["subscribe"] = answer(expire_at=2**62)
            result = (await conn.command("subscribe", {"channel": "px:far"}))["subscribe"]
            assert result["expires"] and YEAR - 5 <= result["ttl"] <= YEAR


async def test_more_channels_than_the_limit_disconnect_3505(tmp_path: Path) -> None:
    """A connect answer naming more server-side channels than ``client_channel_limit``
    disconnects with 3505 "channel limit" (as Centrifugo), before any is looked up (a
    million of them cost no more than five)."""
    answers = {"connect": answer(user="u", channels=[f"c{i}" for i in range(1_000_000)])}
    async with proxied_hub(tmp_path, answers) as url, connection(url) as conn:
        await conn.ws.send_str(json.dumps({"id": 1, "connect": {}}))
        await eventually(lambda: conn.closed is not None, 10, what="the close")
        assert conn.ws.close_code == 3505


async def test_one_connection_has_one_proxy_call_at_a_time(tmp_path: Path) -> None:
    """Pipelined RPCs and publishes of one connection wait their turn: a client cannot make
    the server hold many proxy calls at once (commands are handled one after another)."""
    running = [0, 0]  # now, most at once

    async def slow(body: dict[str, Any]) -> Any:
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.05)
        running[0] -= 1
        return {"result": {}}

    answers = {"connect": answer(user="u"), "rpc": slow, "publish": slow}
    async with backend(answers) as base:
        hub = Hub(
            port=0,
            proxy_connect_endpoint=base + "connect",
            proxy_rpc_endpoint=base + "rpc",
            proxy_publish_endpoint=base + "publish",
            namespaces=[{"name": "px", "proxy_publish": True}],
        )
        async with serving(hub, tmp_path) as url, connection(url) as conn:
            assert "connect" in await conn.command("connect", {})
            rpcs = [{"id": i, "rpc": {"method": "m"}} for i in range(2, 12)]
            pubs = [{"id": i, "publish": {"channel": "px:a", "data": {}}} for i in range(12, 22)]
            await conn.ws.send_str("\n".join(json.dumps(c) for c in rpcs + pubs))
            await eventually(lambda: len(conn.replies) >= 20, 10, what="the 20 replies")
    assert running[1] == 1
