"""What the HTTP streams put on the wire, read from a raw socket: over HTTP/1.1 a chunked body
that a strict decoder takes, chunk by chunk, to its last chunk; over HTTP/1.0 the bare body,
ended by the end of the connection."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.chunked import dechunk
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "f" * 32
SECRET = "g" * 32
CONFIG = """
[[namespaces]]
name = "nohist"
"""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)


async def api(server: ServerProcess, method: str, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=body, headers={"X-API-Key": KEY}) as resp,
    ):
        answer = await resp.json()
    assert resp.status == 200 and "error" not in answer, answer


def request(server: ServerProcess, transport: str, user: str, version: str) -> bytes:
    """The raw request of a stream whose token subscribes ``user`` to two channels."""
    connect = json.dumps({"token": mint(SECRET, user, channels=["bench", "nohist:c"])})
    host = urlsplit(server.url).netloc
    if transport == "uni_sse":
        path = f"/connection/uni_sse?cf_connect={quote(connect)}"
        return f"GET {path} HTTP/{version}\r\nHost: {host}\r\n\r\n".encode()
    body = connect.encode()
    head = (
        f"POST /connection/{transport} HTTP/{version}\r\nHost: {host}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def messages(transport: str, body: bytes) -> list[dict[str, Any]]:
    """The pushes of a stream's body (SSE: the data of each event; empty lines and the
    preamble skipped; pings dropped)."""
    text = body.decode()
    if transport == "uni_sse":
        assert text.startswith("\r\n")  # the preamble
        events = [e for e in text[2:].split("\n\n") if e]
        lines = [line for e in events for line in e.split("\n") if line.startswith("data: ")]
        found = [json.loads(line[len("data: ") :]) for line in lines]
    else:
        assert text.endswith("\n")
        found = [json.loads(line) for line in text.split("\n") if line]
    return [m for m in found if m]


async def publish_then_disconnect(server: ServerProcess, user: str) -> None:
    """Publications one by one and in a batch (several in one loop turn), then the end."""
    for n in range(3):
        await api(server, "publish", {"channel": "bench", "data": {"n": n}})
    commands = [{"publish": {"channel": "nohist:c", "data": {"n": n}}} for n in range(3, 8)]
    await api(server, "batch", {"commands": commands})
    await api(server, "disconnect", {"user": user, "disconnect": {"code": 4100, "reason": "x"}})


def expect(pushes: list[dict[str, Any]]) -> None:
    assert "connect" in pushes[0]
    assert [p["pub"]["data"]["n"] for p in pushes[1:-1]] == list(range(8))
    assert pushes[-1] == {"disconnect": {"code": 4100, "reason": "x"}}


@pytest.mark.parametrize("transport", ["uni_sse", "uni_http_stream"])
async def test_http11_stream_is_strictly_chunked(server: ServerProcess, transport: str) -> None:
    reader, writer = await asyncio.open_connection(*urlsplit(server.url).netloc.split(":"))
    try:
        writer.write(request(server, transport, "ada", "1.1"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(10))
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\ntransfer-encoding: chunked\r\n" in head.lower()
        assert b"content-length" not in head.lower()
        body = b""
        while b'"connect"' not in body:  # subscribed once the connect push came
            body += await asyncio.wait_for(reader.read(65536), scaled(10))
        await publish_then_disconnect(server, "ada")
        while not dechunk(body)[1]:
            data = await asyncio.wait_for(reader.read(65536), scaled(10))
            assert data, "the connection ended before the last chunk"
            body += data
    finally:
        writer.close()
    chunks, ended = dechunk(body)
    assert ended
    expect(messages(transport, b"".join(chunks)))


@pytest.mark.parametrize("transport", ["uni_sse", "uni_http_stream"])
async def test_http10_stream_is_the_bare_body_until_the_end(
    server: ServerProcess, transport: str
) -> None:
    reader, writer = await asyncio.open_connection(*urlsplit(server.url).netloc.split(":"))
    try:
        writer.write(request(server, transport, "bo", "1.0"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(10))
        assert head.startswith(b"HTTP/1.0 200 ") or head.startswith(b"HTTP/1.1 200 ")
        assert b"transfer-encoding" not in head.lower()
        assert b"content-length" not in head.lower()
        body = b""
        while b'"connect"' not in body:
            body += await asyncio.wait_for(reader.read(65536), scaled(10))
        await publish_then_disconnect(server, "bo")
        body += await asyncio.wait_for(reader.read(), scaled(10))  # until the server closes
    finally:
        writer.close()
    expect(messages(transport, body))


async def test_an_sse_stream_that_is_not_read_is_cut_off_as_slow(
    start_server: StartServer,
) -> None:
    """Publications one at a time to a peer that stops reading (small receive buffer): the
    socket fills, then what waits passes the limit; once the peer reads again it gets what
    the socket held, then the slow disconnect and the last chunk."""
    server = start_server(
        "--api-key", KEY, "--token-hmac-secret", SECRET,
        config="write_buffer_limit = 65536\n" + CONFIG,
    )  # fmt: skip
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(request(server, "uni_sse", "ka", "1.1"))
        body = await asyncio.wait_for(reader.readuntil(b'"connect"'), scaled(10))
        for n in range(2000):  # ~32 MB at most; the kernel's buffers take a few
            await api(
                server, "publish", {"channel": "nohist:c", "data": {"n": n, "x": "x" * 16000}}
            )
            if n % 20 == 0 and "closing slow consumer" in server.stderr():
                break
        assert "closing slow consumer" in server.stderr()
        body = body.partition(b"\r\n\r\n")[2]
        while not dechunk(body)[1]:  # reading again: what the socket held, then the end
            data = await asyncio.wait_for(reader.read(1 << 20), scaled(10))
            assert data, "the connection ended before the last chunk"
            body += data
    finally:
        writer.close()
    chunks, _ = dechunk(body)
    pushes = messages("uni_sse", b"".join(chunks))
    assert pushes[-1] == {"disconnect": {"code": 3008, "reason": "slow"}}
    numbers = [p["pub"]["data"]["n"] for p in pushes[1:-1]]
    assert numbers == list(range(len(numbers)))  # in order, what waited dropped at the end
    assert len(numbers) < n + 1
