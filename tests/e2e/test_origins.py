"""The Origin allow-list on every WebSocket endpoint (cross-site WebSocket hijacking)."""

from __future__ import annotations

import pytest

from tests.conftest import StartServer
from tests.support.rawws import RawWebSocket

pytestmark = pytest.mark.e2e

HOSTILE = [
    "https://evil.example",
    "null",
    "https://good.example.evil.com",
    "http://good.example",
    "https://good.example:8443",
    "https://sub.good.example",
    "https://evil.example/https://good.example",
]
ALLOWED = ["https://good.example", "https://GOOD.example"]
PATHS = ["/", "/rooms/lobby", "/connection/websocket"]


async def test_hostile_origins_get_403_allowed_ones_connect(start_server: StartServer) -> None:
    server = start_server("--allowed-origins", "https://good.example,https://app.example:8443")
    for path in PATHS:
        for origin in HOSTILE:
            with pytest.raises(ConnectionError, match="HTTP 403"):
                await RawWebSocket.connect("127.0.0.1", server.port, path, {"Origin": origin})
        for origin in ALLOWED:
            async with await RawWebSocket.connect(
                "127.0.0.1", server.port, path, {"Origin": origin}
            ):
                pass
    async with await RawWebSocket.connect(
        "127.0.0.1", server.port, "/", {"Origin": "https://app.example:8443"}
    ):
        pass
