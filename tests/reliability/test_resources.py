"""Resources come back: connection churn with and without permessage-deflate (file
descriptors and RSS back within 10% of where they were after warm-up), and a deflate bomb
(a small frame that inflates past the message limit) closes with 1009 without the memory."""

from __future__ import annotations

import asyncio
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
CHURN_CONFIG = CONFIG + 'history = "memory"\ndemos = false\n'


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
