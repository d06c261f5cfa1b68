"""The channel-protocol dialect on a stand-in connection: what it keeps and when it gives up."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

from hubbub.config import Settings
from hubbub.dialects.centrifuge.connection import run_centrifuge
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.hub import ConnectContext, ConnectResult, Hooks, SubscribeResult
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

    @property
    def closed_with(self) -> tuple[int, str] | None:
        return self.closed

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


# -- where wire formats meet hooks (found by the issue 13 review) ------------------------------


async def session(
    hooks: Hooks, frames: list[str | bytes], codec: Any = None, settings: Settings | None = None
) -> tuple[Connection, Node]:
    """Serve ``frames`` to a fresh connection; the connection (closed) and its node."""
    node = Node(settings or Settings(demos=False))
    conn = Connection()
    args = (node, hooks, conn, {}) if codec is None else (node, hooks, conn, {}, codec)
    task = asyncio.create_task(run_centrifuge(*args))
    for frame in frames:
        conn.frames.put_nowait(frame)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    conn.close(3000, "done")
    await asyncio.wait_for(task, scaled(5))
    return conn, node


def replies(conn: Connection) -> dict[int, dict[str, Any]]:
    out = {}
    for message in conn.posted:
        assert isinstance(message, str)
        for line in message.split("\n"):
            obj = json.loads(line)
            if obj.get("id"):
                out[obj["id"]] = obj
    return out


async def test_a_hook_giving_bytes_a_json_client_cannot_read_commits_nothing() -> None:
    """on_subscribe returning non-JSON bytes to a JSON client: error 100, and the subscription
    is undone (a retry is not 105 "already subscribed", nothing stays pending or present)."""
    calls = 0

    async def on_subscribe(ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        return SubscribeResult(data=b"\xff\x00" if calls == 1 else b'{"ok": 1}')

    conn, node = await session(
        Hooks(on_subscribe=on_subscribe),
        [
            '{"id":1,"connect":{}}',
            '{"id":2,"subscribe":{"channel":"c"}}',
            '{"id":3,"subscribe":{"channel":"c"}}',
        ],
    )
    got = replies(conn)
    assert got[2]["error"]["code"] == 100
    assert got[3]["subscribe"]["data"] == {"ok": 1}  # the retry works, bytes that are JSON
    assert node._pending == {} and node.channels() == []


async def test_a_hook_giving_bytes_at_connect_fails_the_connect_cleanly() -> None:
    async def on_connect(ctx: ConnectContext) -> ConnectResult:
        return ConnectResult(user="u", data=b"\xff", channels=["c"])

    conn, node = await session(Hooks(on_connect=on_connect), ['{"id":1,"connect":{}}'])
    assert replies(conn)[1]["error"]["code"] == 100
    assert node.client_count == 0 and node._pending == {} and node.channels() == []


async def test_a_user_id_that_is_not_unicode_is_refused_at_connect() -> None:
    """A lone surrogate cannot be written by the Protobuf wire (nor stored as UTF-8)."""

    async def on_connect(ctx: ConnectContext) -> ConnectResult:
        return ConnectResult(user="bad\ud800")

    conn, node = await session(Hooks(on_connect=on_connect), ['{"id":1,"connect":{}}'])
    assert replies(conn)[1]["error"]["code"] == 100
    assert node.client_count == 0


async def test_a_flood_of_pongs_is_cut_off_like_any_other() -> None:
    """Pongs are one byte each in Protobuf: counted, so a frame of thousands ends with 3013."""
    settings = Settings(demos=False, client_command_rate=10, client_command_burst=10)
    conn, _ = await session(
        Hooks(), [command_frame(1, "connect"), b"\x00" * 60_000], PROTOBUF, settings
    )
    assert conn.closed is not None and conn.closed[0] == 3013


def command_frame(cid: int, method: str) -> bytes:
    from tests.support import protobuf

    return protobuf.command(cid, method, {})
