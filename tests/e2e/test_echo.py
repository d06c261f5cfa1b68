"""The echo endpoint at ``GET /`` with a WebSocket upgrade."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.rawws import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawWebSocket, client_frame
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


async def test_echo_keeps_type_bytes_and_order(server: ServerProcess) -> None:
    """Text comes back as text, binary as binary, in the order sent."""
    sent: list[str | bytes] = []
    for i in range(200):
        sent.append(f"text {i} ✓" if i % 2 else bytes([i % 256]) * (i + 1))
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws + "/") as ws:
        for message in sent:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
        got = []
        for _ in sent:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
            got.append(msg.data)
    assert got == sent


@pytest.mark.parametrize("code", [1000, 4001])
async def test_client_close_code_is_echoed(server: ServerProcess, code: int) -> None:
    """A client's close(code, reason) is answered with the same code: a clean close."""
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws + "/")
        await ws.send_str("x")
        assert (await ws.receive()).data == "x"
        await ws.close(code=code, message=b"bye")
        assert ws.close_code == code


@pytest.mark.parametrize("bad_code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
async def test_invalid_close_code_is_protocol_error(server: ServerProcess, bad_code: int) -> None:
    """A close frame with a code not allowed on the wire is answered with 1002."""
    async with await RawWebSocket.connect("127.0.0.1", server.port, "/") as ws:
        ws.send_close(bad_code)
        frame = await asyncio.wait_for(ws.recv_frame(), scaled(10))
        assert frame.opcode == OP_CLOSE
        assert frame.close_code == 1002
        assert await asyncio.wait_for(ws.eof(), scaled(10))


@pytest.mark.parametrize("split", [False, True], ids=["whole", "byte-by-byte"])
async def test_unmasked_client_frame_fails_the_connection(
    server: ServerProcess, split: bool
) -> None:
    """RFC 6455 §5.1: a frame from the client without the mask bit is answered with 1002 (the
    masked frames before it are still echoed)."""
    async with await RawWebSocket.connect("127.0.0.1", server.port, "/") as ws:
        masked = client_frame(OP_TEXT, b"masked" * 30)
        data = masked + client_frame(OP_TEXT, b"bare", mask=False)
        if split:
            # Up to the bare frame's header: the server fails the connection there, and bytes
            # written after its close would only earn a reset racing the close frame.
            data = data[: len(masked) + 2]
        for chunk in [data[i : i + 1] for i in range(len(data))] if split else [data]:
            ws.writer.write(chunk)
            await ws.writer.drain()
        echo = await asyncio.wait_for(ws.recv_frame(), scaled(10))
        assert (echo.opcode, echo.payload) == (OP_TEXT, b"masked" * 30)
        frame = await asyncio.wait_for(ws.recv_frame(), scaled(10))
        assert frame.opcode == OP_CLOSE
        assert frame.close_code == 1002
        assert await asyncio.wait_for(ws.eof(), scaled(10))


async def test_ping_is_answered_with_pong(server: ServerProcess) -> None:
    """A client's ping gets a pong with the same payload."""
    async with await RawWebSocket.connect("127.0.0.1", server.port, "/") as ws:
        ws.send_frame(OP_PING, b"are you there")
        frame = await asyncio.wait_for(ws.recv_frame(), scaled(10))
        assert (frame.opcode, frame.payload) == (OP_PONG, b"are you there")
        ws.send_frame(OP_TEXT, b"after ping")
        frame = await asyncio.wait_for(ws.recv_frame(), scaled(10))
        assert (frame.opcode, frame.payload) == (OP_TEXT, b"after ping")


@pytest.mark.parametrize("compress", [0, 15], ids=["plain", "deflate"])
async def test_oversize_message_closes_with_1009(start_server, compress: int) -> None:  # type: ignore[no-untyped-def]
    """A message of max_message_size bytes passes; one byte more closes with 1009."""
    server = start_server("--max-message-size", "1000")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/", compress=compress) as ws,
    ):
        await ws.send_str("é" * 500)  # 1000 bytes of UTF-8
        assert (await ws.receive()).data == "é" * 500
        await ws.send_str("a" + "é" * 500)
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009


async def test_silent_peer_is_dropped_and_live_peer_kept(start_server) -> None:  # type: ignore[no-untyped-def]
    """A peer that ignores pings is disconnected; one that answers them stays connected."""
    server = start_server(config="ping_interval = 0.3\npong_timeout = 0.3\n")
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws + "/") as live:
        # aiohttp answers pings while receive() runs: keep it running in the background.
        inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()

        async def read_live() -> None:
            while not live.closed:
                await inbox.put(await live.receive())

        reader = asyncio.create_task(read_live())
        async with await RawWebSocket.connect("127.0.0.1", server.port, "/") as silent:
            ping = await asyncio.wait_for(silent.recv_frame(), scaled(5))
            assert ping.opcode == OP_PING
            # Never answered: the server drops the TCP connection after pong_timeout.
            assert await asyncio.wait_for(silent.eof(), scaled(5))
        await asyncio.sleep(1.0)  # several ping intervals for the live peer
        await live.send_str("still here")
        msg = await asyncio.wait_for(inbox.get(), scaled(5))
        assert msg.data == "still here"
        reader.cancel()


async def test_origin_allow_list(start_server) -> None:  # type: ignore[no-untyped-def]
    """With allowed_origins set, another Origin gets 403; a listed one or none is accepted."""
    server = start_server(config='allowed_origins = ["https://good.example"]\n')
    with pytest.raises(ConnectionError, match="HTTP 403"):
        await RawWebSocket.connect(
            "127.0.0.1", server.port, "/", {"Origin": "https://evil.example"}
        )
    with pytest.raises(ConnectionError, match="HTTP 403"):
        await RawWebSocket.connect(
            "127.0.0.1", server.port, "/rooms/lobby", {"Origin": "https://evil.example"}
        )
    async with await RawWebSocket.connect(
        "127.0.0.1", server.port, "/", {"Origin": "https://GOOD.example"}
    ):
        pass
    async with await RawWebSocket.connect("127.0.0.1", server.port, "/"):
        pass
