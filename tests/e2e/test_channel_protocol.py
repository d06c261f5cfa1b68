"""The channel protocol at /connection/websocket, spoken by hand: errors and disconnects."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import call, closed_with, connected, raw_client, wait_connections
from tests.support.rawws import OP_CLOSE, OP_TEXT, RawWebSocket
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


async def test_connect_reply_has_client_ping_and_pong(server: ServerProcess) -> None:
    async with raw_client(server) as ws:
        result = await connected(ws)
    assert result["client"] and result["version"]
    assert result["ping"] == 25 and result["pong"] is True


@pytest.mark.parametrize(
    "frame", ["not json", '{"id":1,"subscribe":{"channel":"a"}}', '{"connect":{}}']
)
async def test_garbage_or_command_before_connect_is_3501(server: ServerProcess, frame: str) -> None:
    """Bad JSON, a command before connect, or a command without id: disconnect 3501."""
    async with raw_client(server) as ws:
        await ws.send_str(frame)
        code, reason = await closed_with(ws)
        assert code == 3501
        assert reason.startswith("bad request: ")


async def test_errors_leave_the_connection_open(start_server: StartServer) -> None:
    """Unknown method 104, missing field 107, unknown namespace 102, duplicate 105, limit 106."""
    server = start_server(config="client_channel_limit = 2\n[channel]\nhistory_size = 0\n")
    async with raw_client(server) as ws:
        await connected(ws)
        replies = await call(
            ws,
            {"id": 2, "fly": {}},
            {"id": 3, "subscribe": {}},
            {"id": 4, "subscribe": {"channel": "nope:x"}},
            {"id": 5, "subscribe": {"channel": "a"}},
            {"id": 6, "subscribe": {"channel": "a"}},
            {"id": 7, "subscribe": {"channel": "b"}},
            {"id": 8, "subscribe": {"channel": "c"}},
            {"id": 9, "subscribe": {"channel": "bad name"}},
            {"id": 10, "publish": {"channel": "a"}},
            {"id": 11, "history": {"channel": "a"}},
        )
        codes = [r.get("error", {}).get("code") for r in replies]
        assert codes == [104, 107, 102, None, 105, None, 106, 107, 107, 108]
        (ping,) = await call(ws, {"id": 12, "ping": {}})
        assert ping == {"id": 12, "ping": {}}


async def test_send_without_handler_disconnects_3508(server: ServerProcess) -> None:
    async with raw_client(server) as ws:
        await connected(ws)
        await ws.send_str(json.dumps({"send": {"data": {"x": 1}}}))
        assert await closed_with(ws) == (3508, "not available")


async def test_server_pings_and_missing_pong_is_3012(start_server: StartServer) -> None:
    """The server sends {} pings; a client that answers stays, one that does not gets 3012."""
    server = start_server(config="ping_interval = 0.3\npong_timeout = 0.3\n")
    async with raw_client(server) as polite, raw_client(server) as silent:
        await connected(polite)
        await connected(silent)

        async def answer_pings() -> None:
            while True:
                msg = await polite.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                if msg.data == "{}":
                    await polite.send_str("{}")

        answering = asyncio.create_task(answer_pings())
        assert await closed_with(silent) == (3012, "no pong")
        await asyncio.sleep(1.0)
        assert not polite.closed
        answering.cancel()


async def test_raw_room_and_channel_clients_see_each_other(server: ServerProcess) -> None:
    """/rooms/lobby and a subscription to rooms:lobby are the same channel."""
    async with raw_client(server, "/rooms/lobby") as raw, raw_client(server) as sdk:
        await connected(sdk)
        (sub,) = await call(sdk, {"id": 2, "subscribe": {"channel": "rooms:lobby"}})
        assert "error" not in sub
        await raw.send_str('{"text": "from raw"}')
        msg = await asyncio.wait_for(sdk.receive(), scaled(10))
        push = json.loads(msg.data)["push"]
        assert push["channel"] == "rooms:lobby"
        assert push["pub"]["data"] == {"text": "from raw"}
        await raw.send_str("plain text")
        msg = await asyncio.wait_for(sdk.receive(), scaled(10))
        assert json.loads(msg.data)["push"]["pub"]["data"] == "plain text"
        (pub,) = await call(sdk, {"id": 3, "publish": {"channel": "rooms:lobby", "data": {"n": 1}}})
        assert pub == {"id": 3, "publish": {}}
        msg = await asyncio.wait_for(raw.receive(), scaled(10))
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert json.loads(msg.data) == {"n": 1}


async def test_shutdown_sends_3001_to_channel_clients(start_server: StartServer) -> None:
    """On SIGTERM channel-protocol clients are told to reconnect (3001 shutdown)."""
    server = start_server()
    async with raw_client(server) as ws:
        await connected(ws)
        server.proc.send_signal(signal.SIGTERM)
        assert await closed_with(ws) == (3001, "shutdown")
    assert await asyncio.to_thread(server.proc.wait, scaled(10)) == 0


async def test_slow_subscriber_is_cut_off_others_get_everything(start_server: StartServer) -> None:
    """A subscriber that stops reading is disconnected; the publisher and others carry on."""
    server = start_server(
        config=(
            "write_buffer_limit = 65536\nclient_command_rate = 1e6\nclient_command_burst = 100000\n"
            "client_byte_rate = 1e9\nclient_byte_burst = 1000000000\n"  # 25 MB from one sender
        )
    )
    slow = await RawWebSocket.connect("127.0.0.1", server.port, "/connection/websocket")
    async with slow, raw_client(server) as fast, raw_client(server) as publisher:
        slow.send_frame(OP_TEXT, b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"big"}}')
        for ws in (fast, publisher):
            await connected(ws)
        await call(fast, {"id": 2, "subscribe": {"channel": "big"}})
        await wait_connections(server, 3)
        chunk = "x" * 10000
        count, window, received = 2500, 3, 0
        progress = asyncio.Event()

        async def read_all() -> None:
            nonlocal received
            while received < count:
                msg = await asyncio.wait_for(fast.receive(), scaled(20))
                for line in msg.data.split("\n"):
                    push = json.loads(line).get("push")
                    if push:
                        assert push["pub"]["data"] == f"{received:06d}{chunk}"
                        received += 1
                progress.set()

        reader = asyncio.create_task(read_all())
        for i in range(count):
            while i - received >= window:
                progress.clear()
                await asyncio.wait_for(progress.wait(), scaled(20))
            await publisher.send_str(
                json.dumps({"id": 10 + i, "publish": {"channel": "big", "data": f"{i:06d}{chunk}"}})
            )
        await reader
        assert received == count
        await wait_connections(server, 2)  # the slow one is gone
        assert "closing slow consumer" in server.stderr()


async def test_slow_subscriber_gets_its_3008_close_frame(start_server: StartServer) -> None:
    """A subscriber that stopped reading and resumes once it was cut off reads the frames that
    were already under way, intact, then the close frame 3008 "slow", then EOF."""
    server = start_server(
        config=(
            "write_buffer_limit = 65536\nclient_command_rate = 1e6\nclient_command_burst = 100000\n"
            "client_byte_rate = 1000000000\nclient_byte_burst = 1000000000\n"
        )
    )
    slow = await RawWebSocket.connect("127.0.0.1", server.port, "/connection/websocket")
    async with slow, raw_client(server) as publisher:
        slow.send_frame(OP_TEXT, b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"big"}}')
        await connected(publisher)
        await wait_connections(server, 2)
        for _ in range(2):  # the connect and subscribe replies
            assert (await asyncio.wait_for(slow.recv_frame(), scaled(10))).opcode == OP_TEXT
        chunk, sent = "x" * 10000, 0
        async with asyncio.timeout(scaled(60)):
            while "closing slow consumer" not in server.stderr():
                await publisher.send_str(
                    json.dumps({"id": 10 + sent, "publish": {"channel": "big", "data": chunk}})
                )
                sent += 1
                if sent % 20 == 0:
                    await asyncio.sleep(0.01)  # let the server's log reach the file
        pushes = 0
        while (frame := await asyncio.wait_for(slow.recv_frame(), scaled(10))).opcode == OP_TEXT:
            for line in frame.payload.split(b"\n"):
                pushes += json.loads(line)["push"]["pub"]["data"] == chunk
        assert (frame.opcode, frame.close_code, frame.payload[2:]) == (OP_CLOSE, 3008, b"slow")
        # What the transport had taken goes out before the close frame (all of it when the
        # cut came on a write); what waited behind a full transport is dropped (unit-tested
        # in tests/unit/server/test_backpressure.py).
        assert 0 < pushes <= sent
        assert await asyncio.wait_for(slow.eof(), scaled(10))


async def test_connect_must_come_within_client_connect_timeout(start_server: StartServer) -> None:
    """A connection that never sends connect is closed with 3502 "stale", though it answers
    pings; one that connected at the same time stays."""
    server = start_server(config="client_connect_timeout = 0.5\nping_interval = 0.1\n")
    async with raw_client(server) as lurker, raw_client(server) as member:
        await connected(member)
        async with asyncio.timeout(scaled(10)):
            while (msg := await lurker.receive()).type == aiohttp.WSMsgType.TEXT:
                assert msg.data == "{}"
                await lurker.send_str("{}")
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (3502, "stale")
        (ping,) = await call(member, {"id": 2, "ping": {}})
        assert ping == {"id": 2, "ping": {}}


async def test_busy_client_still_gets_pings(start_server: StartServer) -> None:
    """Protocol pings come on a fixed beat: SDKs treat missing pings as a dead server."""
    server = start_server(config="ping_interval = 0.3\npong_timeout = 0.3\n")
    async with raw_client(server) as ws:
        await connected(ws)
        pings = 0
        for i in range(12):
            await ws.send_str(json.dumps({"id": 10 + i, "ping": {}}))
            deadline = asyncio.get_running_loop().time() + 0.1
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    msg = await asyncio.wait_for(ws.receive(), left)
                except TimeoutError:
                    break
                for line in msg.data.split("\n"):
                    if line == "{}":
                        pings += 1
                        await ws.send_str("{}")
        assert pings >= 2
        assert not ws.closed


async def test_lone_surrogate_does_not_break_the_connection(server: ServerProcess) -> None:
    """A lone surrogate escape is not RFC 8259 JSON (issue 12): 107, and the connection
    stays."""
    async with raw_client(server) as ws:
        await connected(ws)
        await call(ws, {"id": 2, "subscribe": {"channel": "s"}})
        await ws.send_str('{"id":3,"publish":{"channel":"s","data":"\\ud800"}}')
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert json.loads(msg.data)["error"]["code"] == 107
        (ping,) = await call(ws, {"id": 4, "ping": {}})
        assert ping == {"id": 4, "ping": {}}


async def test_failed_connect_in_a_batch_gets_its_error(start_server: StartServer) -> None:
    """An SDK sends connect and subscribes in one frame; a refused connect gets its error
    reply (not a 3501 for the subscribes behind it)."""
    server = start_server("--app", "examples.chat_hub:hub")
    async with raw_client(server) as ws:
        await ws.send_str(
            '{"id":1,"connect":{"data":{}}}\n{"id":2,"subscribe":{"channel":"chat:a"}}'
        )
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        reply = json.loads(msg.data.split("\n")[0])
        assert reply["id"] == 1
        assert reply["error"]["code"] == 4001
