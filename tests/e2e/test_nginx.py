"""The example nginx config (deploy/nginx/hubbub.conf) in front of hubbub, with a real nginx
from Debian: WebSocket upgrade (centrifuge-python through it), a uni_sse event arriving while
the stream stays open (no buffering), the server API through it, and the client address the
hook sees (forwarded only when trusted_proxies holds nginx's address)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from centrifuge import Client, PublicationContext, SubscriptionEventHandler

from hubbub.hooks import ConnectContext, ConnectResult
from hubbub.hub import Hub
from tests.conftest import need_binary
from tests.support.inprocess import serving
from tests.support.sdk import SDK_GARBAGE
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.e2e,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "hubbub.conf"
KEY = "nginx-api-key-0123456789"
#: The test's client connects from this loopback address, so that nginx's address
#: (127.0.0.1, hubbub's peer) and the client's can be told apart.
CLIENT_IP = "127.0.0.2"

MAIN_CONF = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log notice;
{user}
events {{ worker_connections 128; }}
http {{
    access_log {tmp}/access.log;
    # As many a site's nginx.conf has it: compression of text responses, which would hold
    # events back in gzip's buffer unless the example turns it off for the streams.
    gzip on;
    gzip_types text/plain text/event-stream application/json;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/hubbub.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(example: str, upstream: int, listen: int) -> str:
    """The example with hubbub's and nginx's ports changed, nothing else."""
    out = example.replace("server 127.0.0.1:8765;", f"server 127.0.0.1:{upstream};")
    out = out.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    assert out.count(f":{upstream};") == 1 and out.count(f":{listen};") == 1, "example changed"
    return out


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    url: str
    tmp: Path

    def log(self) -> str:
        return (self.tmp / "error.log").read_text(errors="replace")


@asynccontextmanager
async def nginx_in_front(hubbub_url: str, tmp: Path) -> AsyncIterator[Nginx]:
    """A foreground nginx with its prefix, logs and pid in ``tmp``, serving the example
    config on a free port in front of ``hubbub_url``; stopped (SIGTERM, then SIGKILL)."""
    binary = need_binary("nginx", "/usr/sbin/nginx")
    tmp.mkdir()  # noqa: ASYNC240 (a test's set-up, nothing else runs)
    port = free_port()
    upstream = int(hubbub_url.rsplit(":", 1)[1])
    (tmp / "hubbub.conf").write_text(render(EXAMPLE.read_text(), upstream, port))
    user = "user root;" if os.geteuid() == 0 else ""  # workers may use the tmp dir
    (tmp / "nginx.conf").write_text(MAIN_CONF.format(tmp=tmp, user=user))
    cmd = [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    nginx = Nginx(proc, f"http://127.0.0.1:{port}", tmp)
    try:
        until = time.monotonic() + scaled(10)
        while True:  # ready once it accepts
            assert proc.poll() is None, f"nginx exited: {nginx.log()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < until, f"nginx did not listen: {nginx.log()}"
                await asyncio.sleep(0.05)
        yield nginx
    finally:
        proc.terminate()
        try:
            proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def recording_hub(trusted: list[str]) -> tuple[Hub, list[str]]:
    hub = Hub(api_key=KEY, trusted_proxies=trusted)
    seen: list[str] = []

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult:
        seen.append(ctx.address)
        return ConnectResult(user="u", channels=["ticks"])  # a server-side subscription

    return hub, seen


def from_client_ip() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CLIENT_IP, 0)))


async def publish(base: str, channel: str, data: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            base + "/api/publish",
            json={"channel": channel, "data": data},
            headers={"X-API-Key": KEY},
        ) as resp,
    ):
        assert "result" in await resp.json(), resp.status


class Inbox(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: asyncio.Queue[Any] = asyncio.Queue()

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.pubs.put(ctx.pub.data)


async def test_centrifuge_python_through_nginx(tmp_path: Path) -> None:
    """The WebSocket upgrade goes through; a publication made through nginx's /api arrives."""
    hub, _ = recording_hub(["127.0.0.1/32"])
    async with serving(hub, tmp_path / "data") as base, nginx_in_front(base, tmp_path / "ng") as ng:
        client = Client("ws" + ng.url[len("http") :] + "/connection/websocket")
        await client.connect()
        try:
            await client.ready(scaled(10))
            inbox = Inbox()
            sub = client.new_subscription("news", events=inbox)
            await sub.subscribe()
            await sub.ready(scaled(5))
            await publish(ng.url, "news", {"via": "nginx"})
            assert await asyncio.wait_for(inbox.pubs.get(), scaled(5)) == {"via": "nginx"}
        finally:
            await client.disconnect()


