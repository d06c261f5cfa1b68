"""One connection's publishes pipeline into the store's group commit: replies in command
order, publications in order, many publishes per transaction; a full window is refused with
111 at once rather than queued (served in-process, on the embedded default: SQLite history)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.dialects.centrifuge import pipeline
from hubbub.hub import Hub
from tests.support.inprocess import serving
from tests.support.timing import scaled

N = 2000


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[Hub, str]]:
    hub = Hub(port=0, client_command_rate=1e6, client_command_burst=100000)
    async with serving(hub, tmp_path) as base:
        yield hub, "ws" + base[len("http") :] + "/connection/websocket"


async def lines(ws: aiohttp.ClientWebSocketResponse, want: int, key: str) -> list[dict[str, Any]]:
    """Messages with ``key`` (``id`` for replies, ``push`` for pushes) until ``want`` came."""
    got: list[dict[str, Any]] = []
    while len(got) < want:
        msg = await asyncio.wait_for(ws.receive(), scaled(20))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        for line in msg.data.split("\n"):
            obj = json.loads(line)
            if key in obj:
                got.append(obj)
    return got


async def connect(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url)
    await ws.send_str('{"id":1,"connect":{}}')
    await lines(ws, 1, "id")
    return ws


async def test_publishes_of_one_connection_share_transactions_and_keep_order(
    hub: tuple[Hub, str],
) -> None:
    the_hub, url = hub
    async with aiohttp.ClientSession() as http:
        sub = await connect(http, url)
        await sub.send_str('{"id":2,"subscribe":{"channel":"fast"}}')
        await lines(sub, 1, "id")
        pub = await connect(http, url)
        store = the_hub._node.broker.store
        batches_before = store.commits.batches
        for i in range(N):  # one command per frame, as an SDK sends them, never waiting
            cmd = {"id": 10 + i, "publish": {"channel": "fast", "data": i}}
            await pub.send_str(json.dumps(cmd))
        replies = await lines(pub, N, "id")
        pushes = await lines(sub, N, "push")
        batches = store.commits.batches - batches_before
    assert [r["id"] for r in replies] == [10 + i for i in range(N)], "replies in command order"
    assert all("error" not in r for r in replies)
    assert [p["push"]["pub"]["data"] for p in pushes] == list(range(N))
    assert [p["push"]["pub"]["offset"] for p in pushes] == list(range(1, N + 1))
    # Sequential publishing would take one transaction per publish.
    assert batches <= N // 4, f"{batches} transactions for {N} publishes of one connection"


async def test_a_full_window_is_refused_at_once_in_order(
    hub: tuple[Hub, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the window a publish waits PUBLISH_WAIT for room, then gets 111 (temporary) in
    its place in the order; the ones in the window are stored and answered."""
    the_hub, url = hub
    monkeypatch.setattr(pipeline, "PUBLISH_WINDOW", 5)
    monkeypatch.setattr(pipeline, "PUBLISH_WAIT", 0.05)
    store = the_hub._node.broker.store
    gate = asyncio.Event()
    real_batch = store._append_batch

    async def held_batch(batch: Any) -> Any:
        await gate.wait()
        return await real_batch(batch)

    monkeypatch.setattr(store.commits, "_run_batch", held_batch)
    async with aiohttp.ClientSession() as http:
        pub = await connect(http, url)
        frame = "\n".join(
            json.dumps({"id": 10 + i, "publish": {"channel": "held", "data": i}}) for i in range(8)
        )
        await pub.send_str(frame)
        await pub.send_str('{"id":99,"presence_stats":{"channel":"held"}}')
        (client,) = [c for c in the_hub._node._clients.values() if c.transport.id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(10)
        while (
            client._replies is None or client._replies.window_strikes < 3
        ):  # the store is held: three publishes find no room
            assert loop.time() < deadline, "the window never filled"
            await asyncio.sleep(0.01)
        gate.set()
        replies = await lines(pub, 9, "id")
    assert [r["id"] for r in replies] == [*(10 + i for i in range(8)), 99]
    codes = [r.get("error", {}).get("code") for r in replies[:8]]
    assert codes == [None] * 5 + [111] * 3
    assert "presence_stats" in replies[8]


async def test_the_disconnect_hook_comes_after_the_last_publishes(
    hub: tuple[Hub, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that publishes and goes away: its publications are stored before the
    disconnect hook runs, as without pipelining (review finding: the hook came first)."""
    the_hub, url = hub
    events: list[str] = []

    async def on_disconnect(ctx: Any) -> None:
        events.append("disconnect hook")

    monkeypatch.setattr(the_hub.hooks, "on_disconnect", on_disconnect)
    store = the_hub._node.broker.store
    real_batch = store._append_batch

    async def slow_batch(batch: Any) -> Any:
        await asyncio.sleep(0.2)
        result = await real_batch(batch)
        events.append("stored")
        return result

    monkeypatch.setattr(store.commits, "_run_batch", slow_batch)
    async with aiohttp.ClientSession() as http:
        pub = await connect(http, url)
        await pub.send_str('{"id":2,"publish":{"channel":"bye","data":1}}')
        await pub.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(10)
    while len(events) < 2:
        assert loop.time() < deadline, events
        await asyncio.sleep(0.01)
    assert events == ["stored", "disconnect hook"]
