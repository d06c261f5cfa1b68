"""Bidirectional emulation (/connection/http_stream, /connection/sse, /emulation) against a
real server with a plain aiohttp client: connect with a session, commands over /emulation
and their replies over the stream, pings and pongs, a server-side disconnect as a push,
Protobuf over http_stream, bad input and floods, and a second node forwarding requests."""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest

from hubbub import survey
from hubbub.auth import mint
from hubbub.dialects.centrifuge.proto import client_pb2 as pb
from tests.conftest import StartServer
from tests.support import emulated
from tests.support.emulated import TRANSPORTS
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "e" * 32
SECRET = "m" * 32
CONFIG = """
ping_interval = 1
pong_timeout = 1
allowed_origins = ["https://good.example"]
max_message_size = 4096

[[namespaces]]
name = "news"
history_size = 100
history_ttl = 300
force_recovery = true
presence = true
allow_subscribe_for_client = true
allow_publish_for_client = true
allow_history_for_client = true
allow_presence_for_client = true
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


def token(user: str = "ada") -> dict[str, str]:
    return {"token": mint(SECRET, user)}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_commands_over_emulation_replies_over_the_stream(
    server: ServerProcess, transport: str
) -> None:
    async with emulated.connect(server.url, transport, token()) as client:
        assert uuid.UUID(client.session)  # a random UUID, as Centrifugo's
        assert client.node
        assert client.connected["client"] and client.connected["pong"] is True
        sub = await client.call("subscribe", {"channel": "news:1"})
        assert sub["subscribe"]["recoverable"] is True
        await api(server, "publish", {"channel": "news:1", "data": {"n": 1}})
        push = await client.push()
        assert push is not None and push["channel"] == "news:1"
        assert push["pub"]["data"] == {"n": 1} and push["pub"]["offset"] == 1
        assert "publish" in await client.call("publish", {"channel": "news:1", "data": {"n": 2}})
        push = await client.push()
        assert push is not None and push["pub"]["data"] == {"n": 2}
        history = await client.call("history", {"channel": "news:1", "limit": 10})
        assert [p["data"] for p in history["history"]["publications"]] == [{"n": 1}, {"n": 2}]
        presence = await client.call("presence", {"channel": "news:1"})
        assert [i["user"] for i in presence["presence"]["presence"].values()] == ["ada"]
        denied = await client.call("publish", {"channel": "$news:2", "data": {}})
        assert denied["error"]["code"] == 103
        conns = await api(server, "connections", {"user": "ada"})
        (info,) = conns["result"]["connections"].values()
        assert info["transport"] == transport


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_disconnect_is_a_push_before_the_stream_ends(
    server: ServerProcess, transport: str
) -> None:
    async with emulated.connect(server.url, transport, token("bo")) as client:
        await api(server, "disconnect", {"user": "bo", "disconnect": {"code": 4501, "reason": "x"}})
        assert await client.push() == {"disconnect": {"code": 4501, "reason": "x"}}
        assert await client.push() is None
        assert await client.post([{"id": 9, "ping": {}}]) == 404  # the session is gone


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pings_are_answered_over_emulation_or_the_client_is_dropped(
    server: ServerProcess, transport: str
) -> None:
    async with emulated.connect(server.url, transport, token()) as client:
        await asyncio.sleep(scaled(2.5))  # two pings, both answered with pongs
        assert "ping" in await client.call("ping", {})
        client.answer_pings = False
        push = await client.push()
        assert push == {"disconnect": {"code": 3012, "reason": "no pong"}}


async def test_protobuf_over_http_stream(server: ServerProcess) -> None:
    """centrifuge-js's Protobuf build: Content-Type application/octet-stream both ways."""

    def delimited(msg: Any) -> bytes:
        data = msg.SerializeToString()
        size, prefix = len(data), bytearray()
        while True:
            byte, size = size & 0x7F, size >> 7
            prefix.append(byte | (0x80 if size else 0))
            if not size:
                return bytes(prefix) + data

    connect = pb.Command(id=1)
    connect.connect.token = mint(SECRET, "pb")
    octet = {"Content-Type": "application/octet-stream"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/connection/http_stream", data=delimited(connect), headers=octet
        ) as resp,
    ):
        assert resp.status == 200
        buffer = b""

        async def reply() -> Any:
            nonlocal buffer
            while True:
                size = shift = pos = 0
                while pos < len(buffer):
                    byte = buffer[pos]
                    size |= (byte & 0x7F) << shift
                    shift += 7
                    pos += 1
                    if not byte & 0x80:
                        if len(buffer) - pos >= size:
                            msg = pb.Reply.FromString(buffer[pos : pos + size])
                            buffer = buffer[pos + size :]
                            return msg
                        break
                chunk = await asyncio.wait_for(resp.content.readany(), scaled(10))
                assert chunk
                buffer += chunk

        first = await reply()
        assert first.id == 1 and first.connect.session and first.connect.node
        sub = pb.Command(id=2)
        sub.subscribe.channel = "news:pb"
        request = pb.EmulationRequest(
            node=first.connect.node, session=first.connect.session, data=delimited(sub)
        )
        async with http.post(
            f"{server.url}/emulation", data=request.SerializeToString(), headers=octet
        ) as done:
            assert done.status == 204
        answer = await reply()
        while not answer.id:  # pings
            answer = await reply()
        assert answer.id == 2 and answer.subscribe.recoverable
        await api(server, "disconnect", {"user": "pb"})
        push = await reply()
        while not push.push.disconnect.code:
            push = await reply()
        assert push.push.disconnect.code == 3000 or push.push.disconnect.reason


