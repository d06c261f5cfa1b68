"""hubbub serving TLS itself (tls_cert, tls_key): wss:// with centrifuge-python, the echo
WebSocket and the server API over https://, bad files refused at start, plain HTTP and silent
sockets on the TLS port closed within handshake_timeout."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from centrifuge import Client, PublicationContext, SubscriptionEventHandler

from tests.conftest import StartServer
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled
from tests.support.tls import Certificate, self_signed

pytestmark = [
    pytest.mark.e2e,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]

KEY = "tls-api-key-0123456789"


@pytest.fixture
def cert(tmp_path: Path) -> Certificate:
    return self_signed(tmp_path)


@pytest.fixture(params=["asyncio", "uvloop"])
def tls_server(
    start_server: StartServer, cert: Certificate, request: pytest.FixtureRequest
) -> ServerProcess:
    """A TLS server on each event loop (their TLS implementations differ)."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    config = f'handshake_timeout = 1.0\nevent_loop = "{request.param}"\n'
    return start_server("--api-key", KEY, env=cert.env, config=config)


class Inbox(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: asyncio.Queue[Any] = asyncio.Queue()

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.pubs.put(ctx.pub.data)


def test_ready_line_says_https(tls_server: ServerProcess) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    assert tls_server.ws.startswith("wss://")


async def test_centrifuge_python_over_wss(tls_server: ServerProcess, cert: Certificate) -> None:
    """The SDK connects over wss:// trusting the certificate; a publication made through the
    server API over https:// reaches it."""
    context = cert.client_context()
    client = Client(tls_server.ws + "/connection/websocket", ssl_context=context)
    await client.connect()
    try:
        await client.ready(scaled(10))
        inbox = Inbox()
        sub = client.new_subscription("news", events=inbox)
        await sub.subscribe()
        await sub.ready(scaled(5))
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                tls_server.url + "/api/publish",
                json={"channel": "news", "data": {"over": "tls"}},
                headers={"X-API-Key": KEY},
                ssl=context,
            ) as resp,
        ):
            assert "result" in await resp.json()
        assert await asyncio.wait_for(inbox.pubs.get(), scaled(5)) == {"over": "tls"}
    finally:
        await client.disconnect()


async def test_echo_over_tls(tls_server: ServerProcess, cert: Certificate) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(tls_server.ws + "/", ssl=cert.client_context()) as ws,
    ):
        await ws.send_str("hello over tls")
        assert (await ws.receive(scaled(5))).data == "hello over tls"


async def test_untrusted_certificate_is_refused_by_the_client(tls_server: ServerProcess) -> None:
    """A client with the default trust store does not accept the self-signed certificate
    (the server really speaks TLS with it)."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(tls_server.url + "/health")


def _closed_within(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` seconds (what it sends first is
    read and dropped)."""
    sock.settimeout(0.2)
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_plain_http_to_the_tls_port_fails_cleanly(
    tls_server: ServerProcess, cert: Certificate
) -> None:
    """Plain HTTP on the TLS port: the connection is closed, nothing is logged above DEBUG
    (no traceback), and the server goes on serving TLS."""
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=scaled(5)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _closed_within(sock, scaled(5))
    out = subprocess.run(
        [sys.executable, "-c", _HEALTH_OVER_TLS, tls_server.url, str(cert.cert)],
        capture_output=True, text=True, timeout=scaled(30),
    )  # fmt: skip
    assert out.stdout.strip() == "200", out.stderr
    log = tls_server.stderr()
    assert "Traceback" not in log and "ERROR" not in log, log


_HEALTH_OVER_TLS = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
print(urllib.request.urlopen(sys.argv[1] + "/health", context=ctx, timeout=10).status)
"""


def test_silent_socket_closed_at_handshake_timeout(tls_server: ServerProcess) -> None:
    """A client that opens TCP and never starts TLS is closed after handshake_timeout (1 s
    here), not after the event loop's 60 s."""
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=scaled(5)) as sock:
        started = time.monotonic()
        assert _closed_within(sock, scaled(10))
        assert time.monotonic() - started < scaled(10)
    assert "Traceback" not in tls_server.stderr()


def test_tls_with_api_port(start_server: StartServer, cert: Certificate) -> None:
    """The API port serves TLS too, and says so."""
    server = start_server("--api-key", KEY, "--api-port", "0", env=cert.env)
    line = server.read_line()
    assert line.startswith("hubbub server API at https://127.0.0.1:"), line


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HUBBUB_TLS_CERT": "{cert}"}, "tls_cert is set but tls_key is not"),
        ({"HUBBUB_TLS_CERT": "{dir}/missing.pem", "HUBBUB_TLS_KEY": "{key}"}, "cannot read"),
        ({"HUBBUB_TLS_CERT": "{key}", "HUBBUB_TLS_KEY": "{cert}"}, "are not a PEM certificate"),
        ({"HUBBUB_TLS_CERT": "{cert}", "HUBBUB_TLS_KEY": "{garbage}"}, "are not a PEM"),
    ],
    ids=["cert-without-key", "missing-file", "swapped", "garbage-key"],
)
def test_bad_tls_settings_are_a_clear_error(
    cert: Certificate, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    values = {"cert": cert.cert, "key": cert.key, "dir": tmp_path, "garbage": garbage}
    full = {k: v for k, v in __import__("os").environ.items() if not k.startswith("HUBBUB_")}
    full.update({k: v.format(**values) for k, v in env.items()})
    out = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=full, timeout=scaled(30),
    )  # fmt: skip
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_workers_serve_tls(start_server: StartServer, cert: Certificate, redis_server: Any) -> None:
    """--workers 2 with TLS: the supervisor's ready line says https, and TLS is served."""
    server = start_server("--engine", redis_server.url, "--workers", "2", env=cert.env)
    assert server.url.startswith("https://")
    out = subprocess.run(
        [sys.executable, "-c", _HEALTH_OVER_TLS, server.url, str(cert.cert)],
        capture_output=True, text=True, timeout=scaled(30),
    )  # fmt: skip
    assert out.stdout.strip() == "200", out.stderr


async def test_the_edge_settings_as_command_line_flags(
    start_server: StartServer, cert: Certificate
) -> None:
    """`hubbub serve --tls-cert F --tls-key F --trusted-proxies N --access-log`: the same
    settings as the TOML keys (a systemd unit or a shell line needs no config file)."""
    server = start_server(
        "--tls-cert",
        str(cert.cert),
        "--tls-key",
        str(cert.key),
        "--trusted-proxies",
        "127.0.0.1/32,::1/128",
        "--access-log",
    )
    assert server.url.startswith("https://")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            server.url + "/health",
            ssl=cert.client_context(),
            headers={"X-Forwarded-For": "203.0.113.9"},
        ) as r,
    ):
        assert r.status == 200
    # the access log names the forwarded client: the loopback peer is a trusted proxy
    await eventually(
        lambda: "hubbub.access" in server.stderr() and "203.0.113.9" in server.stderr()
    )
