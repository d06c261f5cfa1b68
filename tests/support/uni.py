"""Plain aiohttp clients of the unidirectional transports (uni_sse, uni_http_stream,
uni_websocket): the pushes they receive, and the SSE ids seen."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.support.timing import scaled

TRANSPORTS = ["uni_sse", "uni_http_stream", "uni_websocket"]


class Pushes:
    """The pushes one unidirectional connection receives, with the SSE ids seen."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.ids: list[str] = []
        self.close_code: int | None = None

    async def next(self, skip_pings: bool = True) -> dict[str, Any] | None:
        """The next push (None: the stream ended), within 10 s."""
        while True:
            push = await asyncio.wait_for(self.queue.get(), scaled(10))
            if push is None or push or not skip_pings:
                return push


async def read_sse(resp: aiohttp.ClientResponse, pushes: Pushes) -> None:
    event_id: str | None = None
    data: list[str] = []
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                if event_id is not None:
                    pushes.ids.append(event_id)
                await pushes.queue.put(json.loads("\n".join(data)))
            event_id, data = None, []
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line.startswith("id: ") or line == "id:":
            event_id = line[4:]
    await pushes.queue.put(None)


async def read_lines(resp: aiohttp.ClientResponse, pushes: Pushes) -> None:
    async for raw in resp.content:
        if raw.strip():
            await pushes.queue.put(json.loads(raw))
    await pushes.queue.put(None)


async def read_ws(ws: aiohttp.ClientWebSocketResponse, pushes: Pushes) -> None:
    """Text frames as pushes; ``close_code``: the code of the server's close frame (not
    aiohttp's ``close_code``, which is 1006 when the server drops the TCP connection before
    the client's close reply is out)."""
    while True:
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            assert "\n" not in msg.data  # one push per frame
            await pushes.queue.put(json.loads(msg.data))
        elif msg.type is aiohttp.WSMsgType.CLOSE:
            pushes.close_code = msg.data
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
    await pushes.queue.put(None)


@asynccontextmanager
async def connect(
    base: str,
    transport: str,
    request: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Pushes]:
    """A unidirectional connection to the server at ``base`` (``http://host:port``) over
    ``transport`` sending ``request``; yields its pushes."""
    pushes = Pushes()
    async with aiohttp.ClientSession() as http:
        url = f"{base}/connection/{transport}"
        if transport == "uni_websocket":
            ws_url = "ws" + base[len("http") :] + "/connection/uni_websocket"
            async with http.ws_connect(ws_url) as ws:
                await ws.send_str(json.dumps(request))
                reader = asyncio.create_task(read_ws(ws, pushes))
                try:
                    yield pushes
                finally:
                    reader.cancel()
            return
        if transport == "uni_sse":
            url += "?cf_connect=" + quote(json.dumps(request))
            ctx = http.get(url, headers=headers)
        else:
            ctx = http.post(url, data=json.dumps(request), headers=headers)
        async with ctx as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["X-Accel-Buffering"] == "no"
            assert "no-cache" in resp.headers["Cache-Control"]
            if transport == "uni_sse":
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                reader = asyncio.create_task(read_sse(resp, pushes))
            else:
                reader = asyncio.create_task(read_lines(resp, pushes))
            try:
                yield pushes
            finally:
                reader.cancel()