async def test_bad_emulation_requests_get_clear_http_errors(server: ServerProcess) -> None:
    async with (
        emulated.connect(server.url, "http_stream", token("cy")) as client,
        aiohttp.ClientSession() as http,
    ):

        async def post(body: Any, **kw: Any) -> tuple[int, str]:
            data = body if isinstance(body, bytes | str) else json.dumps(body)
            async with http.post(f"{server.url}/emulation", data=data, **kw) as resp:
                return resp.status, await resp.text()

        session, node = client.session, client.node
        assert (await post(b"{not json"))[0] == 400
        assert (await post([1, 2]))[0] == 400
        assert (await post({"session": session, "node": node, "data": {"id": 2}}))[0] == 400
        assert (await post({"session": session, "node": node, "data": ""}))[0] == 400
        assert (await post({"node": node, "data": "{}"}))[0] == 400
        unknown = await post({"session": str(uuid.uuid4()), "node": node, "data": "{}"})
        assert unknown == (404, "unknown session\n")
        other_node = await post({"session": session, "node": str(uuid.uuid4()), "data": "{}"})
        assert other_node == (404, "unknown node\n")
        big = {"session": session, "node": node, "data": "x" * 5000}
        assert (await post(big))[0] == 413
        assert (await post(b"\xff\xfe", headers={"Content-Type": "application/octet-stream"}))[
            0
        ] == 400
        evil = {"Origin": "https://evil.example"}
        assert (await post({"session": session, "data": "{}"}, headers=evil))[0] == 403
        # A command the session's codec cannot read closes it (3501), as over a WebSocket.
        assert (await post({"session": session, "node": node, "data": "[1]"}))[0] == 204
        push = await client.push()
        assert push is not None and push["disconnect"]["code"] == 3501
        # The server carries on.
        async with emulated.connect(server.url, "sse", token("cy")) as other:
            assert "ping" in await other.call("ping", {})


