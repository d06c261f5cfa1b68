"""Resources come back: connection churn with and without permessage-deflate (file
descriptors and RSS back within 10% of where they were after warm-up), and a deflate bomb
(a small frame that inflates past the message limit) closes with 1009 without the memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib

import aiohttp
import pytest

from hubbub.loadgen import rss_bytes
from tests.conftest import StartServer
from tests.reliability.conftest import CONFIG, record, scale
from tests.support.deflatepeer import RSV1, DeflatePeer
from tests.support.proto import wait_connections
from tests.support.rawws import OP_CLOSE, OP_TEXT
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

MiB = 1024 * 1024
#: The churn server: no history or presence work per cycle, so what is measured is the
#: connection path (handshake, deflate, client, close).
CHURN_CONFIG = 'history = "memory"\ndemos = false\n' + CONFIG  # (top-level keys first)


def fds(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


async def settled_rss(server: ServerProcess) -> int:
    """RSS once the server holds no connection and a moment has passed (freed memory is
    returned by the allocator's next trim, the GC's next run)."""
    await wait_connections(server, 0)
    await asyncio.sleep(0.5)
    return rss_bytes(server.proc.pid)


async def cycles(server: ServerProcess, n: int, *, deflate: bool) -> None:
    """``n`` connections: connect, subscribe, a few commands, close; 50 at a time."""
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.ws_connect(
                server.ws + "/connection/websocket", compress=15 if deflate else 0
            ) as ws:
                await ws.send_str(
                    '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"churn"}}\n'
                    '{"id":3,"ping":{}}\n{"id":4,"presence_stats":{"channel":"none"}}'
                )
                answered = 0
                while answered < 4:
                    msg = await asyncio.wait_for(ws.receive(), scaled(10))
                    answered += msg.data.count('"id"')

        for start in range(0, n, 50):
            await asyncio.gather(*(one() for _ in range(min(50, n - start))))


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_churn_gives_back_descriptors_and_memory(
    start_server: StartServer, deflate: bool
) -> None:
    server = start_server(config=CHURN_CONFIG)
    await cycles(server, 500, deflate=deflate)  # warm-up: caches, allocator arenas
    rss_before = await settled_rss(server)
    fds_before = fds(server)
    n = scale(3_000, 20_000)
    await cycles(server, n, deflate=deflate)
    rss_after = await settled_rss(server)
    fds_after = fds(server)
    growth = rss_after / rss_before - 1
    record(
        f"churn-{'deflate' if deflate else 'plain'}",
        None,
        cycles=n,
        rss_before_mib=round(rss_before / MiB, 1),
        rss_after_mib=round(rss_after / MiB, 1),
        fds_before=fds_before,
        fds_after=fds_after,
    )
    assert fds_after <= fds_before + 2, (fds_before, fds_after)
    assert growth <= 0.10, f"RSS {rss_before / MiB:.1f} -> {rss_after / MiB:.1f} MiB"


async def test_a_deflate_bomb_is_closed_with_1009_without_the_memory(
    start_server: StartServer,
) -> None:
    """A 60 KB frame (under the 64 KiB limit, so it is read whole) that inflates to 60 MB:
    closed with 1009, the server's RSS does not take the 60 MB, other clients carry on."""
    server = start_server(config=CHURN_CONFIG)
    rss_before = await settled_rss(server)
    bombs = 5
    for _ in range(bombs):
        peer = await DeflatePeer.connect("127.0.0.1", server.port, "/connection/websocket")
        assert peer.deflate
        squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = squeezer.compress(b"{" + b" " * (60 * MiB)) + squeezer.flush(zlib.Z_SYNC_FLUSH)
        assert len(payload) < 64 * 1024
        peer.ws.send_frame(RSV1 | OP_TEXT, payload[:-4])  # RFC 7692: no sync-flush tail
        frame = await peer.recv()  # (the server may reset the TCP connection after it)
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1009), frame
        peer.close()
    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
        assert resp.status == 200
    rss_after = await settled_rss(server)
    record(
        "deflate-bomb",
        None,
        bombs=bombs,
        rss_before_mib=round(rss_before / MiB, 1),
        rss_after_mib=round(rss_after / MiB, 1),
    )
    assert rss_after - rss_before < 20 * MiB


async def test_silent_and_slowloris_sockets_are_closed_and_others_carry_on(
    start_server: StartServer,
) -> None:
    """2,000 sockets (long; 500 in make test) that send nothing or trickle a request header
    byte by byte are closed after handshake_timeout; meanwhile a real client connects and
    works, and the descriptors come back."""
    server = start_server(config="handshake_timeout = 1.0\n" + CHURN_CONFIG)
    fds_before = fds(server)
    total = scale(500, 2_000)
    sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for i in range(total):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if i % 2:
            writer.write(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\n")  # never ends
        sockets.append((reader, writer))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def trickle() -> None:
        for _ in range(int(scaled(10) / 0.2)):
            for _, writer in sockets[1::2]:
                if not writer.is_closing():
                    writer.write(b"X")
            await asyncio.sleep(0.2)

    trickling = asyncio.create_task(trickle())
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/websocket") as ws,
    ):
        await ws.send_str('{"id":1,"connect":{}}')
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert '"connect"' in msg.data
    closed = 0
    for reader, _ in sockets:
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), scaled(15))  # EOF once the server closed
        closed += 1
    elapsed = loop.time() - started
    trickling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await trickling
    for _, writer in sockets:
        writer.close()
    await wait_connections(server, 0)
    await asyncio.sleep(0.2)
    fds_after = fds(server)
    record(
        "silent-and-slowloris",
        None,
        sockets=total,
        all_closed_within_s=round(elapsed, 1),
        fds_before=fds_before,
        fds_after=fds_after,
    )
    assert closed == total
    assert fds_after <= fds_before + 2
