"""A hub served in-process: a connection's ``meta`` (the token's claim, replaced by
``on_connect`` or a refresh) reaches every hook and never a client; the emulated ``headers``
of a connect reach ``on_connect`` apart from the handshake's own, bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from hubbub.hub import (
    ConnectContext,
    ConnectResult,
    DisconnectContext,
    Hub,
    MessageContext,
    PublishContext,
    RPCContext,
    SubscribeContext,
)
from hubbub.server.runner import serve
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

SECRET = "m" * 40
#: Only in meta: no frame a client gets may ever contain it.
MARKER = "never-to-a-client-7f3a"


def make_hub() -> tuple[Hub, dict[str, list[Any]]]:
    seen: dict[str, list[Any]] = {}
    hub = Hub(
        port=0,
        token_hmac_secret=SECRET,
        namespaces=[{"name": "room", "presence": True, "join_leave": True}],
    )

    def note(hook: str, value: Any) -> None:
        seen.setdefault(hook, []).append(value)

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult | None:
        note("connect", (ctx.meta, dict(ctx.emulated_headers), dict(ctx.headers)))
        if ctx.meta and ctx.meta.get("replace"):
            return ConnectResult(user=ctx.user, meta={"by": "on_connect", "secret": MARKER})
        return None

    @hub.on_subscribe
    async def subscribe(ctx: SubscribeContext) -> None:
        note("subscribe", ctx.meta)

    @hub.on_publish
    async def publish(ctx: PublishContext) -> None:
        note("publish", ctx.meta)

    @hub.on_message
    async def message(ctx: MessageContext) -> None:
        note("message", ctx.meta)

    @hub.rpc("meta")
    async def meta(ctx: RPCContext) -> Any:
        return {"keys": sorted(ctx.meta or {})}

    @hub.on_disconnect
    async def disconnect(ctx: DisconnectContext) -> None:
        note("disconnect", ctx.meta)

    return hub, seen


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[dict[str, list[Any]], str]]:
    hub, seen = make_hub()
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(hub.settings(data_dir=tmp_path), hub=hub, on_ready=ready.set_result, stop=stop)
    )
    line = await asyncio.wait_for(ready, scaled(10))
    yield seen, "ws" + line.split("listening on http", 1)[1] + "/connection/websocket"
    stop.set()
    await asyncio.wait_for(task, scaled(10))


class Conn:
    """A JSON client that keeps every frame it gets (to search them for the marker)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.ids = 0

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        await self.ws.send_str(json.dumps({"id": self.ids, method: params}))
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), scaled(10))
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            self.frames.append(msg.data)
            for line in msg.data.split("\n"):
                reply = json.loads(line)
                if reply.get("id") == self.ids:
                    return reply  # type: ignore[no-any-return]


async def test_meta_reaches_every_hook_and_no_client(
    running: tuple[dict[str, list[Any]], str],
) -> None:
    seen, url = running
    meta = {"tenant": "acme", "secret": MARKER}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            ada = Conn(ws)
            token = mint(SECRET, "ada", info={"name": "Ada"}, extra={"meta": meta})
            assert "connect" in await ada.call("connect", {"token": token})
            assert "subscribe" in await ada.call("subscribe", {"channel": "room:1"})
            assert "publish" in await ada.call("publish", {"channel": "room:1", "data": {"a": 1}})
            await ws.send_str(json.dumps({"send": {"data": 1}}))
            rpc = await ada.call("rpc", {"method": "meta"})
            assert rpc["rpc"]["data"] == {"keys": ["secret", "tenant"]}
            presence = await ada.call("presence", {"channel": "room:1"})
            assert "ada" in json.dumps(presence)
            # A refresh token with meta replaces it (as in Centrifugo), one without keeps it.
            fresh = mint(SECRET, "ada", ttl=600, extra={"meta": {"v": 2}})
            assert "refresh" in await ada.call("refresh", {"token": fresh})
            rpc = await ada.call("rpc", {"method": "meta"})
            assert rpc["rpc"]["data"] == {"keys": ["v"]}
            assert "refresh" in await ada.call("refresh", {"token": mint(SECRET, "ada", ttl=60)})
            rpc = await ada.call("rpc", {"method": "meta"})
            assert rpc["rpc"]["data"] == {"keys": ["v"]}
        async with http.ws_connect(url) as ws:
            bob = Conn(ws)
            token = mint(SECRET, "bob", extra={"meta": {"replace": True}})
            assert "connect" in await bob.call("connect", {"token": token})
            rpc = await bob.call("rpc", {"method": "meta"})
            assert rpc["rpc"]["data"] == {"keys": ["by", "secret"]}
            await bob.call("subscribe", {"channel": "room:1"})
            await bob.call("presence", {"channel": "room:1"})
    assert seen["connect"][0][0] == meta
    assert seen["subscribe"] == [meta, {"by": "on_connect", "secret": MARKER}]
    assert seen["publish"] == [meta]
    await eventually(lambda: "message" in seen and len(seen.get("disconnect", [])) == 2, 5)
    assert seen["message"] == [meta]
    assert seen["disconnect"][0] == {"v": 2}
    assert not any(MARKER in frame for frame in ada.frames + bob.frames)


async def test_emulated_headers_reach_on_connect_apart(
    running: tuple[dict[str, list[Any]], str],
) -> None:
    """Names lowercased; the handshake's headers stay as they were (an emulated name is not
    added to them, a real one not replaced)."""
    seen, url = running
    emulated = {"Authorization": "Bearer from-the-frame", "X-Tenant": "acme"}
    real_headers = {"Authorization": "Bearer real"}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=real_headers) as ws:
        reply = await Conn(ws).call("connect", {"token": mint(SECRET, "ada"), "headers": emulated})
        assert "connect" in reply
    _, got, real = seen["connect"][0]
    assert got == {"authorization": "Bearer from-the-frame", "x-tenant": "acme"}
    assert real["Authorization"] == "Bearer real"
    assert not {k.lower() for k in real} & {"x-tenant"}


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({f"x-h{i}": "" for i in range(129)}, "more than 128 headers"),
        ({"x-big": "v" * 16 * 1024}, "headers over 16384 bytes"),
        ({"x-n": 1}, "headers must be an object of strings"),
        (["x-a"], "headers must be an object of strings"),
    ],
)
async def test_emulated_headers_out_of_bounds_are_107(
    running: tuple[dict[str, list[Any]], str], headers: Any, problem: str
) -> None:
    seen, url = running
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        reply = await Conn(ws).call("connect", {"token": mint(SECRET, "ada"), "headers": headers})
    assert reply["error"]["code"] == 107 and problem in reply["error"]["message"]
    assert "connect" not in seen  # refused before the hook
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        fits = {f"x-h{i}": "v" for i in range(128)}
        assert "connect" in await Conn(ws).call(
            "connect", {"token": mint(SECRET, "ada"), "headers": fits}
        )
