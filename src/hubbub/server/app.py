"""The aiohttp application: routes only. Handlers validate, accept and hand over to dialects."""

from __future__ import annotations

import asyncio
import time
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from hubbub import __version__
from hubbub.config import Settings
from hubbub.core.names import validate_name
from hubbub.dialects import centrifuge
from hubbub.dialects.raw import run_echo, run_room
from hubbub.errors import InvalidName
from hubbub.hub import Hooks
from hubbub.node import Node
from hubbub.server import api, metrics, pages
from hubbub.server.websocket import Policy, WebSocketConnection, accept

NODE_KEY: Final = web.AppKey("node", Node)
HOOKS_KEY: Final = web.AppKey("hooks", Hooks)
SETTINGS_KEY: Final = web.AppKey("settings", Settings)
#: Tasks of the WebSocket handlers still running; shutdown waits for them.
HANDLERS_KEY: Final = web.AppKey("handlers", set[asyncio.Task[Any]])

STATIC_DIR: Final = Path(str(files("hubbub.server").joinpath("static")))
_INDEX_HTML: Final = (STATIC_DIR / "index.html").read_text("utf-8")


CENTRIFUGE_POLICY: Final = Policy(
    ping=centrifuge.PING_MESSAGE, no_pong=centrifuge.NO_PONG, slow=centrifuge.SLOW, coalesce=True
)


def make_app(settings: Settings, node: Node, hooks: Hooks | None = None) -> web.Application:
    """Build the application serving ``node`` with the application's ``hooks``."""
    app = web.Application(client_max_size=settings.api_max_body_size)
    app[SETTINGS_KEY] = settings
    app[NODE_KEY] = node
    app[HOOKS_KEY] = hooks or Hooks()
    app[HANDLERS_KEY] = set()
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/rooms/{room:.*}", room)
    app.router.add_get("/connection/websocket", connection_websocket)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    pages.add_routes(app, settings, node)
    if settings.api_port is None:
        api.add_routes(app, settings, node)
        metrics.add_routes(app, node)
    return app


def make_api_app(settings: Settings, node: Node) -> web.Application:
    """The internal app for ``api_port``: the server API (and later metrics and admin)."""
    app = web.Application(client_max_size=settings.api_max_body_size)
    api.add_routes(app, settings, node)
    metrics.add_routes(app, node)
    app.router.add_get("/health", health)
    app[NODE_KEY] = node
    return app


class _Served:
    """``with _Served(request, conn):`` keeps ``conn`` attached to the node (and its handler
    task known to the shutdown) for the block. A context object rather than a wrapping
    coroutine: one coroutine frame less per connection."""

    __slots__ = ("_conn", "_handlers", "_node", "_shutdown", "_task")

    def __init__(
        self,
        request: web.Request,
        conn: WebSocketConnection,
        shutdown: tuple[int, str] = (1001, "going away"),
    ) -> None:
        self._conn = conn
        self._node = request.app[NODE_KEY]
        self._handlers = request.app[HANDLERS_KEY]
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._shutdown = shutdown

    def __enter__(self) -> None:
        self._node.attach(self._conn, self._shutdown)
        self._handlers.add(self._task)

    def __exit__(self, *exc: object) -> None:
        self._handlers.discard(self._task)
        self._node.detach(self._conn)
        self._conn.release()


async def index(request: web.Request) -> web.StreamResponse:
    """``GET /``: the echo endpoint for WebSocket handshakes, the home page otherwise."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        ws_base = f"ws://{request.host}"
        html = _INDEX_HTML.replace("{{version}}", __version__).replace("{{ws}}", ws_base)
        return web.Response(text=html, content_type="text/html")
    settings = request.app[SETTINGS_KEY]
    if request.app[NODE_KEY].closing:
        raise web.HTTPServiceUnavailable(text="shutting down\n")
    conn = await accept(request, settings)
    with _Served(request, conn):
        await run_echo(conn)
        await conn.wait_closed()
    return conn.response


async def room(request: web.Request) -> web.StreamResponse:
    """``GET /rooms/{room}``: a raw room; a bad room name is refused with HTTP 400."""
    name = request.match_info["room"]
    try:
        validate_name(name)
    except InvalidName as exc:
        raise web.HTTPBadRequest(text=f"bad room name: {exc.reason}\n") from None
    if request.app[NODE_KEY].closing:
        raise web.HTTPServiceUnavailable(text="shutting down\n")
    conn = await accept(request, request.app[SETTINGS_KEY])
    with _Served(request, conn):
        await run_room(request.app[NODE_KEY], name, conn)
        # A close the dialect started must reach the peer before aiohttp ends the response
        # (it would close with 1000 itself).
        await conn.wait_closed()
    return conn.response


async def connection_websocket(request: web.Request) -> web.StreamResponse:
    """``GET /connection/websocket``: the Centrifugo client protocol (JSON)."""
    node = request.app[NODE_KEY]
    if node.closing:
        raise web.HTTPServiceUnavailable(text="shutting down\n")
    conn = await accept(request, request.app[SETTINGS_KEY], CENTRIFUGE_POLICY)
    with _Served(request, conn, centrifuge.SHUTDOWN):
        await centrifuge.run_centrifuge(node, request.app[HOOKS_KEY], conn, request.headers)
        await conn.wait_closed()
    return conn.response


async def health(request: web.Request) -> web.Response:
    """``GET /health``: 200 with a small JSON body while the server accepts work; 503 while
    shutting down or while the engine (Redis) is unreachable."""
    node = request.app[NODE_KEY]
    engine_ok = bool(getattr(node.broker, "connected", True))
    status = "shutting_down" if node.closing else ("ok" if engine_ok else "engine_unavailable")
    body = {
        "status": status,
        "version": __version__,
        "uptime_seconds": round(time.time() - node.started_at, 3),
        "connections": node.connection_count,
        "channels": len(node.channels()),
        "engine": {"kind": node.settings.engine.split(":", 1)[0], "connected": engine_ok},
    }
    return web.json_response(body, status=200 if status == "ok" else 503)
