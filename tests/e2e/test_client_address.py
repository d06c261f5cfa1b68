"""The client address: what on_connect sees (forwarding headers believed only from
trusted_proxies) and the access log (one line per request and per session, secrets left out)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.hooks import ConnectContext, ConnectResult
from hubbub.hub import Hub
from tests.conftest import StartServer
from tests.support import uni
from tests.support.inprocess import serving
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

SPOOFED = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Real-IP": "203.0.113.8"}


def recording_hub(**settings: Any) -> tuple[Hub, list[str]]:
    hub = Hub(**settings)
    seen: list[str] = []

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult:
        seen.append(ctx.address)
        return ConnectResult(user="u")

    return hub, seen


async def connect_websocket(base: str, headers: dict[str, str]) -> None:
    url = "ws" + base[len("http") :] + "/connection/websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_str(json.dumps({"id": 1, "connect": {}}))
        reply = json.loads((await ws.receive(scaled(5))).data)
        assert "connect" in reply, reply


async def connect_uni(base: str, transport: str, headers: dict[str, str]) -> None:
    async with uni.connect(base, transport, {}, headers=headers) as pushes:
        assert "connect" in (await pushes.next()), "no connect push"


@pytest.mark.parametrize("transport", ["websocket", "uni_sse", "uni_http_stream"])
@pytest.mark.parametrize(
    ("trusted", "expected"),
    [([], "127.0.0.1"), (["127.0.0.1/32"], "203.0.113.9"), (["10.0.0.0/8"], "127.0.0.1")],
    ids=["nobody-trusted", "peer-trusted", "other-proxy-trusted"],
)
async def test_on_connect_sees_the_client_address(
    tmp_path: Path, transport: str, trusted: list[str], expected: str
) -> None:
    """ctx.address is the peer, or the last untrusted X-Forwarded-For hop when the peer is a
    trusted proxy: headers a client sends hubbub directly change nothing."""
    hub, seen = recording_hub(trusted_proxies=trusted)
    async with serving(hub, tmp_path) as base:
        if transport == "websocket":
            await connect_websocket(base, SPOOFED)
        else:
            await connect_uni(base, transport, SPOOFED)
    assert seen == [expected]


async def test_real_ip_when_no_forwarded_for(tmp_path: Path) -> None:
    hub, seen = recording_hub(trusted_proxies=["127.0.0.1"])
    async with serving(hub, tmp_path) as base:
        await connect_websocket(base, {"X-Real-IP": "2001:db8::5"})
    assert seen == ["2001:db8::5"]


def access_lines(log: str) -> list[str]:
    return [
        line.split("hubbub.access: ", 1)[1] for line in log.splitlines() if "hubbub.access" in line
    ]


async def test_access_log_lines(start_server: StartServer) -> None:
    """access_log = true: a line per request with the client address (forwarded, from a
    trusted proxy), the path with token values redacted, status and bytes; a WebSocket's
    line comes when it ends."""
    server = start_server(config='access_log = true\ntrusted_proxies = ["127.0.0.1/32"]\n')
    secret = "sup3r-s3cret-token"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/health?token={secret}&x=1") as resp:
            assert resp.status == 200
            body = await resp.read()
        async with http.get(
            f"{server.url}/nope?cf_connect=%7B%22token%22%3A%22{secret}%22%7D",
            headers={"X-Forwarded-For": "203.0.113.9"},
        ) as resp:
            assert resp.status == 404
        async with http.ws_connect(server.ws + "/") as ws:
            await ws.send_str("hi")
            await ws.receive(scaled(5))
    lines: list[str] = []
    for _ in range(int(scaled(50))):  # the WebSocket's line is written once it has ended
        lines = access_lines(server.stderr())
        if len(lines) >= 3:
            break
        await asyncio.sleep(0.1)
    assert secret not in server.stderr()
    assert len(lines) == 3, lines
    health, missing, ws_line = lines
    assert health.startswith('127.0.0.1 "GET /health?token=REDACTED&x=1" 200 ')
    assert int(health.split()[4]) > len(body)  # headers and body
    assert missing.startswith('203.0.113.9 "GET /nope?cf_connect=REDACTED" 404 ')
    assert ws_line.startswith('127.0.0.1 "GET /" 101 ')


async def test_a_malformed_request_is_logged_not_a_traceback(start_server: StartServer) -> None:
    """A request aiohttp refuses before routing (400: a control character in its path, a bad
    header) gets its access line; the logger does not fail on it (an ERROR with a traceback
    per bad request, which let a client flood the log)."""
    server = start_server(config='access_log = true\ntrusted_proxies = ["127.0.0.1/32"]\n')
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    for request in (b"GET /a\x1bb HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nX-Real-IP: \x7f\r\n"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request + b"Host: x\r\nConnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), scaled(5))
        assert b" 400 " in status
        writer.close()
        await writer.wait_closed()
    lines: list[str] = []
    for _ in range(int(scaled(50))):
        lines = access_lines(server.stderr())
        if len(lines) >= 2:
            break
        await asyncio.sleep(0.1)
    assert "Traceback" not in server.stderr()
    assert [line.split('"')[2].split()[0] for line in lines] == ["400", "400"], lines
