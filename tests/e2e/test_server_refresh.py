"""The server API's ``refresh`` and ``connections`` on one server, driven by `cent` (PyPI,
unchanged) and by hand; the effects seen by channel-protocol clients (JSON and Protobuf)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from cent import (
    AsyncClient,
    CentApiResponseError,
    ConnectionsRequest,
    PresenceRequest,
    RefreshRequest,
)

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support import protobuf
from tests.support.proto import Observer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "r" * 32
SECRET = "q" * 32
CONFIG = """
client_expired_close_delay = 0
[[namespaces]]
name = "room"
presence = true
"""


@pytest.fixture
def api_server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)


def cent(server: ServerProcess) -> AsyncClient:
    return AsyncClient(server.url + "/api", KEY)


class Conn(Observer):
    """A JSON client connected as a user; ``client_id`` is its connection's client id."""

    client_id = ""

    async def closed_code(self) -> int | None:
        """The close code, once the server closed the connection (within 5 s)."""
        for _ in range(int(scaled(500))):
            if self.closed is not None:
                return self.ws.close_code
            await asyncio.sleep(0.01)
        raise AssertionError("the connection stayed open")


@asynccontextmanager
async def observer(
    server: ServerProcess, user: str, *, ttl: float | None = None, **connect: Any
) -> AsyncIterator[Conn]:
    """A JSON client connected as ``user`` (a token expiring in ``ttl`` seconds)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/websocket") as ws,
    ):
        token = mint(SECRET, user, ttl=ttl)
        await ws.send_str(json.dumps({"id": 1, "connect": {"token": token, **connect}}))
        reply = json.loads((await asyncio.wait_for(ws.receive(), scaled(10))).data)
        assert reply["connect"]["client"], reply
        obs = Conn(ws)
        obs.client_id = reply["connect"]["client"]
        try:
            yield obs
        finally:
            obs.stop()


@asynccontextmanager
async def pb_observer(server: ServerProcess, user: str) -> AsyncIterator[tuple[str, Any]]:
    """A Protobuf client connected as ``user``: (client id, its observer)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            server.ws + "/connection/websocket", protocols=[protobuf.SUBPROTOCOL]
        ) as ws,
    ):
        (reply,) = await protobuf.call(ws, (1, "connect", {"token": mint(SECRET, user)}))
        obs = protobuf.PbObserver(ws)
        try:
            yield reply["connect"]["client"], obs
        finally:
            obs.stop()


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        return body


async def test_expired_closes_at_once_with_3005(api_server: ServerProcess) -> None:
    async with observer(api_server, "ada") as ada, observer(api_server, "bob") as bob:
        async with cent(api_server) as client:
            started = time.monotonic()
            await client.refresh(RefreshRequest(user="ada", expired=True))
            assert await ada.closed_code() == 3005
            assert time.monotonic() - started < scaled(2)
            # An expire_at already past is the same.
            async with observer(api_server, "ada") as again:
                await client.refresh(RefreshRequest(user="ada", expire_at=int(time.time()) - 5))
                assert await again.closed_code() == 3005
        assert (await bob.command("ping", {}))["ping"] == {}  # another user: untouched


async def test_a_future_expire_at_pushes_refresh_then_closes_at_expiry(
    api_server: ServerProcess,
) -> None:
    """The client gets the Refresh push (expires, ttl; JSON and Protobuf); without a new
    token it is closed with 3005 when the time comes; a client that refreshes with a new token
    stays."""
    async with (
        observer(api_server, "ada") as lazy,
        observer(api_server, "ada") as diligent,
        pb_observer(api_server, "ada") as (_, pb_lazy),
    ):
        started = time.monotonic()
        expire_at = int(time.time()) + 2
        result = await api(api_server, "refresh", {"user": "ada", "expire_at": expire_at})
        assert result == {"result": {}}
        for obs in (lazy, diligent, pb_lazy):
            push = await obs.push("refresh")
            assert push["refresh"]["expires"] is True and 1 <= push["refresh"]["ttl"] <= 2
        token = mint(SECRET, "ada", ttl=600)
        refreshed = await diligent.command("refresh", {"token": token})
        assert refreshed["refresh"]["expires"] is True and refreshed["refresh"]["ttl"] > 500
        assert await lazy.closed_code() == 3005
        assert time.monotonic() - started >= 0.9  # at its expiry, not at once
        for _ in range(int(scaled(200))):
            if pb_lazy.ws.closed:
                break
            await asyncio.sleep(0.01)
        assert pb_lazy.ws.close_code == 3005
        assert (await diligent.command("ping", {}))["ping"] == {}


async def test_expire_at_zero_makes_the_connection_never_expire(
    api_server: ServerProcess,
) -> None:
    """A token expiring in 2 s, then refresh without expire_at: the push says it no longer
    expires, and it stays connected past the token's expiry (as Centrifugo does)."""
    async with observer(api_server, "ada", ttl=2) as ada:
        async with cent(api_server) as client:
            await client.refresh(RefreshRequest(user="ada", client=ada.client_id))
        assert (await ada.push("refresh"))["refresh"] == {}
        await asyncio.sleep(3)
        assert ada.closed is None
        assert (await ada.command("ping", {}))["ping"] == {}


