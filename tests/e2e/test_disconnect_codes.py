"""The disconnect hook learns why the server closed a connection, whatever carries it: the
server API's code, 3001 at shutdown (as every close the server makes); 3000 when the client left."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from hubbub.hub import DisconnectContext, Hub
from tests.support import emulated, uni
from tests.support.inprocess import serving
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "d" * 32
SECRET = "c" * 32
CARRIERS = ["websocket", "http_stream", "sse", "uni_sse", "uni_http_stream", "uni_websocket"]


def make_hub() -> tuple[Hub, asyncio.Queue[tuple[str, int, str]]]:
    hub = Hub(port=0, history="memory", token_hmac_secret=SECRET, api_key=KEY)
    seen: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue()

    @hub.on_disconnect
    async def told(ctx: DisconnectContext) -> None:
        seen.put_nowait((ctx.user, ctx.code, ctx.reason))

    return hub, seen


async def open_carrier(
    http: aiohttp.ClientSession, base: str, carrier: str, user: str, stack: Any
) -> None:
    token = mint(SECRET, user, channels=["c"])
    if carrier == "websocket":
        ws = await stack.enter_async_context(
            http.ws_connect(base.replace("http", "ws", 1) + "/connection/websocket")
        )
        await ws.send_str(json.dumps({"id": 1, "connect": {"token": token}}))
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert '"connect"' in msg.data
    elif carrier in emulated.TRANSPORTS:
        client = await stack.enter_async_context(emulated.connect(base, carrier, {"token": token}))
        assert client.session
    else:
        pushes = await stack.enter_async_context(uni.connect(base, carrier, {"token": token}))
        assert (await pushes.next()) is not None


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_the_hook_sees_the_server_api_code_and_the_shutdown(
    tmp_path: Path, carrier: str
) -> None:
    hub, seen = make_hub()
    server = serving(hub, tmp_path)
    base = await server.__aenter__()
    async with AsyncExitStack() as stack:
        try:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            for user in ("kicked", "stays"):
                await open_carrier(http, base, carrier, user, stack)
            body = {"user": "kicked", "disconnect": {"code": 4321, "reason": "by the api"}}
            headers = {"X-API-Key": KEY}
            async with http.post(f"{base}/api/disconnect", json=body, headers=headers):
                pass
            got = await asyncio.wait_for(seen.get(), scaled(10))
            assert got == ("kicked", 4321, "by the api")
        finally:
            await server.__aexit__(None, None, None)  # the server stops, the clients still there
        assert await asyncio.wait_for(seen.get(), scaled(10)) == ("stays", 3001, "shutdown")
