# ruff: noqa: E501  (the tables read best one row per line)
"""The security table (issue 12): attacks on a real ``hubbub serve``, each row with the answer
it must get.

1. Hostile ``Origin`` headers on every WebSocket route, with ``allowed_origins`` set.
2. Forged JWTs: the table of ``tests/unit/test_auth_forgeries.py`` (its rows for a server with
   every kind of key), sent in ``connect`` and ``subscribe`` commands, plus what only a
   connection can check (another channel's or user's token, refresh).
3. ``/admin``: CSRF (POSTs without ``X-Hubbub-Admin``), odd and foreign ``Host`` headers under
   ``admin_insecure``, proxy headers, Basic auth forms.
4. Static path tricks: never a file from outside the static directory, never a 500.
5. The server API: API key forms, body limit, content types.

Requests are written byte for byte (:func:`http`): clients such as aiohttp normalise the
very paths and headers these rows are about. Rows marked ``xfail(strict=True)`` are defects
reported and left to the owners of the code in question.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from tests.support.server import ROOT, ServerProcess
from tests.support.timing import scaled
from tests.unit.test_auth_forgeries import (
    ACCEPTED,
    EXPIRED,
    INVALID,
    TABLE,
    VALID,
    Answer,
    Ctx,
    Keys,
    Kind,
    Row,
    rows_for,
)

pytestmark = pytest.mark.e2e

# -- raw HTTP -------------------------------------------------------------------------------

Headers = Sequence[tuple[str, str]]
WS_HANDSHAKE: Final[Headers] = (
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; the first of repeated ones
    body: bytes


async def http(
    port: int,
    method: str,
    target: str,
    headers: Headers = (),
    body: bytes = b"",
    *,
    default_host: bool = True,
    websocket: bool = False,
) -> Reply:
    """One request written as given (request line and header values in Latin-1, so a
    character U+00XX is the byte 0xXX on the wire); the reply's status, headers and body.
    A ``Host: 127.0.0.1:<port>`` is added unless ``headers`` has one or ``default_host`` is
    false; ``websocket`` adds a handshake's headers (the reply to a 101 has no body)."""
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {target} HTTP/1.1"]
    if default_host and "host" not in names:
        lines.append(f"Host: 127.0.0.1:{port}")
    lines += [
        f"{name}: {value}" for name, value in (*headers, *(WS_HANDSHAKE if websocket else ()))
    ]
    if not websocket:
        lines.append("Connection: close")
    if body and not names & {"content-length", "transfer-encoding"}:
        lines.append(f"Content-Length: {len(body)}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(10))
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        got: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                got.setdefault(name.strip().lower(), value.strip())
        if status == 101:
            return Reply(status, got, b"")
        return Reply(status, got, await asyncio.wait_for(read_body(reader, got), scaled(10)))
    finally:
        writer.close()


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return await reader.read()
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += (await reader.readexactly(size + 2))[:-2]
    await reader.readuntil(b"\r\n")
    return body


def serve(tmp: Path, config: str, env: dict[str, str] | None = None) -> ServerProcess:
    (tmp / "hubbub.toml").write_text(config)
    args = ["--config", str(tmp / "hubbub.toml"), "--data-dir", str(tmp / "data")]
    return ServerProcess(args, env, tmp / "server.log")


def params(rows: Sequence[Any], *, first: Sequence[str] = ("",)) -> list[Any]:
    """pytest params from rows ``(id, *values)`` or ``pytest.param(id, *values, marks=...)``.
    With ``first`` (e.g. routes), one param per row and item, the item before the values."""
    out = []
    for row in rows:
        values, marks = (row.values, row.marks) if hasattr(row, "marks") else (row, ())
        for item in first:
            head = (item,) if item else ()
            out.append(pytest.param(*head, *values[1:], id=f"{values[0]}{item}", marks=marks))
    return out


def stop(server: ServerProcess) -> None:
    try:
        server.terminate()
    finally:
        server.kill()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default settings: no password, no API key, demos on."""
    server = serve(tmp_path_factory.mktemp("plain"), "")
    yield server
    stop(server)


# -- 1. Origins -----------------------------------------------------------------------------

ALLOWED_ORIGINS: Final = ("https://app.example.com", "https://other.example:8443")
ROUTES: Final = ("/", "/rooms/lobby", "/connection/websocket")


#: (id, Origin header values, each one header line, expected handshake status)
ORIGINS: list[Any] = [
    ("allowed", ["https://app.example.com"], 101),
    ("allowed-upper-case", ["HTTPS://APP.EXAMPLE.COM"], 101),  # scheme and host are case-insensitive
    ("allowed-with-port", ["https://other.example:8443"], 101),
    ("allowed-padded", ["  https://app.example.com  "], 101),  # HTTP strips the blanks
    ("no-origin", [], 101),  # not a browser (design.md, "Origins")
    ("foreign", ["https://evil.example"], 403),
    ("null", ["null"], 403),
    ("empty", [""], 403),
    ("wildcard", ["*"], 403),
    ("other-scheme-http", ["http://app.example.com"], 403),
    ("other-scheme-wss", ["wss://app.example.com"], 403),
    ("other-port", ["https://app.example.com:8443"], 403),
    ("explicit-default-port", ["https://app.example.com:443"], 403),  # browsers never write it
    ("port-missing", ["https://other.example"], 403),
    ("trailing-slash", ["https://app.example.com/"], 403),
    ("trailing-dot", ["https://app.example.com."], 403),
    ("with-path", ["https://app.example.com/chat"], 403),
    ("suffix-trick", ["https://app.example.com.evil.net"], 403),
    ("prefix-trick", ["https://evilapp.example.com"], 403),
    ("subdomain", ["https://sub.app.example.com"], 403),
    ("userinfo-trick", ["https://app.example.com@evil.net"], 403),
    ("fragment-trick", ["https://evil.net#https://app.example.com"], 403),
    ("homoglyph", ["https://\xd0\xb0pp.example.com"], 403),  # Cyrillic a, UTF-8 bytes
    ("list-in-one-header", ["https://app.example.com, https://evil.net"], 403),
    ("two-headers-foreign-first", ["https://evil.net", "https://app.example.com"], 403),
    pytest.param("two-headers-allowed-first", ["https://app.example.com", "https://evil.net"], 403),
]  # fmt: skip


@pytest.fixture(scope="module")
def origins_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = f"allowed_origins = {json.dumps(list(ALLOWED_ORIGINS))}\n"
    server = serve(tmp_path_factory.mktemp("origins"), config)
    yield server
    stop(server)


@pytest.mark.parametrize(("route", "origins", "status"), params(ORIGINS, first=ROUTES))
async def test_origins(
    origins_server: ServerProcess, route: str, origins: list[str], status: int
) -> None:
    reply = await http(
        origins_server.port, "GET", route, [("Origin", o) for o in origins], websocket=True
    )
    assert reply.status == status, reply
    if status == 403:
        assert b"is not allowed" in reply.body


# -- 2. Tokens ------------------------------------------------------------------------------

#: Where a server's answer differs from the verifier's, by (row, kind).
SERVED_ANSWERS: Final[dict[tuple[str, Kind], tuple[int, str]]] = {
    # A lone surrogate in the command's JSON is refused by the protocol (107) first.
    ("lone-surrogate", "connect"): (107, ""),
    ("lone-surrogate", "subscribe"): (107, ""),
    # The verifier admits the token; the connection refuses a session already over.
    ("expire_at-passed-exp-valid", "connect"): (EXPIRED, ""),
    ("expire_at-passed-exp-valid", "subscribe"): (EXPIRED, ""),
    # An empty token is no token: anonymous, which this server refuses (101); a subscribe
    # without a token is up to the namespace's permissions (the default allows it).
    ("empty", "connect"): (101, "unauthorized"),
    ("empty", "subscribe"): (ACCEPTED, ""),
}


@dataclass(frozen=True)
class TokenServer:
    server: ServerProcess
    keys: Keys


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    tmp = tmp_path_factory.mktemp("tokens")
    keys = Keys(tmp)
    # 2 MiB messages, so that the 1 MB tokens reach the token check (the default, 64 KiB,
    # closes with 1009 first).
    server = serve(tmp, keys.toml() + "max_message_size = 2097152\nallow_anonymous = false\n")
    yield TokenServer(server, keys)
    stop(server)


async def first_answer(ws: aiohttp.ClientWebSocketResponse, command: dict[str, Any]) -> Answer:
    """Send ``command``; its reply (0, or the error's code and message) or the close."""
    await ws.send_str(json.dumps(command))
    msg = await asyncio.wait_for(ws.receive(), scaled(10))
    if msg.type == aiohttp.WSMsgType.TEXT:
        reply = json.loads(msg.data.split("\n")[0])
        assert reply.get("id") == command["id"], reply
        error = reply.get("error")
        return Answer(error["code"], error.get("message", "")) if error else Answer(ACCEPTED)
    if msg.type == aiohttp.WSMsgType.CLOSE:
        return Answer(int(msg.data), msg.extra or "")
    return Answer(ws.close_code or -1, str(msg))


async def served_answer(ts: TokenServer, token: str, kind: Kind, channel: str = "a") -> Answer:
    """Connect with ``token``, or connect with a good token and subscribe with ``token``."""
    url = ts.server.ws + "/connection/websocket"
    async with aiohttp.ClientSession() as http_, http_.ws_connect(url) as ws:
        if kind == "connect":
            return await first_answer(ws, {"id": 1, "connect": {"token": token}})
        good = Ctx(ts.keys, time.time(), "connect").hs256()
        assert await first_answer(ws, {"id": 1, "connect": {"token": good}}) == Answer(0)
        return await first_answer(ws, {"id": 2, "subscribe": {"channel": channel, "token": token}})


def check(answer: Answer, code: int) -> None:
    assert answer.code == code, answer
    if code == INVALID:
        assert answer.reason.startswith("invalid token"), answer


@pytest.mark.parametrize(("row", "kind"), rows_for(TABLE + VALID, settings="all"))
async def test_forged_tokens(token_server: TokenServer, row: Row, kind: Kind) -> None:
    token = row.make(Ctx(token_server.keys, time.time(), kind))
    answer = await served_answer(token_server, token, kind)
    code, reason = SERVED_ANSWERS.get((row.id, kind), (row.expect, row.reason or ""))
    check(answer, code)
    assert reason in answer.reason, answer


#: (id, the token from the good keys, subscribe to which channel, expected code)
CONNECTION_ONLY: list[tuple[str, str, str, int]] = [
    ("subscription-token-for-another-channel", "a", "b", INVALID),
    ("subscription-token-for-another-user", "eve", "a", INVALID),
    ("subscription-token-for-its-channel", "a", "a", ACCEPTED),
]


@pytest.mark.parametrize(
    ("what", "token_for", "channel", "code"), CONNECTION_ONLY, ids=[r[0] for r in CONNECTION_ONLY]
)
async def test_subscription_token_binds_channel_and_user(
    token_server: TokenServer, what: str, token_for: str, channel: str, code: int
) -> None:
    ctx = Ctx(token_server.keys, time.time(), "subscribe")
    claims = {"sub": "eve"} if token_for == "eve" else {"channel": token_for}
    answer = await served_answer(token_server, ctx.hs256(**claims), "subscribe", channel)
    check(answer, code)


async def test_refresh_with_forged_tokens(token_server: TokenServer) -> None:
    """``refresh`` checks its token like ``connect``: a subscription token or a forged one
    ends the connection (3500)."""
    url = token_server.server.ws + "/connection/websocket"
    ctx = Ctx(token_server.keys, time.time(), "connect")
    forged = {
        "subscription-token": ctx.hs256(channel="a"),
        "alg-none": next(r for r in TABLE if r.id == "alg-none").make(ctx),
        "1MB": "A" * 1_000_000,
    }
    for what, token in forged.items():
        async with aiohttp.ClientSession() as http_, http_.ws_connect(url) as ws:
            good = {"id": 1, "connect": {"token": ctx.hs256()}}
            assert await first_answer(ws, good) == Answer(0)
            answer = await first_answer(ws, {"id": 2, "refresh": {"token": token}})
            assert answer.code == INVALID, (what, answer)


async def test_a_1mb_token_at_the_default_message_size(plain: ServerProcess) -> None:
    """With the default max_message_size (64 KiB) a 1 MB token never reaches the check: the
    message is refused (1009) and the server goes on."""
    url = plain.ws + "/connection/websocket"
    async with aiohttp.ClientSession() as http_, http_.ws_connect(url) as ws:
        answer = await first_answer(ws, {"id": 1, "connect": {"token": "A" * 1_000_000}})
        assert answer.code == 1009, answer
    async with aiohttp.ClientSession() as http_, http_.ws_connect(url) as ws:
        assert await first_answer(ws, {"id": 1, "connect": {}}) == Answer(0)


# -- 3. Admin -------------------------------------------------------------------------------

PASSWORD: Final = "correct horse"
ADMIN_CONFIGS: Final = {
    "insecure": "admin_insecure = true\n",
    "password": f"admin_password = {json.dumps(PASSWORD)}\n",
    "default": "",
}


@pytest.fixture(scope="module")
def admin_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    servers: dict[str, ServerProcess] = {}
    try:
        for name, config in ADMIN_CONFIGS.items():
            servers[name] = serve(tmp_path_factory.mktemp(f"admin-{name}"), config)
        yield servers
    finally:
        for server in servers.values():
            stop(server)


def basic(credentials: str) -> tuple[str, str]:
    return ("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())


GOOD: Final = basic(f"admin:{PASSWORD}")
ADMIN_HEADER: Final = ("X-Hubbub-Admin", "1")
NO_HOST: Final = ("", "")  # a marker: send no Host header at all
MAPPED_LOOPBACK: Final = frozenset({200, 403})


#: (id, server, headers, status of GET /admin, of POST /admin/api/info and of GET
#: /admin/api/stats); a status set means either answer is right.
ADMIN: list[Any] = [
    # -- admin_insecure: Host must be a loopback name, no proxy headers
    ("insecure-direct", "insecure", [], 200),
    ("host-localhost-upper-case", "insecure", [("Host", "LOCALHOST")], 200),
    ("host-sub-localhost", "insecure", [("Host", "app.localhost:8765")], 200),  # RFC 6761: loopback
    ("host-127.0.0.2", "insecure", [("Host", "127.0.0.2")], 200),
    ("host-ipv6-unbracketed", "insecure", [("Host", "::1")], 200),
    ("host-127.0.0.1.evil.example", "insecure", [("Host", "127.0.0.1.evil.example")], 403),
    ("host-localhost.evil.example", "insecure", [("Host", "localhost.evil.example")], 403),
    ("host-localhost-trailing-dot", "insecure", [("Host", "localhost.")], 403),
    ("host-127.1", "insecure", [("Host", "127.1")], 403),  # inet_aton shorthand: browsers write 127.0.0.1
    ("host-decimal-ip", "insecure", [("Host", "2130706433")], 403),
    ("host-hex-ip", "insecure", [("Host", "0x7f000001")], 403),
    ("host-0.0.0.0", "insecure", [("Host", "0.0.0.0")], 403),
    # Python 3.13 counts an IPv4-mapped loopback as loopback, 3.11 does not: both are safe.
    ("host-ipv4-mapped-loopback", "insecure", [("Host", "[::ffff:127.0.0.1]")], MAPPED_LOOPBACK),
    ("host-userinfo-evil-at-loopback", "insecure", [("Host", "evil.example@127.0.0.1")], 403),
    ("host-userinfo-loopback-at-evil", "insecure", [("Host", "127.0.0.1@evil.example")], 403),
    ("host-two-ports", "insecure", [("Host", "127.0.0.1:80:80")], 403),
    ("host-empty", "insecure", [("Host", "")], 403),
    ("host-missing", "insecure", [NO_HOST], 400),  # aiohttp: HTTP/1.1 needs a Host
    ("host-twice-loopback-first", "insecure", [("Host", "127.0.0.1"), ("Host", "evil.example")], 400),  # aiohttp refuses
    ("host-twice-evil-first", "insecure", [("Host", "evil.example"), ("Host", "127.0.0.1")], 400),
    pytest.param("host-bracketed-then-evil", "insecure", [("Host", "[::1].evil.example")], 403),
    ("x-forwarded-host", "insecure", [("X-Forwarded-Host", "127.0.0.1")], 403),
    ("x-forwarded-for-loopback", "insecure", [("X-Forwarded-For", "127.0.0.1")], 403),
    ("forwarded-lower-case-name", "insecure", [("forwarded", "for=127.0.0.1")], 403),
    # -- a password: Basic auth, any user name
    ("password-none", "password", [], 401),
    ("password-right", "password", [GOOD], 200),
    ("password-right-foreign-host", "password", [GOOD, ("Host", "evil.example")], 200),
    ("password-wrong", "password", [basic("admin:wrong")], 401),
    ("password-prefix", "password", [basic("admin:correct")], 401),
    ("password-suffix", "password", [basic(f"admin:{PASSWORD}x")], 401),
    ("password-no-colon", "password", [basic(PASSWORD)], 401),
    ("password-bearer", "password", [("Authorization", f"Bearer {PASSWORD}")], 401),
    ("password-not-base64", "password", [("Authorization", "Basic !!!!")], 401),
    ("password-scheme-only", "password", [("Authorization", "Basic")], 401),
    pytest.param("password-non-ascii-latin1", "password", [("Authorization", "Basic \xff")], 401),
    pytest.param("password-non-ascii-utf8", "password", [("Authorization", "Basic \xc3\xa9")], 401),
    # -- neither: refused even from this machine
    ("default-direct", "default", [], 403),
]  # fmt: skip


@pytest.mark.parametrize(("server", "headers", "status"), params(ADMIN))
async def test_admin_access(
    admin_servers: dict[str, ServerProcess],
    server: str,
    headers: list[tuple[str, str]],
    status: int | frozenset[int],
) -> None:
    port = admin_servers[server].port
    no_host = NO_HOST in headers
    headers = [h for h in headers if h != NO_HOST]
    want = status if isinstance(status, frozenset) else {status}
    body = b'{"channel":"news","data":1}'
    for method, target, extra, data in (
        ("GET", "/admin", [], b""),
        ("POST", "/admin/api/info", [ADMIN_HEADER, ("Content-Type", "application/json")], b"{}"),
        ("POST", "/admin/api/publish", [ADMIN_HEADER], body),
        ("GET", "/admin/api/stats", [], b""),
    ):
        reply = await http(port, method, target, [*headers, *extra], data, default_host=not no_host)
        assert reply.status in want, (method, target, reply)


#: CSRF: what a cross-site form or fetch can send to the (open) insecure dashboard.
#: (id, method, target, headers, body, status)
CSRF: list[tuple[str, str, str, list[tuple[str, str]], bytes, int]] = [
    ("post-without-header", "POST", "/admin/api/publish", [("Content-Type", "application/json")], b'{"channel":"news","data":1}', 403),
    ("form-text-plain", "POST", "/admin/api/publish", [("Content-Type", "text/plain")], b'{"channel":"news","data":1}', 403),
    ("form-urlencoded", "POST", "/admin/api/disconnect", [("Content-Type", "application/x-www-form-urlencoded")], b"user=ada", 403),
    ("form-multipart", "POST", "/admin/api/publish", [("Content-Type", "multipart/form-data; boundary=x")], b'--x\r\nContent-Disposition: form-data; name="channel"\r\n\r\nnews\r\n--x--\r\n', 403),
    ("header-zero", "POST", "/admin/api/publish", [("X-Hubbub-Admin", "0")], b'{"channel":"news","data":1}', 403),
    ("header-true", "POST", "/admin/api/publish", [("X-Hubbub-Admin", "true")], b'{"channel":"news","data":1}', 403),
    ("header-empty", "POST", "/admin/api/publish", [("X-Hubbub-Admin", "")], b'{"channel":"news","data":1}', 403),
    ("with-foreign-origin-and-header", "POST", "/admin/api/info", [ADMIN_HEADER, ("Origin", "https://evil.example")], b"{}", 200),  # only a same-origin page can send the header (no CORS)
    ("preflight", "OPTIONS", "/admin/api/publish", [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "x-hubbub-admin")], b"", 405),
    ("get-a-post-method", "GET", "/admin/api/publish", [ADMIN_HEADER], b"", 405),
    ("unlisted-method", "POST", "/admin/api/history_remove", [ADMIN_HEADER], b'{"channel":"news"}', 404),
    ("with-header", "POST", "/admin/api/publish", [ADMIN_HEADER], b'{"channel":"news","data":1}', 200),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "status"),
    params(CSRF),
)
async def test_admin_csrf(
    admin_servers: dict[str, ServerProcess],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    status: int,
) -> None:
    for server in ("insecure", "password"):
        auth = [GOOD] if server == "password" else []
        reply = await http(admin_servers[server].port, method, target, [*auth, *headers], body)
        assert reply.status == status, (server, reply)
        # No CORS: a foreign page may not read an answer, nor send the admin header.
        assert not any(name.startswith("access-control-") for name in reply.headers), reply


# -- 4. Static path tricks ------------------------------------------------------------------

NOT_FOUND_OR_FORBIDDEN: Final = frozenset({403, 404})
#: Text of files outside src/hubbub/server/static that no answer may contain.
LEAKS: Final = (b"[project]", b"root:x:0:0", b"from __future__", b"import ")

#: (id, request target as written on the wire, expected status or statuses)
STATIC: list[Any] = [
    ("control-a-static-file", "/static/demo/style.css", 200),
    ("control-a-demo-page", "/demo/chat", 200),
    ("dot-dot", "/static/../pyproject.toml", 404),
    ("dot-dot-deep", "/static/../../../../../../etc/passwd", 404),
    ("dot-dot-to-the-package", "/static/../app.py", 404),
    ("encoded-dots", "/static/%2e%2e/pyproject.toml", 404),
    ("encoded-dots-upper-case", "/static/%2E%2E/app.py", 404),
    ("encoded-slash", "/static/..%2fapp.py", 404),
    ("encoded-slash-deep", "/static/..%2f..%2f..%2f..%2fpyproject.toml", 404),
    ("encoded-everything", "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
    ("double-encoded", "/static/%252e%252e/%252e%252e/config.py", 404),
    ("overlong-utf8-dot", "/static/%c0%ae%c0%ae/app.py", 404),
    ("backslashes", "/static/..\\..\\config.py", 404),
    ("encoded-backslashes", "/static/..%5c..%5cconfig.py", 404),
    ("null-byte", "/static/admin.html%00.png", 404),
    ("null-byte-alone", "/static/%00", 404),
    ("null-byte-after-dot-dot", "/static/..%2fapp.py%00", 404),
    ("absolute-path", "/static//etc/passwd", NOT_FOUND_OR_FORBIDDEN),
    ("encoded-absolute-path", "/static/%2fetc%2fpasswd", NOT_FOUND_OR_FORBIDDEN),
    ("no-directory-listing", "/static/", NOT_FOUND_OR_FORBIDDEN),
    ("no-subdirectory-listing", "/static/demo", NOT_FOUND_OR_FORBIDDEN),
    ("no-listing-via-dot", "/static/.", NOT_FOUND_OR_FORBIDDEN),
    ("raw-non-ascii-byte", "/static/\xff", 400),  # aiohttp refuses the request line
    ("encoded-invalid-utf8", "/static/%ff", 404),
    pytest.param("long-name-5000", "/static/" + "a" * 5000, 404),
    ("long-dot-dot-name", "/static/..%2f" + "a" * 5000, 404),  # outside: refused before the name is looked up
    ("long-path-short-names", "/static/" + "a/" * 2000 + "b", 404),
    ("demo-dot-dot-admin", "/demo/../admin", 404),
    ("demo-encoded-slash-admin", "/demo/..%2fadmin", 404),
    ("demo-null-byte", "/demo/chat%00", 404),
    ("demo-with-extension", "/demo/chat.html", 404),
    ("demo-dot-dot-static", "/demo/chat/../../static/admin.html", 404),
    ("demo-encoded-dot-dot-source", "/demo/..%2f..%2fapp.py", 404),
    ("rooms-encoded-slash-admin", "/rooms/..%2fadmin", 400),  # a room name has no '/'
    ("rooms-dot-dot-admin", "/rooms/../admin", 400),
    ("rooms-dot-dot-alone", "/rooms/%2e%2e", 426),  # '..' is a valid room name; WebSocket only
    ("admin-dot-dot-static", "/admin/../static/admin.html", 404),
    ("admin-percent-encoded", "/%61dmin", 403),  # the same route, the same refusal
    ("admin-upper-case", "/ADMIN", 404),
]  # fmt: skip


@pytest.mark.parametrize(("target", "status"), params(STATIC))
async def test_static_paths(
    plain: ServerProcess, target: str, status: int | frozenset[int]
) -> None:
    reply = await http(plain.port, "GET", target)
    assert reply.status in (status if isinstance(status, frozenset) else {status}), reply
    if reply.status != 200:
        assert not any(leak in reply.body for leak in LEAKS), reply


def copy_of_the_package(root: Path) -> Path:
    """A copy of the hubbub package (so a symlink can be put in its static directory)."""
    shutil.copytree(
        ROOT / "src" / "hubbub", root / "hubbub", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root / "hubbub" / "server" / "static"


async def test_static_symlinks_do_not_escape(tmp_path: Path) -> None:
    """A symlink inside the static directory to a file or directory outside it is not
    followed (aiohttp's follow_symlinks=False): 404. The server runs a copy of the package
    with such links; a marker file shows it serves the copy."""
    static = copy_of_the_package(tmp_path / "pkg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret\n")
    (static / "marker.txt").write_text("the copy\n")
    (static / "leak.txt").symlink_to(outside / "secret.txt")
    (static / "escape").symlink_to(outside, target_is_directory=True)
    (static / "loop").symlink_to(static / "loop")
    server = serve(tmp_path, "", env={"PYTHONPATH": str(tmp_path / "pkg")})
    try:
        assert (await http(server.port, "GET", "/static/marker.txt")).body == b"the copy\n"
        for target in (
            "/static/leak.txt",
            "/static/escape/secret.txt",
            "/static/escape/",
            "/static/loop",
        ):
            reply = await http(server.port, "GET", target)
            assert reply.status in NOT_FOUND_OR_FORBIDDEN and b"top secret" not in reply.body, (
                target,
                reply,
            )
    finally:
        stop(server)


# -- 5. Server API --------------------------------------------------------------------------

API_KEY: Final = "k3y-k3y-k3y-k3y-k3y"
API_LIMIT: Final = 4096
PUBLISH: Final = b'{"channel":"news","data":1}'


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = f"api_key = {json.dumps(API_KEY)}\napi_max_body_size = {API_LIMIT}\n"
    server = serve(tmp_path_factory.mktemp("api"), config)
    yield server
    stop(server)


KEY: Final = ("X-API-Key", API_KEY)
JSON_TYPE: Final = ("Content-Type", "application/json")
OVER: Final = b'{"channel":"news","data":"' + b"x" * API_LIMIT + b'"}'
_PREFIX: Final = b'{"channel":"news","data":"'
EXACT: Final = _PREFIX + b"x" * (API_LIMIT - len(_PREFIX) - 2) + b'"}'
CHUNKED_OVER: Final = (
    b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (OVER[:3000], OVER[3000:]))
    + b"0\r\n\r\n"
)

#: (id, method, target, headers, body, HTTP status, error code in the JSON body; 0: a
#: result, None: not a JSON answer (aiohttp's own))
API: list[Any] = [
    ("right-key", "POST", "/api/publish", [KEY], PUBLISH, 200, 0),
    ("no-key", "POST", "/api/publish", [], PUBLISH, 401, 101),
    ("x-api-key-empty", "POST", "/api/publish", [("X-API-Key", "")], PUBLISH, 401, 101),
    ("x-api-key-wrong", "POST", "/api/publish", [("X-API-Key", "nope")], PUBLISH, 401, 101),
    ("x-api-key-prefix", "POST", "/api/publish", [("X-API-Key", API_KEY[:-1])], PUBLISH, 401, 101),
    ("x-api-key-suffix", "POST", "/api/publish", [("X-API-Key", API_KEY + "x")], PUBLISH, 401, 101),
    ("x-api-key-upper-case", "POST", "/api/publish", [("X-API-Key", API_KEY.upper())], PUBLISH, 401, 101),
    ("x-api-key-header-lower-case", "POST", "/api/publish", [("x-api-key", API_KEY)], PUBLISH, 200, 0),
    ("x-api-key-utf8", "POST", "/api/publish", [("X-API-Key", "\xc3\xa9t\xc3\xa9")], PUBLISH, 401, 101),
    pytest.param("x-api-key-latin1-byte", "POST", "/api/publish", [("X-API-Key", "\xff")], PUBLISH, 401, 101),
    ("x-api-key-twice-wrong-first", "POST", "/api/publish", [("X-API-Key", "nope"), KEY], PUBLISH, 401, 101),
    ("apikey-right", "POST", "/api/publish", [("Authorization", f"apikey {API_KEY}")], PUBLISH, 200, 0),
    ("apikey-scheme-upper-case", "POST", "/api/publish", [("Authorization", f"APIKEY {API_KEY}")], PUBLISH, 200, 0),
    ("apikey-wrong", "POST", "/api/publish", [("Authorization", "apikey nope")], PUBLISH, 401, 101),
    ("apikey-empty", "POST", "/api/publish", [("Authorization", "apikey ")], PUBLISH, 401, 101),
    pytest.param("apikey-latin1-byte", "POST", "/api/publish", [("Authorization", "apikey \xff")], PUBLISH, 401, 101),
    ("bearer-right-key", "POST", "/api/publish", [("Authorization", f"Bearer {API_KEY}")], PUBLISH, 401, 101),
    ("basic-right-key", "POST", "/api/publish", [("Authorization", f"Basic {API_KEY}")], PUBLISH, 401, 101),
    ("bare-key-in-authorization", "POST", "/api/publish", [("Authorization", API_KEY)], PUBLISH, 401, 101),
    ("key-in-the-query", "POST", f"/api/publish?api_key={API_KEY}", [], PUBLISH, 401, 101),
    ("empty-x-api-key-then-apikey", "POST", "/api/publish", [("X-API-Key", ""), ("Authorization", f"apikey {API_KEY}")], PUBLISH, 200, 0),
    ("wrong-x-api-key-then-apikey", "POST", "/api/publish", [("X-API-Key", "nope"), ("Authorization", f"apikey {API_KEY}")], PUBLISH, 401, 101),
    ("wrong-key-unknown-method", "POST", "/api/nope", [("X-API-Key", "nope")], PUBLISH, 401, 101),  # no method list for strangers
    ("unknown-method", "POST", "/api/nope", [KEY], PUBLISH, 404, 104),
    ("get-a-method", "GET", "/api/publish", [KEY], b"", 405, None),
    # -- the body limit (api_max_body_size = 4096)
    ("body-at-the-limit", "POST", "/api/publish", [KEY], EXACT, 200, 0),
    ("body-over-the-limit", "POST", "/api/publish", [KEY], OVER, 413, 106),
    ("body-over-the-limit-chunked", "POST", "/api/publish", [KEY, ("Transfer-Encoding", "chunked")], CHUNKED_OVER, 413, 106),
    ("body-over-the-limit-no-key", "POST", "/api/publish", [], OVER, 401, 101),  # the key first
    ("content-length-and-chunked", "POST", "/api/publish", [KEY, ("Content-Length", "4"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n", 400, None),
    # -- content types: the body is read as JSON whatever the type says
    ("type-json", "POST", "/api/publish", [KEY, JSON_TYPE], PUBLISH, 200, 0),
    ("type-text-plain", "POST", "/api/publish", [KEY, ("Content-Type", "text/plain")], PUBLISH, 200, 0),
    ("type-form-urlencoded", "POST", "/api/publish", [KEY, ("Content-Type", "application/x-www-form-urlencoded")], b"channel=news&data=1", 400, 107),
    ("type-multipart", "POST", "/api/publish", [KEY, ("Content-Type", "multipart/form-data; boundary=x")], b'--x\r\nContent-Disposition: form-data; name="channel"\r\n\r\nnews\r\n--x--\r\n', 400, 107),
    ("type-xml", "POST", "/api/publish", [KEY, ("Content-Type", "application/xml")], b"<publish/>", 400, 107),
    ("body-json-array", "POST", "/api/publish", [KEY, JSON_TYPE], b"[]", 400, 107),
    ("body-json-string", "POST", "/api/publish", [KEY, JSON_TYPE], b'"x"', 400, 107),
    ("body-empty", "POST", "/api/publish", [KEY, JSON_TYPE], b"", 200, 107),  # {}: the method's own error
    ("body-not-utf8", "POST", "/api/publish", [KEY, JSON_TYPE], b'{"channel":"\xff"}', 400, 107),
    ("body-deeply-nested", "POST", "/api/publish", [KEY, JSON_TYPE], b'{"channel":"news","data":' + b"[" * 2000 + b"]" * 2000 + b"}", 400, 107),
    ("body-nan", "POST", "/api/publish", [KEY, JSON_TYPE], b'{"channel":"news","data":NaN}', 400, 107),
]  # fmt: skip


@pytest.mark.parametrize(("method", "target", "headers", "body", "status", "code"), params(API))
async def test_server_api(
    api_server: ServerProcess,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    status: int,
    code: int | None,
) -> None:
    reply = await http(api_server.port, method, target, headers, body)
    assert reply.status == status, reply
    if code is None:
        return
    answer = json.loads(reply.body)
    assert answer.get("error", {}).get("code", 0) == code, answer
    if code == 0:
        assert "result" in answer, answer
