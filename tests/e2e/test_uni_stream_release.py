"""An HTTP stream is freed when it ends, by reference counting alone (as WebSockets are, see
test_connection_release.py): the StreamConnection and aiohttp's protocol object are gone,
with the GC disabled, after the peer drops the connection or after the server ends the stream
and the peer then closes."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web_protocol

from hubbub.auth import mint
from hubbub.dialects.centrifuge.emulation import EmulatedConnection
from hubbub.hub import Hub
from hubbub.server.httpstream import StreamConnection
from tests.support.inprocess import serving
from tests.support.timing import scaled

SECRET = "r" * 32


@pytest.fixture
def gc_disabled() -> Iterator[None]:
    gc.collect()  # garbage of earlier tests, before the GC stops
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()  # what a failing case left, collected (and any warning raised) here


def _alive(kinds: type | tuple[type, ...]) -> list[str]:
    """The server's objects of ``kinds`` still alive (they cannot be weakly referenced)."""
    return [type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)]


async def freed(kinds: type | tuple[type, ...]) -> list[str]:
    """Wait (bounded) for every object of ``kinds`` to be gone; those alive at the deadline."""
    deadline = asyncio.get_running_loop().time() + scaled(3)
    while _alive(kinds) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return _alive(kinds)


@pytest.mark.usefixtures("gc_disabled")
@pytest.mark.parametrize(
    ("transport", "ending"),
    [
        ("uni_http_stream", "tcp-drop"),
        ("uni_sse", "server-close"),
        ("http_stream", "tcp-drop"),  # emulated: a command, no Content-Type (JSON, then)
        ("sse", "server-close"),
    ],
)
async def test_an_ended_stream_is_freed_without_the_cyclic_gc(
    tmp_path: Path, transport: str, ending: str
) -> None:
    hub = Hub(port=0, history="memory", token_hmac_secret=SECRET)
    async with serving(hub, tmp_path) as base:
        host, port = base.split("http://", 1)[1].rsplit(":", 1)
        connect = {"token": mint(SECRET, "ada", channels=["c"])}
        if not transport.startswith("uni_"):
            connect = {"id": 1, "connect": connect}
        body = json.dumps(connect).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /connection/{transport} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await asyncio.wait_for(reader.readuntil(b'"connect"'), scaled(10))
        await hub.publish("c", {"n": 1})
        await asyncio.wait_for(reader.readuntil(b'"pub"'), scaled(10))
        kept: list[str] = []  # alive while the connection stays (keep-alive): nothing
        try:
            if ending == "server-close":
                (conn,) = [o for o in gc.get_objects() if isinstance(o, StreamConnection)]
                conn.close(4000, "closed by the test")
                del conn
                data = b""
                while not data.endswith(b"\r\n0\r\n\r\n"):  # the disconnect push, the end
                    data += await asyncio.wait_for(reader.read(65536), scaled(10))
                assert b"4000" in data
                kept = await freed(StreamConnection)
            else:
                writer.transport.abort()
        finally:
            writer.close()
            del reader, writer
        assert kept == []
        kinds = (StreamConnection, EmulatedConnection, web_protocol.RequestHandler)
        assert await freed(kinds) == []
