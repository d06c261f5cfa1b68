"""Speaking the channel protocol by hand in tests (aiohttp client, JSON commands)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

WS = aiohttp.ClientWebSocketResponse


@asynccontextmanager
async def raw_client(
    server: ServerProcess, path: str = "/connection/websocket"
) -> AsyncIterator[WS]:
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws + path) as ws:
        yield ws


async def call(ws: WS, *commands: dict[str, Any]) -> list[dict[str, Any]]:
    """Send commands in one frame; return the replies that carry their ids."""
    await ws.send_str("\n".join(json.dumps(c) for c in commands))
    want = {c["id"] for c in commands if "id" in c}
    got: dict[int, dict[str, Any]] = {}
    while want - set(got):
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        for line in msg.data.split("\n"):
            reply = json.loads(line)
            if reply.get("id"):
                got[reply["id"]] = reply
    return [got[c["id"]] for c in commands if "id" in c]


async def closed_with(ws: WS) -> tuple[int | None, str]:
    """The code and reason of the server's close frame (skipping other messages)."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data), msg.extra or ""
        if msg.type == aiohttp.WSMsgType.CLOSED:
            return ws.close_code, ""


async def connected(ws: WS) -> dict[str, Any]:
    (reply,) = await call(ws, {"id": 1, "connect": {}})
    return reply["connect"]  # type: ignore[no-any-return]


async def wait_connections(server: ServerProcess, n: int) -> None:
    """Wait until the server counts ``n`` connections (joins happen after the handshake)."""
    async with aiohttp.ClientSession() as http:

        async def reached() -> bool:
            async with http.get(server.url + "/health") as resp:
                return bool((await resp.json())["connections"] == n)

        await eventually(reached, 5, what=f"the server counting {n} connections")


class Observer:
    """A channel-protocol client that records every push it receives, by kind."""

    def __init__(self, ws: WS) -> None:
        self.ws = ws
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: dict[int, dict[str, Any]] = {}
        self.closed: tuple[int | None, str] | None = None
        self._task = asyncio.create_task(self._read())
        self._next_id = 100

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            for line in msg.data.split("\n"):
                if line == "{}":
                    await self.ws.send_str("{}")
                    continue
                obj = json.loads(line)
                if "push" in obj:
                    await self.pushes.put(obj["push"])
                elif obj.get("id"):
                    self.replies[obj["id"]] = obj
        self.closed = (self.ws.close_code, "")

    async def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        cid = self._next_id
        await self.ws.send_str(json.dumps({"id": cid, method: params}))
        try:
            await eventually(lambda: cid in self.replies, 5, interval=0.01, what="a reply")
        except AssertionError:
            raise TimeoutError(f"no reply to {method}") from None
        return self.replies.pop(cid)

    async def push(self, kind: str, channel: str | None = None) -> dict[str, Any]:
        """The next push of ``kind`` (for ``channel``), skipping others."""
        while True:
            push = await asyncio.wait_for(self.pushes.get(), scaled(10))
            if kind in push and (channel is None or push.get("channel") == channel):
                return push

    def stop(self) -> None:
        self._task.cancel()
