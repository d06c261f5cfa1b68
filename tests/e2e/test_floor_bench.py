"""bench/peers/floor.c, the kernel's floor of `make bench`: it answers the upgrade with the
right Sec-WebSocket-Accept and delivers what the plain dialect asks for (its speed is a
bench figure, never a test's)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from bench import floor
from bench.dialects import PlainDialect

from hubbub.loadgen import Stats, client_frame, close_all, drain, open_client, subscribe
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(floor.available() is not None, reason=str(floor.available())),
]


@pytest.fixture
def port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(floor.command()(port, floor.SOURCE.parent))
    try:
        deadline = time.monotonic() + scaled(10)
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "floor did not start"
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(scaled(10))


def test_floor_answers_the_upgrade_with_the_rfc_6455_accept_value(port: int) -> None:
    """RFC 6455 section 1.3's sample key gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo=."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head


def test_floor_broadcasts_to_all_and_sends_room_messages_to_members_only(port: int) -> None:
    """A broadcast reaches every connection, a room message only the room's members."""

    async def run() -> tuple[int, int]:
        url = f"ws://127.0.0.1:{port}"
        inside, outside = Stats(), Stats()
        member = await open_client(url, PlainDialect("floor"), inside)
        other = await open_client(url, PlainDialect("floor"), outside)
        try:
            await subscribe(member, ["room"])
            other.send(client_frame(b"to everyone"))
            other.send(client_frame(b"Rroom " + b"y" * 300))  # a 16-bit length frame
            await drain(inside, 2, limit=scaled(5))
            await drain(outside, 1, limit=scaled(5))
            return inside.delivered, outside.delivered
        finally:
            close_all([member, other])

    assert asyncio.run(run()) == (2, 1)
