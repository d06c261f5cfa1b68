"""The unidirectional transports (uni_sse, uni_http_stream, uni_websocket) against a real
server, with plain aiohttp clients: the connect push with the token's channels, publications
and a disconnect from the server API, pings, bad input, SSE ``Last-Event-ID`` recovery."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from hubbub.auth import mint
from hubbub.errors import ClientError, DisconnectError
from hubbub.hub import ConnectContext, ConnectResult, DisconnectContext, Hub
from tests.conftest import StartServer
from tests.support import uni
from tests.support.inprocess import serving
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.uni import TRANSPORTS, Pushes, read_sse

pytestmark = pytest.mark.e2e

KEY = "u" * 32
SECRET = "s" * 32
CONFIG = """
ping_interval = 1
allowed_origins = ["https://good.example"]

[[namespaces]]
name = "news"
history_size = 100
history_ttl = 300
force_recovery = true
"""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)


async def api(server: ServerProcess, method: str, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=body, headers={"X-API-Key": KEY}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
    assert "error" not in answer, answer
    return answer


@asynccontextmanager
async def connect(
    server: ServerProcess,
    transport: str,
    request: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Pushes]:
    """A unidirectional connection to ``server`` sending ``request``; yields its pushes."""
    async with uni.connect(server.url, transport, request, headers) as pushes:
        yield pushes


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_token_channels_publications_and_server_disconnect(
    server: ServerProcess, transport: str
) -> None:
    token = mint(SECRET, "ada", channels=["news:1", "plain"])
    async with connect(server, transport, {"token": token}) as pushes:
        first = await pushes.next()
        assert first is not None
        connect_push = first["connect"]
        assert connect_push["client"] and connect_push["version"]
        assert connect_push["ping"] == 1
        assert "pong" not in connect_push
        assert set(connect_push["subs"]) == {"news:1", "plain"}
        assert connect_push["subs"]["news:1"]["recoverable"] is True
        await api(server, "publish", {"channel": "news:1", "data": {"n": 1}})
        pub = await pushes.next()
        assert pub is not None
        assert pub["channel"] == "news:1"
        assert pub["pub"]["data"] == {"n": 1}
        assert pub["pub"]["offset"] == 1
        await api(server, "publish", {"channel": "plain", "data": "x"})
        pub = await pushes.next()
        assert pub is not None and (pub["channel"], pub["pub"]["data"]) == ("plain", "x")
        await api(
            server, "disconnect", {"user": "ada", "disconnect": {"code": 4100, "reason": "bye"}}
        )
        assert await pushes.next() == {"disconnect": {"code": 4100, "reason": "bye"}}
        assert await pushes.next() is None
        if transport == "uni_websocket":
            assert pushes.close_code == 4100


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pings_are_empty_pushes(server: ServerProcess, transport: str) -> None:
    async with connect(server, transport, {"token": mint(SECRET, "bo")}) as pushes:
        first = await pushes.next()
        assert first is not None and "connect" in first
        assert await pushes.next(skip_pings=False) == {}
        assert await pushes.next(skip_pings=False) == {}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_token_is_a_disconnect_push(server: ServerProcess, transport: str) -> None:
    async with connect(server, transport, {"token": "not-a-token"}) as pushes:
        push = await pushes.next()
        assert push is not None and push["disconnect"]["code"] == 3500
        assert push["disconnect"]["reason"].startswith("invalid token")
        assert await pushes.next() is None
        if transport == "uni_websocket":
            assert pushes.close_code == 3500


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_expired_token_is_disconnect_3005(server: ServerProcess, transport: str) -> None:
    token = mint(SECRET, "cy", ttl=10, now=1_000_000)
    async with connect(server, transport, {"token": token}) as pushes:
        push = await pushes.next()
        assert push is not None and push["disconnect"]["code"] == 3005
        assert await pushes.next() is None


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "uni_sse?cf_connect=%7Bnot"), ("POST", "uni_sse"), ("POST", "uni_http_stream")],
)
async def test_bad_connect_json_is_400(server: ServerProcess, method: str, path: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{server.url}/connection/{path}", data=b"[1, 2]") as resp,
    ):
        assert resp.status == 400


async def test_bad_connect_field_type_is_400(server: ServerProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/connection/uni_http_stream", data=b'{"token": 5}') as resp,
    ):
        assert resp.status == 400


async def test_uni_websocket_bad_first_message_closes_3501(server: ServerProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/uni_websocket") as ws,
    ):
        await ws.send_str("{nope")
        msg = await asyncio.wait_for(ws.receive(), scaled(10))
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 3501)


async def test_uni_websocket_ignores_client_messages(server: ServerProcess) -> None:
    token = mint(SECRET, "di", channels=["plain"])
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/uni_websocket") as ws,
    ):
        await ws.send_str(json.dumps({"token": token}))
        push = json.loads((await asyncio.wait_for(ws.receive(), scaled(10))).data)
        assert set(push["connect"]["subs"]) == {"plain"}
        # Commands, garbage and binary after the connect change nothing.
        await ws.send_str('{"id":1,"subscribe":{"channel":"other"}}')
        await ws.send_str("{not json")
        await ws.send_bytes(b"\xff\x00")
        await api(server, "publish", {"channel": "other", "data": 0})
        await api(server, "publish", {"channel": "plain", "data": 1})
        while True:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            push = json.loads(msg.data)
            if push:  # (not a ping)
                break
        assert (push["channel"], push["pub"]["data"]) == ("plain", 1)


async def test_uni_websocket_flood_after_connect_is_cut_off_3013(
    start_server: StartServer,
) -> None:
    """What a uni_websocket client sends is ignored but counted by the rate limits: a client
    that keeps flooding is disconnected (3013), as a channel-protocol one would be."""
    config = "client_command_rate = 5\nclient_command_burst = 5\nclient_refusal_limit = 10\n"
    server = start_server("--token-hmac-secret", SECRET, config=config)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/uni_websocket") as ws,
    ):
        await ws.send_str(json.dumps({"token": mint(SECRET, "fl")}))
        assert "connect" in json.loads((await asyncio.wait_for(ws.receive(), scaled(10))).data)
        for _ in range(200):
            await ws.send_str("x")
        codes = []
        while True:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            if msg.type is aiohttp.WSMsgType.TEXT:
                push = json.loads(msg.data)
                if "disconnect" in push:
                    codes.append(push["disconnect"]["code"])
                continue
            break
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 3013)
        assert codes == [3013], "the disconnect push came first"


@pytest.mark.parametrize("path", ["uni_sse", "uni_http_stream"])
async def test_oversized_body_is_413(server: ServerProcess, path: str) -> None:
    body = json.dumps({"token": "x" * 70_000}).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/connection/{path}", data=body) as resp,
    ):
        assert resp.status == 413


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_disallowed_origin_is_403(server: ServerProcess, transport: str) -> None:
    headers = {"Origin": "https://evil.example"}
    async with aiohttp.ClientSession() as http:
        if transport == "uni_websocket":
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(server.ws + "/connection/uni_websocket", headers=headers)
            assert info.value.status == 403
            return
        method = "GET" if transport == "uni_sse" else "POST"
        url = f"{server.url}/connection/{transport}"
        async with http.request(method, url, data=b"{}", headers=headers) as resp:
            assert resp.status == 403


@pytest.mark.parametrize("transport", ["uni_sse", "uni_http_stream"])
async def test_good_origin_is_served(server: ServerProcess, transport: str) -> None:
    headers = {"Origin": "https://good.example"}
    async with connect(server, transport, {"token": mint(SECRET, "ed")}, headers) as pushes:
        assert (await pushes.next() or {}).get("connect")


async def test_transports_can_be_turned_off(start_server: StartServer) -> None:
    server = start_server(
        config="uni_sse = false\nuni_http_stream = false\nuni_websocket = false\n"
    )
    async with aiohttp.ClientSession() as http:
        for path in TRANSPORTS:
            async with http.get(f"{server.url}/connection/{path}") as resp:
                assert resp.status == 404
            async with http.post(f"{server.url}/connection/{path}", data=b"{}") as resp:
                assert resp.status == 404


async def test_connection_limit_counts_streams(start_server: StartServer) -> None:
    server = start_server("--token-hmac-secret", SECRET, config="client_connection_limit = 1\n")
    async with connect(server, "uni_http_stream", {"token": mint(SECRET, "fi")}) as pushes:
        assert (await pushes.next() or {}).get("connect")
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{server.url}/connection/uni_sse", data=b"{}") as resp,
        ):
            assert resp.status == 503


async def test_sse_last_event_id_recovers_missed_publications(server: ServerProcess) -> None:
    token = mint(SECRET, "gu", channels=["news:a", "news:b"])
    async with connect(server, "uni_sse", {"token": token}) as pushes:
        assert (await pushes.next() or {}).get("connect")
        await api(server, "publish", {"channel": "news:a", "data": 1})
        await api(server, "publish", {"channel": "news:b", "data": 2})
        assert (await pushes.next() or {})["pub"]["data"] == 1
        assert (await pushes.next() or {})["pub"]["data"] == 2
        last_id = pushes.ids[-1]
    positions = json.loads(last_id)
    assert set(positions) == {"news:a", "news:b"}
    assert positions["news:a"][0] == 1 and positions["news:b"][0] == 1
    # Missed while the stream was down:
    await api(server, "publish", {"channel": "news:a", "data": 3})
    await api(server, "publish", {"channel": "news:b", "data": 4})
    async with connect(server, "uni_sse", {"token": token}, {"Last-Event-ID": last_id}) as pushes:
        first = await pushes.next()
        assert first is not None
        subs = first["connect"]["subs"]
        assert subs["news:a"]["recovered"] is True
        assert [p["data"] for p in subs["news:a"]["publications"]] == [3]
        assert [p["data"] for p in subs["news:b"]["publications"]] == [4]
        await api(server, "publish", {"channel": "news:a", "data": 5})
        assert (await pushes.next() or {})["pub"]["data"] == 5
        assert json.loads(pushes.ids[-1]) == {
            "news:a": [3, positions["news:a"][1]],
            "news:b": [2, positions["news:b"][1]],
        }


async def test_sse_garbage_last_event_id_connects_without_recovery(
    server: ServerProcess,
) -> None:
    token = mint(SECRET, "ha", channels=["news:c"])
    async with connect(server, "uni_sse", {"token": token}, {"Last-Event-ID": "{x"}) as pushes:
        first = await pushes.next()
        assert first is not None
        assert "recovered" not in first["connect"]["subs"]["news:c"]


async def _connections(server: ServerProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
        body: dict[str, Any] = await resp.json()
    return int(body["connections"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_goes_away_is_released(server: ServerProcess, transport: str) -> None:
    token = mint(SECRET, "io", channels=["plain"])
    async with connect(server, transport, {"token": token}) as pushes:
        assert (await pushes.next() or {}).get("connect")
        assert await _connections(server) == 1
    # well before the next ping (1 s) would find the connection gone
    for _ in range(int(scaled(100))):
        if await _connections(server) == 0:
            break
        await asyncio.sleep(0.005)
    assert await _connections(server) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_shutdown_is_disconnect_3001(server: ServerProcess, transport: str) -> None:
    async with connect(server, transport, {"token": mint(SECRET, "ju")}) as pushes:
        assert (await pushes.next() or {}).get("connect")
        server.proc.send_signal(signal.SIGTERM)
        assert await pushes.next() == {"disconnect": {"code": 3001, "reason": "shutdown"}}
        assert await pushes.next() is None
    assert server.proc.wait(scaled(20)) == 0


async def test_a_stream_that_is_not_read_is_cut_off_as_slow(start_server: StartServer) -> None:
    server = start_server(
        "--api-key", KEY, "--token-hmac-secret", SECRET, config="write_buffer_limit = 65536\n"
    )
    token = mint(SECRET, "ka", channels=["plain"])
    data = "x" * 60_000
    async with (
        aiohttp.ClientSession(read_bufsize=2**16) as http,
        http.post(
            f"{server.url}/connection/uni_http_stream", data=json.dumps({"token": token})
        ) as resp,
    ):
        assert resp.status == 200
        assert json.loads(await resp.content.readline())["connect"]
        # Not read from here on: the socket buffers fill, then the server's limit is passed.
        for _ in range(400):
            await api(server, "publish", {"channel": "plain", "data": data})
            if await _connections(server) == 0:
                break
        assert await _connections(server) == 0
        lines = [line async for line in resp.content if line.strip()]
    # what waited was dropped; the stream ends with the slow disconnect
    assert json.loads(lines[-1]) == {"disconnect": {"code": 3008, "reason": "slow"}}


async def test_uni_websocket_takes_cf_connect(server: ServerProcess) -> None:
    request = quote(json.dumps({"token": mint(SECRET, "la", channels=["plain"])}))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.ws}/connection/uni_websocket?cf_connect={request}") as ws,
    ):
        push = json.loads((await asyncio.wait_for(ws.receive(), scaled(10))).data)
        assert set(push["connect"]["subs"]) == {"plain"}


async def test_uni_websocket_bad_cf_connect_is_400(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{server.ws}/connection/uni_websocket?cf_connect=%7B")
        assert info.value.status == 400


async def test_uni_sse_takes_a_post_body(server: ServerProcess) -> None:
    body = json.dumps({"token": mint(SECRET, "ma", channels=["plain"])})
    pushes = Pushes()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/connection/uni_sse", data=body) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        reader = asyncio.create_task(read_sse(resp, pushes))
        try:
            push = await pushes.next()
            assert push is not None and set(push["connect"]["subs"]) == {"plain"}
        finally:
            reader.cancel()


async def test_uni_http_stream_methods(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/connection/uni_http_stream") as resp:
            assert resp.status == 405
        async with http.options(f"{server.url}/connection/uni_http_stream") as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
        async with http.head(f"{server.url}/connection/uni_sse") as resp:
            assert resp.status == 405  # not a stream nobody can read


def _hooked_hub() -> tuple[Hub, list[str]]:
    disconnects: list[str] = []
    hub = Hub(
        port=0,
        namespaces=[{"name": "feed", "history_size": 10, "history_ttl": 60, "join_leave": True}],
    )

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult:
        if ctx.token == "kick":
            raise DisconnectError(4501, "go away")
        if ctx.token != "secret":
            raise ClientError(4001, "bad credentials")
        return ConnectResult(user="ada", data={"hi": 1}, channels=["feed:ada"])

    @hub.on_disconnect
    async def disconnect(ctx: DisconnectContext) -> None:
        disconnects.append(ctx.user)

    return hub, disconnects


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_on_connect_hook_subscribes_and_refuses(tmp_path: Path, transport: str) -> None:
    hub, disconnects = _hooked_hub()
    async with serving(hub, tmp_path) as base:
        async with uni.connect(base, transport, {"token": "secret"}) as pushes:
            push = await pushes.next()
            assert push is not None
            assert push["connect"]["data"] == {"hi": 1}
            assert set(push["connect"]["subs"]) == {"feed:ada"}
            await hub.publish("feed:ada", {"n": 1})
            pub = await pushes.next()
            assert pub is not None and pub["pub"]["data"] == {"n": 1}
        for _ in range(int(scaled(200))):
            if disconnects:
                break
            await asyncio.sleep(0.01)
        assert disconnects == ["ada"]
        async with uni.connect(base, transport, {"token": "kick"}) as pushes:
            assert await pushes.next() == {"disconnect": {"code": 4501, "reason": "go away"}}
        async with uni.connect(base, transport, {"token": "nope"}) as pushes:
            push = await pushes.next()
            # an application's error code has no disconnect of its own: Centrifugo's 3004
            assert push is not None and push["disconnect"]["code"] == 3004


@pytest.mark.parametrize(("method", "path"), [("GET", "uni_sse"), ("POST", "uni_http_stream")])
async def test_an_allowed_origin_gets_cors_headers(
    server: ServerProcess, method: str, path: str
) -> None:
    origin = {"Origin": "https://good.example"}
    url = f"{server.url}/connection/{path}"
    async with aiohttp.ClientSession() as http:
        preflight = {**origin, "Access-Control-Request-Headers": "content-type"}
        async with http.options(url, headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://good.example"
            assert resp.headers["Access-Control-Allow-Headers"] == "content-type"
            assert method in resp.headers["Access-Control-Allow-Methods"]
        async with http.request(method, url, data=b"{}", headers=origin) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "https://good.example"
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        async with http.options(url, headers={"Origin": "https://evil.example"}) as resp:
            assert resp.status == 403


@pytest.mark.parametrize(("method", "path"), [("GET", "uni_sse"), ("POST", "uni_http_stream")])
async def test_without_an_origin_list_no_page_reads_a_stream_with_the_users_cookies(
    start_server: StartServer, method: str, path: str
) -> None:
    """``allowed_origins`` empty: every Origin may read the streams, but not with credentials
    (a cookie-authenticating hook must not be open to every site by default)."""
    server = start_server("--token-hmac-secret", SECRET, config="ping_interval = 1\n")
    url = f"{server.url}/connection/{path}"
    origin = {"Origin": "https://any.example"}
    async with aiohttp.ClientSession() as http:
        async with http.options(url, headers=origin) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://any.example"
            assert "Access-Control-Allow-Credentials" not in resp.headers
        async with http.request(method, url, data=b"{}", headers=origin) as resp:
            assert resp.status == 200
            assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_api_connections_names_the_transport(
    server: ServerProcess, transport: str
) -> None:
    async with connect(server, transport, {"token": mint(SECRET, "na")}) as pushes:
        client = ((await pushes.next()) or {})["connect"]["client"]
        answer = await api(server, "connections", {"user": "na"})
        info = answer["result"]["connections"][client]
        assert (info["transport"], info["protocol"]) == (transport, "json")


async def test_uni_websocket_peer_that_does_not_answer_pings_is_dropped(
    start_server: StartServer,
) -> None:
    server = start_server(config="ping_interval = 1\npong_timeout = 1\n")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/uni_websocket", autoping=False) as ws,
    ):
        await ws.send_str("{}")
        pings = 0
        pushes = []
        while True:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            if msg.type is aiohttp.WSMsgType.PING:
                pings += 1
            elif msg.type is aiohttp.WSMsgType.TEXT:
                pushes.append(json.loads(msg.data))
            else:
                break
        assert pings >= 1
        assert "connect" in pushes[0]
        assert pushes[-1] == {"disconnect": {"code": 3012, "reason": "no pong"}}
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 3012)
