"""A Hub served in-process: hooks, server-side subscriptions and hub.publish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.errors import ClientError, DisconnectError, HubbubError
from hubbub.hub import (
    ConnectContext,
    ConnectResult,
    DisconnectContext,
    Hub,
    MessageContext,
    SubscribeContext,
    SubscribeResult,
)
from hubbub.server.runner import serve
from tests.support.timing import scaled


def make_hub() -> tuple[Hub, dict[str, list[Any]]]:
    seen: dict[str, list[Any]] = {"messages": [], "disconnects": []}
    hub = Hub(
        port=0,
        namespaces=[
            {
                "name": "feed",
                "history_size": 10,
                "history_ttl": 60,
                "presence": True,
                "force_recovery": True,
                "join_leave": True,
                "force_push_join_leave": True,
            }
        ],
    )

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult:
        if ctx.token == "kick":
            raise DisconnectError(4501, "go away")
        if ctx.token != "secret":
            raise ClientError(4001, "bad credentials")
        return ConnectResult(
            user="ada", info={"role": "admin"}, data={"hi": 1}, channels=["feed:ada"]
        )

    @hub.on_subscribe
    async def subscribe(ctx: SubscribeContext) -> SubscribeResult:
        if ctx.channel == "feed:secret":
            raise ClientError(103)
        return SubscribeResult(info={"seat": 7}, data={"welcome": ctx.channel})

    @hub.on_message
    async def message(ctx: MessageContext) -> None:
        seen["messages"].append((ctx.user, ctx.data))

    @hub.on_disconnect
    async def disconnect(ctx: DisconnectContext) -> None:
        seen["disconnects"].append(ctx.user)

    return hub, seen


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Hub, dict[str, list[Any]], str]]:
    hub, seen = make_hub()
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(
            hub.settings(data_dir=tmp_path),
            hub=hub,
            on_ready=lambda line: ready.set_result(line),
            stop=stop,
        )
    )
    line = await asyncio.wait_for(ready, scaled(10))
    url = "ws" + line.split("listening on http", 1)[1] + "/connection/websocket"
    yield hub, seen, url
    stop.set()
    await asyncio.wait_for(task, scaled(10))


async def frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < n:
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out += [json.loads(line) for line in msg.data.split("\n")]
    return out


async def only(ws: aiohttp.ClientWebSocketResponse, n: int, keep: Any) -> list[dict[str, Any]]:
    """The next ``n`` messages for which ``keep(message)`` is true (others are skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        out += [m for m in await frames(ws, 1) if keep(m)]
    return out


async def test_hooks_end_to_end(running: tuple[Hub, dict[str, list[Any]], str]) -> None:
    """on_connect decides who connects, server-side channels, on_subscribe info and data,
    on_message gets send, hub.publish reaches subscribers, on_disconnect is told."""
    hub, seen, url = running
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as bad:
            await bad.send_str(json.dumps({"id": 1, "connect": {"token": "wrong"}}))
            reply = (await frames(bad, 1))[0]  # pushes may share its frame
            assert reply["error"] == {"code": 4001, "message": "bad credentials"}
        async with http.ws_connect(url) as kicked:
            await kicked.send_str(json.dumps({"id": 1, "connect": {"token": "kick"}}))
            msg = await asyncio.wait_for(kicked.receive(), scaled(10))
            assert (kicked.close_code, msg.extra) == (4501, "go away")
        async with http.ws_connect(url) as ws:
            await ws.send_str(json.dumps({"id": 1, "connect": {"token": "secret"}}))
            reply = (await frames(ws, 1))[0]  # pushes may share its frame
            result = reply["connect"]
            assert result["data"] == {"hi": 1}
            assert result["subs"]["feed:ada"]["recoverable"] is True
            epoch = result["subs"]["feed:ada"]["epoch"]
            await ws.send_str(
                "\n".join(
                    json.dumps(c)
                    for c in (
                        {"id": 2, "subscribe": {"channel": "feed:secret"}},
                        {"id": 3, "subscribe": {"channel": "feed:news"}},
                        {"send": {"data": {"typing": True}}},
                        {"id": 4, "presence": {"channel": "feed:news"}},
                    )
                )
            )
            replies = {r["id"]: r for r in await only(ws, 3, lambda m: "id" in m)}
            assert replies[2]["error"]["code"] == 103
            assert replies[3]["subscribe"]["data"] == {"welcome": "feed:news"}
            entry = next(iter(replies[4]["presence"]["presence"].values()))
            assert entry["conn_info"] == {"role": "admin"}
            assert entry["chan_info"] == {"seat": 7}
            assert seen["messages"] == [("ada", {"typing": True})]
            assert await hub.publish("feed:ada", {"n": 1}) == 1
            assert await hub.publish("feed:news", {"n": 2}, idempotency_key="k") == 1
            assert await hub.publish("feed:news", {"n": 2}, idempotency_key="k") == 1
            with pytest.raises(ClientError) as refused:
                await hub.publish("feed:news", {"n": 3}, idempotency_key="k" * 256)
            assert refused.value.code == 107
            pushes = await only(ws, 2, lambda m: "pub" in m.get("push", {}))
            assert [(p["push"]["channel"], p["push"]["pub"]["data"]) for p in pushes] == [
                ("feed:ada", {"n": 1}),
                ("feed:news", {"n": 2}),
            ]
        # Server-side subscriptions recover through connect.subs, reply first, pushes after.
        await hub.publish("feed:ada", {"n": 3})
        async with http.ws_connect(url) as again:
            recover = {"feed:ada": {"recover": True, "epoch": epoch, "offset": 1}}
            await again.send_str(
                json.dumps({"id": 1, "connect": {"token": "secret", "subs": recover}})
            )
            first, second = await frames(again, 2)
            sub = first["connect"]["subs"]["feed:ada"]
            assert (sub["was_recovering"], sub["recovered"], sub["offset"]) == (True, True, 2)
            assert [p["data"] for p in sub["publications"]] == [{"n": 3}]
            assert second["push"]["join"]["info"]["user"] == "ada"
    for _ in range(100):
        if "ada" in seen["disconnects"]:
            break
        await asyncio.sleep(0.02)
    assert "ada" in seen["disconnects"]


async def test_publish_before_serving_is_an_error() -> None:
    hub, _ = make_hub()
    with pytest.raises(HubbubError, match="not running"):
        await hub.publish("feed:x", 1)
