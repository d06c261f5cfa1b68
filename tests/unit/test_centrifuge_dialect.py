"""The channel-protocol dialect on a stand-in connection: what it keeps and when it gives up."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

from hubbub.config import Settings
from hubbub.dialects.centrifuge.connection import run_centrifuge
from hubbub.hub import ConnectContext, ConnectResult, Hooks
from hubbub.node import Node
from tests.support.timing import scaled


class Connection:
    id = "conn-1"

    def __init__(self) -> None:
        self.frames: asyncio.Queue[str | None] = asyncio.Queue()
        self.posted: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    async def receive(self) -> str | bytes | None:
        return await self.frames.get()

    def post(self, message: str | bytes) -> None:
        self.posted.append(message)

    def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)
            self.frames.put_nowait(None)


class Headers(dict[str, str]):
    """A header mapping that can be referenced weakly."""


async def replied(conn: Connection, count: int) -> None:
    async with asyncio.timeout(scaled(5)):
        while len(conn.posted) < count:  # noqa: ASYNC110 (polls the stand-in connection)
            await asyncio.sleep(0.005)


async def test_headers_are_let_go_once_connected() -> None:
    """The on_connect hook sees the handshake headers; after connect nothing keeps them."""
    seen: list[dict[str, str]] = []

    async def on_connect(ctx: ConnectContext) -> ConnectResult | None:
        seen.append(dict(ctx.headers))
        return None

    conn = Connection()
    headers = Headers({"cookie": "c" * 4000, "user-agent": "test"})
    kept = weakref.ref(headers)
    task = asyncio.create_task(run_centrifuge(Node(), Hooks(on_connect=on_connect), conn, headers))
    del headers
    conn.frames.put_nowait('{"id":1,"connect":{}}')
    await replied(conn, 1)
    assert "connect" in json.loads(conn.posted[0])
    gc.collect()
    assert kept() is None
    assert seen == [{"cookie": "c" * 4000, "user-agent": "test"}]
    conn.close(3000, "done")
    await asyncio.wait_for(task, scaled(5))


async def test_no_connect_in_time_is_3502_stale() -> None:
    conn = Connection()
    node = Node(Settings(client_connect_timeout=0.05))
    disconnects: list[tuple[int, str]] = []

    async def on_disconnect(ctx: Any) -> None:
        disconnects.append((ctx.code, ctx.reason))

    hooks = Hooks(on_disconnect=on_disconnect)
    await asyncio.wait_for(run_centrifuge(node, hooks, conn, {}), scaled(5))
    assert conn.closed == (3502, "stale")
    assert disconnects == [(3502, "stale")]


async def test_a_connected_client_is_not_stale() -> None:
    conn = Connection()
    node = Node(Settings(client_connect_timeout=0.05))
    task = asyncio.create_task(run_centrifuge(node, Hooks(), conn, {}))
    conn.frames.put_nowait('{"id":1,"connect":{}}')
    await replied(conn, 1)
    await asyncio.sleep(0.2)  # four timeouts later
    assert conn.closed is None
    conn.close(3000, "done")
    await asyncio.wait_for(task, scaled(5))
