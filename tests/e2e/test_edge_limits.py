"""The HTTP edge's bounds (issue 12): handshake and keep-alive timeouts, header size, parser
refusals, the connection limit and the open-file limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import call, connected, wait_connections
from tests.support.rawws import handshake
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
WS_HEAD = (
    b"GET /rooms/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@contextlib.asynccontextmanager
async def tcp(server: ServerProcess) -> AsyncIterator[Stream]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, seconds: float = 5) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``seconds``)."""
    data = b""
    async with asyncio.timeout(scaled(seconds)):
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


async def response(reader: asyncio.StreamReader) -> tuple[int, str]:
    """Status and body of one HTTP response with Content-Length."""
    async with asyncio.timeout(scaled(5)):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        body = await reader.readexactly(length)
    return int(head.split(" ", 2)[1]), body.decode()


def headers(count: int, size: int) -> bytes:
    return b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * size) for i in range(count))


# -- handshake and keep-alive timeouts --------------------------------------------------------


async def test_silent_connection_is_closed_after_handshake_timeout(
    start_server: StartServer,
) -> None:
    server = start_server(config="handshake_timeout = 0.5\n")
    async with tcp(server) as (reader, _):
        assert await closed_by_server(reader) == b""


async def test_trickled_headers_are_cut_off_at_handshake_timeout(
    start_server: StartServer,
) -> None:
    """Slowloris: a byte every 50 ms keeps the socket busy but the request never completes."""
    server = start_server(config="handshake_timeout = 0.5\n")
    async with tcp(server) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            for _ in range(int(scaled(200))):  # ten seconds' worth, unless cut off
                writer.write(b"X-Slow: a\r\n"[:1])
                await asyncio.sleep(0.05)

        trickler = asyncio.create_task(trickle())
        try:
            assert await closed_by_server(reader) == b""
            assert not trickler.done()  # closed while the client was still sending
        finally:
            trickler.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickler


@pytest.mark.parametrize(
    "path",
    [
        "/emulation",
        "/connection/http_stream",
        "/connection/sse",
        "/connection/uni_http_stream",
        "/api/publish",
        "/api",
    ],
)
async def test_trickled_bodies_are_cut_off_at_handshake_timeout(
    start_server: StartServer, path: str
) -> None:
    """Slowloris on a body read by the server (the HTTP transports' POSTs, the server API's
    with its key): 408 at the deadline (then aiohttp reads the rest for 10 s at most, and
    closes); a body its peer cuts off leaves no traceback in the log."""
    key = "k" * 20
    server = start_server(config=f'handshake_timeout = 0.5\napi_key = "{key}"\n')
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    async with tcp(server) as (reader, writer):
        writer.write(head)

        async def trickle() -> None:
            for _ in range(int(scaled(200))):  # ten seconds' worth, unless cut off
                writer.write(b" ")
                await asyncio.sleep(0.05)

        trickler = asyncio.create_task(trickle())
        try:
            async with asyncio.timeout(scaled(5)):
                assert await reader.readline() == b"HTTP/1.1 408 Request Timeout\r\n"
            assert not trickler.done()  # refused while the client was still sending
        finally:
            trickler.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickler
    async with tcp(server) as (reader, writer):
        writer.write(head + b"{")
        await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/health") as resp:
        assert resp.status == 200
    assert "Traceback" not in server.stderr()


async def test_idle_keep_alive_connection_is_closed(start_server: StartServer) -> None:
    server = start_server(config="keepalive_timeout = 0.5\n")
    async with tcp(server) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _ = await response(reader)
        assert status == 200
        assert await closed_by_server(reader) == b""


async def test_websockets_outlive_the_handshake_timeout(start_server: StartServer) -> None:
    server = start_server(config="handshake_timeout = 0.5\n")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/") as ws,
        tcp(server) as (idle, _),
    ):
        await closed_by_server(idle)  # the handshake timeout has passed
        await ws.send_str("still here")
        assert (await asyncio.wait_for(ws.receive(), scaled(5))).data == "still here"


# -- header size --------------------------------------------------------------------------


async def test_oversized_handshake_is_431_and_logged_once(start_server: StartServer) -> None:
    """120 headers of 8000 bytes: each line within aiohttp's limits, the whole far beyond."""
    server = start_server()
    async with tcp(server) as (reader, writer):
        writer.write(WS_HEAD + headers(120, 8000) + b"\r\n")
        status, body = await response(reader)
    assert status == 431
    assert "16384 bytes" in body
    log = server.stderr()
    assert log.count("refused a request") == 1
    assert "Traceback" not in log