async def test_bad_connect_requests_are_refused_before_the_stream(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/connection"
        cases = [
            http.post(f"{url}/http_stream", data=b""),
            http.post(f"{url}/http_stream", data=b"{oops"),
            http.post(f"{url}/http_stream", data=json.dumps({"id": 1, "ping": {}})),
            http.post(f"{url}/http_stream", data=b'{"id":1,"connect":{}}' + b" " * 5000),
            http.get(f"{url}/sse"),
            http.get(f"{url}/sse?cf_connect=%7B"),
            http.post(f"{url}/http_stream", data=b"\xff", headers={"Origin": "https://evil.x"}),
        ]
        statuses = []
        for request in cases:
            async with request as resp:
                statuses.append(resp.status)
        assert statuses == [400, 400, 400, 413, 400, 400, 403]
        async with http.options(
            f"{url}/http_stream",
            headers={"Origin": "https://good.example", "Access-Control-Request-Method": "POST"},
        ) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://good.example"
            assert resp.headers["Access-Control-Allow-Credentials"] == "true"


async def test_refusals_are_readable_by_pages_of_allowed_origins(server: ServerProcess) -> None:
    """A refusal carries the CORS headers too: without them a cross-origin fetch fails as a
    network error, and centrifuge-js closes the transport where a status (413, 400) would
    have failed only that command."""
    good = {"Origin": "https://good.example", "Content-Type": "application/json"}
    async with (
        emulated.connect(server.url, "http_stream", token("di")) as client,
        aiohttp.ClientSession() as http,
    ):
        cases = [
            ("/emulation", b"{not json", 400),
            ("/emulation", json.dumps({"session": client.session, "data": "x" * 5000}), 413),
            ("/emulation", json.dumps({"session": "s", "node": "n", "data": "{}"}), 404),
            ("/connection/http_stream", b"{oops", 400),
            ("/connection/sse", b'{"id":1,"ping":{}}', 400),
            ("/connection/uni_http_stream", b"{oops", 400),
            ("/connection/uni_sse", b"[1]", 400),
        ]
        for path, body, status in cases:
            async with http.post(server.url + path, data=body, headers=good) as resp:
                assert resp.status == status, path
                assert resp.headers.get("Access-Control-Allow-Origin") == good["Origin"], path
        evil = {"Origin": "https://evil.example"}
        async with http.post(f"{server.url}/emulation", data=b"{}", headers=evil) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers


async def test_a_flood_of_emulation_requests_is_bounded(start_server: StartServer) -> None:
    """Requests beyond the session's queue get 429, the rate limit disconnects (3013);
    another client is not disturbed."""
    limits = "client_command_rate = 20\nclient_command_burst = 40\n"
    server = start_server("--token-hmac-secret", SECRET, config=limits + CONFIG)
    async with (
        emulated.connect(server.url, "http_stream", token("dee")) as flooder,
        emulated.connect(server.url, "sse", token("eve")) as bystander,
    ):
        command = json.dumps({"id": 5, "ping": {}})
        body = {"session": flooder.session, "node": flooder.node, "data": command}
        statuses: list[int] = []

        async def one() -> None:
            async with flooder.http.post(f"{server.url}/emulation", json=body) as resp:
                statuses.append(resp.status)

        for _ in range(20):
            await asyncio.gather(*(one() for _ in range(100)))
            if 404 in statuses:
                break
        assert set(statuses) <= {204, 429, 404}
        disconnect = None
        while (push := await flooder.push()) is not None:
            disconnect = push.get("disconnect", disconnect)
        assert disconnect is not None and disconnect["code"] == 3013
        assert "ping" in await bystander.call("ping", {})


async def test_transports_can_be_turned_off(start_server: StartServer) -> None:
    server = start_server(config="http_stream = false\nsse = false\n")
    async with aiohttp.ClientSession() as http:
        for path in ("/connection/http_stream", "/connection/sse", "/emulation"):
            async with http.post(server.url + path, data=b"{}") as resp:
                assert resp.status in (404, 405), path


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_emulation_requests_sent_to_another_node_reach_the_session(
    start_server: StartServer, engine_url: str, transport: str
) -> None:
    args = ("--engine", engine_url, "--api-key", KEY, "--token-hmac-secret", SECRET)
    a, b = (start_server(*args, config=CONFIG) for _ in range(2))
    async with emulated.connect(a.url, transport, token("fay")) as client:
        client.emulation_base = b.url  # every command (and pong) through the other node
        sub = await client.call("subscribe", {"channel": "news:x"})
        assert "subscribe" in sub
        await api(b, "publish", {"channel": "news:x", "data": {"via": "b"}})
        push = await client.push()
        assert push is not None and push["pub"]["data"] == {"via": "b"}
        rpc = await client.call("presence", {"channel": "news:x"})
        assert [i["user"] for i in rpc["presence"]["presence"].values()] == ["fay"]
        await asyncio.sleep(scaled(2.5))  # pongs through b keep the session alive
        assert "ping" in await client.call("ping", {})
        gone = {"session": str(uuid.uuid4()), "node": client.node, "data": "{}"}
        async with client.http.post(f"{b.url}/emulation", json=gone) as resp:
            assert resp.status == 404


async def test_forwarding_survives_floods_and_a_dead_node(
    start_server: StartServer, redis_server: RedisServer
) -> None:
    """A node forwarding for the others: its first requests are not refused while it learns
    the cluster; a flood of requests for one node (any client can post them) starves neither
    the server API's surveys nor the sessions of other nodes (those of the flooded node wait
    for their turn), nor do requests for a killed node."""
    args = ("--engine", redis_server.url, "--api-key", KEY, "--token-hmac-secret", SECRET)
    a, b, c = (start_server(*args, config=CONFIG) for _ in range(3))
    async with (
        emulated.connect(b.url, "http_stream", token("bo")) as on_b,
        emulated.connect(c.url, "sse", token("cy")) as on_c,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        on_b.emulation_base = on_c.emulation_base = a.url
        assert set(await asyncio.gather(*(on_c.post([{}]) for _ in range(20)))) == {204}

        async def flood(node: str, until: float) -> collections.Counter[int]:
            statuses: collections.Counter[int] = collections.Counter()

            async def one() -> None:
                while time.monotonic() < until:
                    body = {"session": str(uuid.uuid4()), "node": node, "data": "{}"}
                    async with http.post(f"{a.url}/emulation", json=body) as resp:
                        statuses[resp.status] += 1

            await asyncio.gather(*(one() for _ in range(survey.MAX_PER_NODE + 40)))
            return statuses

        flooding = asyncio.create_task(flood(on_b.node, time.monotonic() + scaled(2)))
        await asyncio.sleep(scaled(0.5))
        for _ in range(5):
            assert "connections" in (await api(a, "connections", {"user": "bo"}))["result"]
            assert await on_c.post([{}]) == 204
            assert await on_b.post([{}]) == 204  # waits for its turn behind the flood
        assert set(await flooding) == {404}
        b.kill()
        flooding = asyncio.create_task(flood(on_b.node, time.monotonic() + scaled(1)))
        await asyncio.sleep(scaled(0.5))
        for _ in range(5):
            assert await on_c.post([{}]) == 204
        assert set(await flooding) <= {503}
