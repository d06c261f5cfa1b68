"""Graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import wait_connections
from tests.support.rawws import OP_CLOSE, RawWebSocket
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_clients_get_1001_and_exit_is_0(start_server: StartServer, sig: int) -> None:
    """Echo and room clients receive 1001 "going away"; the process exits 0."""
    server = start_server()
    async with aiohttp.ClientSession() as http:
        clients = [
            await http.ws_connect(server.ws + "/"),
            await http.ws_connect(server.ws + "/rooms/a"),
            await http.ws_connect(server.ws + "/rooms/a"),
        ]
        await wait_connections(server, 3)
        server.proc.send_signal(sig)
        for ws in clients:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (1001, "going away")
            await ws.close()
        code = await asyncio.to_thread(server.proc.wait, scaled(10))
    assert code == 0


async def test_unresponsive_client_does_not_hold_up_exit(start_server: StartServer) -> None:
    """A client that never reads or answers the close still lets the server exit in time."""
    server = start_server(config="shutdown_timeout = 2\n")
    async with await RawWebSocket.connect("127.0.0.1", server.port, "/"):
        await wait_connections(server, 1)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.proc.wait, scaled(10))
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 2 + scaled(2)


async def test_no_new_connections_while_closing(start_server: StartServer) -> None:
    """After SIGTERM the port stops accepting, before the connections are closed: once a
    client has its 1001, a new connection is refused while the server is still closing (an
    unresponsive client holds it up)."""
    server = start_server(config=f"shutdown_timeout = {scaled(30):g}\n")
    async with await RawWebSocket.connect("127.0.0.1", server.port, "/") as stuck:
        await wait_connections(server, 1)
        server.proc.send_signal(signal.SIGTERM)
        frame = await asyncio.wait_for(stuck.recv_frame(), scaled(10))  # read, never answered
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1001)
        with pytest.raises(OSError):
            await RawWebSocket.connect("127.0.0.1", server.port, "/")
        assert server.proc.poll() is None, "the refusal must come while the server is closing"
    # The unresponsive client goes away: the server need not wait out shutdown_timeout.
    assert await asyncio.to_thread(server.proc.wait, scaled(10)) == 0


async def test_an_engine_whose_close_hangs_does_not_hold_up_exit(start_server: StartServer) -> None:
    """An engine whose close never returns (it ignores its cancellation) is cut off with an
    error logged, and the process exits 0 soon after ``shutdown_timeout``."""
    server = start_server("--app", "tests.support.hung_app:hub", config="shutdown_timeout = 1\n")
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.proc.wait, scaled(15))
    elapsed = time.monotonic() - started
    assert code == 0
    assert "stopping the engines did not finish within" in server.stderr()
    assert elapsed < 3 + scaled(2)  # shutdown_timeout + lifecycle.STOP_MIN + the graces
