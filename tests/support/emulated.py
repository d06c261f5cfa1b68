"""A plain aiohttp client of the bidirectional emulation (``/connection/http_stream`` or
``/connection/sse`` out, ``/emulation`` in), speaking the JSON protocol as centrifuge-js
does: the connect command opens the stream, later commands are POSTed with the session and
node the connect result named; replies are matched by id, pushes queued, pings answered."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.support.timing import scaled
from tests.support.uni import Pushes, read_lines, read_sse

TRANSPORTS = ["http_stream", "sse"]


class Emulated:
    """One emulated connection: ``connected`` is the connect result."""

    def __init__(self, http: aiohttp.ClientSession, base: str, incoming: Pushes) -> None:
        self.http = http
        self.base = base
        #: Where ``/emulation`` requests go (another node's base to test forwarding).
        self.emulation_base = base
        self.incoming = incoming
        self.pushes: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.connected: dict[str, Any] = {}
        self.session = ""
        self.node = ""
        self.answer_pings = True
        self._ids = itertools.count(2)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._router: asyncio.Task[None] | None = None

    async def _route(self) -> None:
        while True:
            message = await self.incoming.queue.get()
            if message is None:
                for waiter in self._waiting.values():
                    if not waiter.done():
                        waiter.set_exception(ConnectionError("stream ended"))
                await self.pushes.put(None)
                return
            if not message:
                if self.answer_pings:
                    await self.post([{}])
                continue
            cid = message.get("id")
            if cid and cid in self._waiting:
                self._waiting.pop(cid).set_result(message)
            else:
                await self.pushes.put(message.get("push", message))

    async def post(self, commands: list[dict[str, Any]]) -> int:
        """POST ``commands`` to ``/emulation``; the HTTP status."""
        body = {
            "session": self.session,
            "node": self.node,
            "data": "\n".join(json.dumps(c) for c in commands),
        }
        async with self.http.post(f"{self.emulation_base}/emulation", json=body) as resp:
            await resp.read()
            return resp.status

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one command; its reply (``{"id", method: result}`` or ``{"id", "error"}``)."""
        cid = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[cid] = waiter
        status = await self.post([{"id": cid, method: params}])
        assert status == 204, status
        return await asyncio.wait_for(waiter, scaled(10))

    async def push(self) -> dict[str, Any] | None:
        """The next push (None: the stream ended), within 10 s."""
        return await asyncio.wait_for(self.pushes.get(), scaled(10))


@asynccontextmanager
async def connect(
    base: str,
    transport: str,
    connect: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Emulated]:
    """An emulated connection to the server at ``base`` over ``transport``, connected with
    ``connect`` (the connect command's params); yields it once the connect reply came (its
    ``connected`` holds the result, or it has ``error`` when the connect failed)."""
    incoming = Pushes()
    command = json.dumps({"id": 1, "connect": connect or {}})
    async with aiohttp.ClientSession() as http:
        if transport == "sse":
            url = f"{base}/connection/sse?cf_connect={quote(command)}"
            ctx = http.get(url, headers=headers)
        else:
            url = f"{base}/connection/http_stream"
            ctx = http.post(url, data=command, headers={"Content-Type": "application/json"})
        async with ctx as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["X-Accel-Buffering"] == "no"
            read = read_sse if transport == "sse" else read_lines
            reader = asyncio.create_task(read(resp, incoming))
            client = Emulated(http, base, incoming)
            try:
                first = await incoming.next()
                assert first is not None and first.get("id") == 1, first
                client.connected = first.get("connect", {})
                client.session = client.connected.get("session", "")
                client.node = client.connected.get("node", "")
                if "error" in first:
                    client.connected = {"error": first["error"]}
                client._router = asyncio.create_task(client._route())
                yield client
            finally:
                reader.cancel()
                if client._router is not None:
                    client._router.cancel()