async def test_refresh_targets_one_client_and_no_session(api_server: ServerProcess) -> None:
    async with observer(api_server, "ada") as one, observer(api_server, "ada") as other:
        await api(api_server, "refresh", {"user": "ada", "session": "s1", "expired": True})
        await api(api_server, "refresh", {"user": "ada", "client": one.client_id, "expired": True})
        assert await one.closed_code() == 3005
        assert other.closed is None
        assert (await other.command("ping", {}))["ping"] == {}


async def test_info_replaces_the_conn_info_in_presence(api_server: ServerProcess) -> None:
    async with observer(api_server, "ada") as ada:
        assert "error" not in await ada.command("subscribe", {"channel": "room:1"})
        async with cent(api_server) as client:
            before = await client.presence(PresenceRequest(channel="room:1"))
            assert [c.conn_info for c in before.presence.values()] == [None]
            expire_at = int(time.time()) + 600
            request = RefreshRequest(user="ada", expire_at=expire_at, info={"seat": 7})  # type: ignore[call-arg]
            await client.refresh(request)
            await ada.push("refresh")
            after = await client.presence(PresenceRequest(channel="room:1"))
            assert [c.conn_info for c in after.presence.values()] == [{"seat": 7}]
        # b64info (base64 of JSON text) too; later publications carry it as well.
        await api(api_server, "refresh", {"user": "ada", "b64info": "eyJzZWF0Ijo4fQ=="})
        await ada.push("refresh")
        published = await ada.command("publish", {"channel": "room:1", "data": 1})
        assert "error" not in published
        pub = await ada.push("pub", "room:1")
        assert pub["pub"]["info"]["conn_info"] == {"seat": 8}


async def test_bad_refresh_params_are_107(api_server: ServerProcess) -> None:
    for params in (
        {},  # no user
        {"user": "ada", "expired": "yes"},
        {"user": "ada", "expire_at": -1},
        {"user": "ada", "expire_at": 1.5},
        {"user": "ada", "b64info": "not base64!"},
    ):
        body = await api(api_server, "refresh", params)
        assert body["error"]["code"] == 107, (params, body)


async def test_connections_lists_the_users_connections(api_server: ServerProcess) -> None:
    async with (
        observer(api_server, "ada", name="app", version="1.2") as json_ada,
        observer(api_server, "bob"),
    ):
        assert "error" not in await json_ada.command("subscribe", {"channel": "room:1"})
        async with pb_observer(api_server, "ada") as (pb_id, _):
            async with cent(api_server) as client:
                listed = await client.connections(ConnectionsRequest(user="ada", expression=""))
            found = listed.connections
            assert set(found) == {json_ada.client_id, pb_id}
            first = found[json_ada.client_id]
            assert (first.app_name, first.app_version, first.user) == ("app", "1.2", "ada")
            assert (first.transport, first.protocol) == ("websocket", "json")
            assert first.state is not None and first.state.channels is not None
            assert list(first.state.channels) == ["room:1"]
            second = found[pb_id]
            assert (second.protocol, second.app_name) == ("protobuf", "")
            # The raw shape: Centrifugo's ConnectionInfo, empty strings left out.
            body = await api(api_server, "connections", {"user": "bob"})
            (bob,) = body["result"]["connections"].values()
            assert set(bob) == {"transport", "protocol", "user", "state", "connected_at_ms"}
            assert bob["state"] == {"channels": {}}
            assert abs(bob["connected_at_ms"] / 1000 - time.time()) < 60
            assert (await api(api_server, "connections", {"user": "eve"})) == {
                "result": {"connections": {}}
            }


async def test_connections_refuses_expressions(api_server: ServerProcess) -> None:
    async with cent(api_server) as client:
        with pytest.raises(CentApiResponseError) as err:
            await client.connections(ConnectionsRequest(user="ada", expression="user == '1'"))
        assert err.value.code == 107
    assert (await api(api_server, "connections", {}))["error"]["code"] == 107


async def test_refresh_and_connections_in_batch_and_legacy(api_server: ServerProcess) -> None:
    async with observer(api_server, "ada") as ada:
        body = await api(
            api_server,
            "batch",
            {"commands": [{"connections": {"user": "ada"}}, {"refresh": {"user": "ada"}}]},
        )
        listed, refreshed = body["replies"]
        assert list(listed["connections"]["connections"]) == [ada.client_id]
        assert refreshed == {"refresh": {}}
        await ada.push("refresh")
        lines = "\n".join(
            json.dumps(c)
            for c in (
                {"method": "connections", "params": {"user": "ada"}},
                {"method": 12, "params": {"user": "ada", "expired": True}},  # refresh
            )
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                api_server.url + "/api", data=lines, headers={"Authorization": f"apikey {KEY}"}
            ) as resp,
        ):
            replies = [json.loads(line) for line in (await resp.text()).splitlines()]
        assert list(replies[0]["result"]["connections"]) == [ada.client_id]
        assert replies[1] == {"result": {}}
        assert await ada.closed_code() == 3005
