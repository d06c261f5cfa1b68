"""Plain HTTP endpoints: home page and health."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


async def test_health_is_200_with_json(server: ServerProcess) -> None:
    """/health answers 200 with status ok, version and counters."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["connections"] == 0
    assert isinstance(body["version"], str)


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
