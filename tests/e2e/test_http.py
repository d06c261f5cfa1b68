"""Plain HTTP endpoints: home page and health."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import call
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

KEY = "health-key-0123456789"
API = {"X-API-Key": KEY}


async def test_health_is_200_with_json(server: ServerProcess) -> None:
    """/health answers 200 with status ok, version and counters."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["connections"] == 0
    assert isinstance(body["version"], str)


async def test_health_counts_channels_with_subscribers_here(start_server: StartServer) -> None:
    """/health's ``channels`` are those with a subscriber on this node (a channel with only
    history is not one), ``subscriptions`` the memberships."""
    server = start_server("--api-key", KEY)
    async with aiohttp.ClientSession() as http:
        body = {"channel": "news", "data": {"text": "stored"}}
        async with http.post(server.url + "/api/publish", json=body, headers=API) as resp:
            assert "result" in await resp.json()

        async def health() -> dict[str, object]:
            async with http.get(server.url + "/health") as resp:
                result: dict[str, object] = await resp.json()
                return result

        counts = await health()
        assert (counts["channels"], counts["subscriptions"]) == (0, 0)
        async with http.ws_connect(server.ws + "/connection/websocket") as ws:
            await call(ws, {"id": 1, "connect": {}})
            for i, channel in enumerate(("news", "chat:a"), start=2):
                await call(ws, {"id": i, "subscribe": {"channel": channel}})
            async with http.ws_connect(server.ws + "/rooms/a"):
                counts = await health()
                assert (counts["connections"], counts["channels"]) == (2, 3)
                assert counts["subscriptions"] == 3


async def test_home_page_links_what_exists(server: ServerProcess) -> None:
    """GET / without upgrade is an HTML page naming the endpoints."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        html = await resp.text()
    assert "hubbub" in html
    assert 'href="/health"' in html
    assert f"ws://127.0.0.1:{server.port}/rooms/" in html


async def test_room_without_upgrade_is_426(server: ServerProcess) -> None:
    """A plain GET on a room asks for a WebSocket upgrade."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/rooms/lobby") as resp:
        assert resp.status == 426
        assert "WebSocket" in await resp.text()


async def test_metrics_in_prometheus_format(server: ServerProcess) -> None:
    """/metrics counts what the node did (read at scrape time)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/rooms/m") as a,
        http.ws_connect(server.ws + "/rooms/m") as b,
    ):
        await a.send_str("x")
        assert (await b.receive()).data == "x"
        async with http.get(server.url + "/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("hubbub_")
    }
    assert values["hubbub_connections"] == 2
    assert values["hubbub_publications_total"] >= 1
    assert values["hubbub_deliveries_total"] == 1  # the room message to b; no one else listens
    assert values["hubbub_engine_connected"] == 1