async def test_uni_sse_event_arrives_while_the_stream_is_open(tmp_path: Path) -> None:
    """uni_sse through nginx: the connect push, then a publication, each as soon as hubbub
    writes it (nothing buffered until the stream ends)."""
    hub, _ = recording_hub([])
    async with serving(hub, tmp_path / "data") as base, nginx_in_front(base, tmp_path / "ng") as ng:
        connect = quote(json.dumps({}))
        # Held back headers or events fail within seconds (not aiohttp's 5 minutes).
        bounded = aiohttp.ClientTimeout(total=None, sock_connect=scaled(5), sock_read=scaled(5))
        async with (
            aiohttp.ClientSession(timeout=bounded) as http,
            http.get(f"{ng.url}/connection/uni_sse?cf_connect={connect}") as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")

            async def next_event() -> dict[str, Any]:
                while True:
                    line = await asyncio.wait_for(resp.content.readline(), scaled(5))
                    assert line, "the stream ended"
                    if line.startswith(b"data: "):
                        event: dict[str, Any] = json.loads(line[len(b"data: ") :])
                        if event:  # {} is a ping
                            return event

            assert "connect" in await next_event()
            await publish(ng.url, "ticks", {"n": 1})
            event = await next_event()
            assert event["channel"] == "ticks" and event["pub"]["data"] == {"n": 1}
            assert not resp.content.at_eof()


async def ws_connect(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    async with http.ws_connect(url + "/connection/websocket", headers=headers) as ws:
        await ws.send_str(json.dumps({"id": 1, "connect": {}}))
        assert "connect" in json.loads((await ws.receive(scaled(5))).data)


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [(["127.0.0.1/32"], CLIENT_IP), ([], "127.0.0.1")],
    ids=["nginx-trusted", "nobody-trusted"],
)
async def test_the_hook_sees_the_forwarded_address_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: list[str], expected: str
) -> None:
    """Through nginx the hook sees the client's address when nginx is trusted, nginx's
    otherwise; an X-Forwarded-For the client adds itself is passed on by nginx but not
    believed (the walk stops at the address nginx saw)."""
    hub, seen = recording_hub(trusted)
    async with serving(hub, tmp_path / "data") as base, nginx_in_front(base, tmp_path / "ng") as ng:
        ws_base = "ws" + ng.url[len("http") :]
        async with from_client_ip() as http:
            await ws_connect(http, ws_base, {})
            await ws_connect(http, ws_base, {"X-Forwarded-For": "203.0.113.9"})
    assert seen == [expected, expected]


async def test_spoofed_header_sent_to_hubbub_directly_is_ignored(tmp_path: Path) -> None:
    """A client reaching hubbub itself (not through nginx) cannot pick its address."""
    hub, seen = recording_hub(["127.0.0.1/32"])
    async with serving(hub, tmp_path / "data") as base, from_client_ip() as http:
        spoof = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
        await ws_connect(http, "ws" + base[len("http") :], spoof)
    assert seen == [CLIENT_IP]


def test_the_deployment_guide_quotes_the_tested_config() -> None:
    """docs/deployment.md shows deploy/nginx/hubbub.conf as it is (the file this test runs)."""
    guide = (EXAMPLE.parents[2] / "docs" / "deployment.md").read_text()
    assert f"```nginx\n{EXAMPLE.read_text()}```" in guide