async def test_handshake_within_the_limit_is_accepted(start_server: StartServer) -> None:
    server = start_server()
    async with tcp(server) as (reader, writer):
        writer.write(WS_HEAD + headers(2, 6000) + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    assert head.startswith(b"HTTP/1.1 101 ")


async def test_oversized_later_request_is_431(start_server: StartServer) -> None:
    """A keep-alive connection's second request is held to the same limit, on any route."""
    server = start_server(config="max_handshake_header_bytes = 4096\n")
    async with tcp(server) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await response(reader))[0] == 200
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers(2, 3000) + b"\r\n")
        status, body = await response(reader)
        assert status == 431
        assert "4096 bytes" in body
        assert await closed_by_server(reader) == b""


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (WS_HEAD + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (WS_HEAD + headers(200, 1) + b"\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ],
    ids=["long-header-line", "too-many-headers", "long-url"],
)
async def test_parser_refusals_are_4xx_without_traceback(
    start_server: StartServer, head: bytes, status: int
) -> None:
    server = start_server()
    async with tcp(server) as (reader, writer):
        writer.write(head)
        assert (await response(reader))[0] == status
    log = server.stderr()
    assert log.count("refused a request") == 1
    assert "Traceback" not in log
    assert " ERROR " not in log


async def test_long_static_file_name_is_404(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        for name in ("a" * 5000, "a/" * 2500, "demo/style.css"):
            async with http.get(server.url + "/static/" + name) as resp:
                assert resp.status == (200 if name == "demo/style.css" else 404), name
    assert "Traceback" not in server.stderr()


# -- connection limit -----------------------------------------------------------------------


async def test_handshakes_beyond_the_connection_limit_get_503(start_server: StartServer) -> None:
    server = start_server(config="client_connection_limit = 2\n")
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(server.ws + "/rooms/a")
        async with http.ws_connect(server.ws + "/connection/websocket"):
            await wait_connections(server, 2)
            for path in ("/", "/rooms/a", "/connection/websocket"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(server.ws + path)
                assert refused.value.status == 503
            async with http.get(server.url + "/health") as resp:
                assert resp.status == 200  # plain HTTP is still answered
            await first.close()
            await wait_connections(server, 1)
            async with http.ws_connect(server.ws + "/") as again:
                await again.send_str("in")
                assert (await asyncio.wait_for(again.receive(), scaled(5))).data == "in"


# -- the open-file limit -----------------------------------------------------------------------

FD_LIMIT = 256


def lower_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def monitor_samples(ws: aiohttp.ClientWebSocketResponse, count: int) -> None:
    """Wait for ``count`` publications of the monitor demo (answering pings meanwhile)."""
    seen = 0
    async with asyncio.timeout(scaled(15)):
        while seen < count:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            for line in msg.data.split("\n"):
                if line == "{}":
                    await ws.send_str("{}")
                elif json.loads(line).get("push", {}).get("channel") == "monitor:host":
                    seen += 1


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_server_survives_a_flood_up_to_the_fd_limit(
    start_server: StartServer, event_loop: str
) -> None:
    """With RLIMIT_NOFILE at 256, 400 idle sockets: the demos keep publishing, the server
    answers again once they are gone, and SIGTERM exits 0 with no traceback."""
    server = start_server(
        env={"HUBBUB_EVENT_LOOP": event_loop},
        config="handshake_timeout = 60\n",
        preexec_fn=lower_fd_limit,
    )
    flood: list[asyncio.StreamWriter] = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server.ws + "/connection/websocket") as ws:
            await connected(ws)
            await call(ws, {"id": 2, "subscribe": {"channel": "monitor:host"}})

            async def one() -> None:
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(scaled(2)):
                        flood.append((await asyncio.open_connection("127.0.0.1", server.port))[1])

            await asyncio.gather(*(one() for _ in range(400)))
            assert len(flood) > FD_LIMIT  # accepted, or waiting in the listen backlog
            await monitor_samples(ws, 2)  # while the sockets are held
            for writer in flood:
                writer.close()
        async with asyncio.timeout(scaled(15)):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(server.url + "/health") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
        async with tcp(server) as (reader, writer):
            status, _ = await handshake(reader, writer, "127.0.0.1", server.port, "/")
            assert status == 101
    assert server.terminate(signal.SIGTERM) == 0
    log = server.stderr()
    assert "Traceback" not in log
    assert "Too many open files" not in log


@pytest.mark.parametrize("path", ["/emulation", "/connection/uni_http_stream", "/api/publish"])
async def test_compressed_request_bodies_are_not_inflated(
    start_server: StartServer, path: str
) -> None:
    """A body with ``Content-Encoding: gzip`` is taken as sent: a gzip bomb (50 MB of spaces
    in about 50 KB) costs no inflating, and gzip that would inflate to a good request is not
    one (aiohttp would inflate both in one zlib call, whatever the size limits)."""
    import gzip

    server = start_server("--api-key", "k" * 32)
    good = gzip.compress(json.dumps({"session": "s", "data": "{}", "channel": "c"}).encode())
    bomb = gzip.compress(b" " * 50_000_000)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    headers["X-API-Key"] = "k" * 32
    async with aiohttp.ClientSession() as http:
        for body in (good, bomb):
            async with http.post(server.url + path, data=body, headers=headers) as resp:
                assert resp.status == 400, await resp.text()
        async with http.get(server.url + "/health") as resp:
            assert resp.status == 200
