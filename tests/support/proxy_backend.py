"""A scripted backend for the HTTP proxy tests: an aiohttp app in a thread of its own (so
that one backend serves a module's tests, each in its own event loop), recording every
request and answering each path as the test says."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.timing import scaled


@dataclass(frozen=True)
class Seen:
    """One proxy request: its path, headers (names lowercased) and JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """A response other than 200 with a JSON body: ``raw`` bytes, another ``status``, or
    ``json`` sent after ``delay`` seconds."""

    status: int = 200
    raw: bytes | None = None
    json: Any = None
    delay: float = 0.0


Responder = Callable[[dict[str, Any]], Any]  # the body -> a JSON value or a Reply


class Backend:
    def __init__(self) -> None:
        self.responders: dict[str, Responder] = {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Backend:
        self._thread.start()
        assert self._ready.wait(scaled(10)), "the proxy backend did not start"
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if path is None or s.path == path]

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
        self.responders.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        body = json.loads(await request.read())
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self._seen.append(Seen(path, headers, body))
        responder = self.responders.get(path)
        out = responder(body) if responder is not None else {"result": {}}
        if not isinstance(out, Reply):
            return web.json_response(out)
        if out.delay:
            await asyncio.sleep(out.delay)
        if out.raw is not None:
            return web.Response(status=out.status, body=out.raw)
        return web.json_response(out.json, status=out.status)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(scaled(10))


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
