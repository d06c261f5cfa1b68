"""A Pusher protocol 7 client for tests, frame by frame (pusher-js itself: tests/interop):
frames as dicts, ``data`` parsed when it is a string holding JSON, the server's pings
skipped unless asked for, subscriptions signed with the app's secret."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp

from hubbub.dialects.pusher import signing
from tests.support.timing import scaled


class Client:
    """One Pusher connection: frames as dicts (``data`` parsed when it is a JSON string)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, key: str, secret: str) -> None:
        self.ws = ws
        self.key = key
        self.secret = secret
        self.socket_id = ""
        #: The first frame when it was not ``pusher:connection_established`` (a refusal).
        self.first: dict[str, Any] | None = None

    async def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data if data is not None else {}}
        if channel is not None:
            frame["channel"] = channel
        await self.ws.send_str(json.dumps(frame))

    async def recv(self, wait: float = 5.0, pings: bool = False) -> dict[str, Any]:
        """The next frame; the server's pings (activity timeout 1 s here) are skipped unless
        ``pings``."""
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), scaled(wait))
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            frame: dict[str, Any] = json.loads(msg.data)
            if isinstance(frame.get("data"), str):
                with suppress(ValueError):
                    frame["data"] = json.loads(frame["data"])
            if pings or frame["event"] != "pusher:ping":
                return frame

    async def expect(self, event: str, wait: float = 5.0) -> dict[str, Any]:
        while True:
            frame = await self.recv(wait)
            if frame["event"] == event:
                return frame
            assert frame["event"] in ("pusher:ping", "pusher:pong"), frame

    async def nothing(self, seconds: float = 0.5) -> None:
        try:
            frame = await self.recv(seconds)
        except TimeoutError:
            return
        if frame["event"] != "pusher:ping":
            raise AssertionError(f"unexpected {frame}")

    async def subscribe(
        self, channel: str, channel_data: dict[str, Any] | None = None, secret: str | None = None
    ) -> dict[str, Any]:
        """Subscribe (signed with ``secret``, the app's by default); the reply frame."""
        data: dict[str, Any] = {"channel": channel}
        text = json.dumps(channel_data) if channel_data is not None else None
        if channel.startswith(("private-", "presence-")):
            data["auth"] = f"{self.key}:" + signing.sign(
                secret or self.secret,
                signing.channel_string_to_sign(self.socket_id, channel, text),
            )
        if text is not None:
            data["channel_data"] = text
        await self.send("pusher:subscribe", data)
        return await self.recv()

    async def signin(self, user_data: dict[str, Any]) -> dict[str, Any]:
        """``pusher:signin`` signed with the app's secret; the reply frame."""
        text = json.dumps(user_data)
        auth = f"{self.key}:" + signing.sign(
            self.secret, signing.user_string_to_sign(self.socket_id, text)
        )
        await self.send("pusher:signin", {"auth": auth, "user_data": text})
        return await self.recv()


@asynccontextmanager
async def connect(
    url: str, key: str, secret: str, query: str = "?protocol=7", compress: int = 0
) -> AsyncIterator[Client]:
    """A connection to ``{url}/app/{key}{query}`` (``url``: the server's ws:// base), past
    its first frame (its socket id set, or ``first`` holding a refusal)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/app/{key}{query}", compress=compress) as ws,
    ):
        client = Client(ws, key, secret)
        first = await client.recv()
        if first["event"] == "pusher:connection_established":
            client.socket_id = first["data"]["socket_id"]
        else:
            client.first = first
        yield client


def node_channel_of(app_id: str, channel: str) -> str:
    """The node channel of an unmapped app's Pusher ``channel`` (docs/pusher.md)."""
    prefix = "$" if channel.startswith(("private-", "presence-", "#")) else ""
    return f"{prefix}pusher-{app_id}:{channel}"


async def server_api_event(
    url: str, api_key: str, app_id: str, channel: str, event: str, data: Any
) -> None:
    """An event on an unmapped app's ``channel`` through hubbub's own server API at ``url``
    (http://...): a publication tagged with the event name (the Pusher HTTP API has its own
    tests)."""
    body = {
        "channel": node_channel_of(app_id, channel),
        "data": data,
        "tags": {"pusher_event": event},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/api/publish", json=body, headers={"X-API-Key": api_key}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert "error" not in await resp.json()
