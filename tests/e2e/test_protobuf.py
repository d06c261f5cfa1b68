"""The Protobuf format (subprotocol ``centrifuge-protobuf``) spoken by hand, with the schema of
centrifuge-python's own generated code: negotiation, keepalive, frames that cannot be read,
and payloads between the formats. The SDKs in both formats are in tests/interop/."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support import protobuf
from tests.support.proto import call, closed_with
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


async def test_the_subprotocol_chooses_the_format(start_server: StartServer) -> None:
    server = start_server()
    url = server.ws + "/connection/websocket"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=("other", protobuf.SUBPROTOCOL)) as ws:
            assert ws.protocol == protobuf.SUBPROTOCOL
            (reply,) = await protobuf.call(ws, (1, "connect", {}))
            assert reply["connect"]["client"] and reply["connect"]["pong"] is True
        async with http.ws_connect(url, protocols=("centrifuge-json",)) as ws:
            assert ws.protocol == "centrifuge-json"
            (reply,) = await call(ws, {"id": 1, "connect": {}})
            assert reply["connect"]["client"]
        async with http.ws_connect(url) as ws:  # no subprotocol: JSON
            assert ws.protocol is None
            (reply,) = await call(ws, {"id": 1, "connect": {}})
            assert reply["connect"]["client"]


async def test_pings_are_empty_replies_and_empty_commands_answer_them(
    start_server: StartServer,
) -> None:
    server = start_server(config="ping_interval = 0.3\npong_timeout = 0.3\n")
    url = server.ws + "/connection/websocket"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=(protobuf.SUBPROTOCOL,)) as ws:
            await protobuf.call(ws, (1, "connect", {}))
            for _ in range(3):  # answered: the connection stays
                msg = await asyncio.wait_for(ws.receive(), scaled(5))
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"\x00"
                await ws.send_bytes(b"\x00")
        async with http.ws_connect(url, protocols=(protobuf.SUBPROTOCOL,)) as ws:
            await protobuf.call(ws, (1, "connect", {}))
            msg = await asyncio.wait_for(ws.receive(), scaled(5))
            assert msg.data == b"\x00"
            assert (await closed_with(ws))[0] == 3012  # not answered: no pong


@pytest.mark.parametrize(
    "frame",
    [
        "a text frame",
        b"\x05\x08",  # a length longer than the frame
        b"\x80",  # a varint that never ends
        b"\x03\xff\xff\xff",  # not a Command
    ],
    ids=["text", "truncated", "bad-varint", "not-a-command"],
)
async def test_frames_that_cannot_be_read_close_with_3501(
    start_server: StartServer, frame: str | bytes
) -> None:
    server = start_server()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            server.ws + "/connection/websocket", protocols=(protobuf.SUBPROTOCOL,)
        ) as ws,
    ):
        await protobuf.call(ws, (1, "connect", {}))
        if isinstance(frame, str):
            await ws.send_str(frame)
        else:
            await ws.send_bytes(frame)
        assert (await closed_with(ws))[0] == 3501


async def test_commands_of_one_frame_are_answered_in_order_in_one_format(
    start_server: StartServer,
) -> None:
    server = start_server()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            server.ws + "/connection/websocket", protocols=(protobuf.SUBPROTOCOL,)
        ) as ws,
    ):
        replies = await protobuf.call(
            ws,
            (1, "connect", {}),
            (2, "subscribe", {"channel": "chat:pb"}),
            (3, "publish", {"channel": "chat:pb", "data": b'{"x": 1}'}),
            (4, "publish", {"channel": "chat:pb", "data": b"not json"}),
            (5, "publish", {"channel": "chat:pb"}),
            (6, "presence_stats", {"channel": "chat:pb"}),
            (7, "history", {"channel": "chat:pb", "limit": 10}),
            (8, "rpc", {"method": "nope"}),
            (9, "subscribe", {"channel": "chat:pb"}),
        )
    assert "connect" in replies[0] and "subscribe" in replies[1]
    assert "publish" in replies[2]
    assert replies[3]["error"]["code"] == 107 and "JSON" in replies[3]["error"]["message"]
    assert replies[4]["error"]["code"] == 107
    assert replies[5]["presence_stats"] == {"num_clients": 1}  # anonymous: 0 users, not sent
    history = replies[6]["history"]
    assert [p["data"] for p in history["publications"]] == [b'{"x": 1}']
    assert replies[7]["error"]["code"] == 104
    assert replies[8]["error"]["code"] == 105
