"""The aiohttp application: routes only. Handlers validate, accept and hand over to dialects.

Every route: a request whose request line and headers exceed ``max_handshake_header_bytes``
gets 431 (the connection's first request is refused earlier, as its bytes arrive: see
:mod:`hubbub.server.edge`). WebSocket routes and the unidirectional HTTP streams: beyond
``client_connection_limit`` (connections attached to the node plus handshakes under way) a
handshake gets 503 before the upgrade (or the stream's response).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from hubbub import __version__
from hubbub.config import Settings
from hubbub.core.names import validate_name
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.codec import Codec
from hubbub.dialects.raw import run_echo, run_room
from hubbub.errors import InvalidName
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.server import api, emulation, metrics, pages, pusher, unidirectional
from hubbub.server.admission import Admission, AdmissionRefused, connection_limit
from hubbub.server.health import report
from hubbub.server.policy import CENTRIFUGE_CODECS, CENTRIFUGE_POLICIES, offered_codec
from hubbub.server.remote import client_of, trust
from hubbub.server.static import STATIC_DIR, STATIC_FILES
from hubbub.server.websocket import accept
from hubbub.transport import Transport

log = logging.getLogger(__name__)

NODE_KEY: Final = web.AppKey("node", Node)
HOOKS_KEY: Final = web.AppKey("hooks", Hooks)
SETTINGS_KEY: Final = web.AppKey("settings", Settings)
#: Tasks of the WebSocket handlers still running; shutdown waits for them.
HANDLERS_KEY: Final = web.AppKey("handlers", set[asyncio.Task[Any]])

_INDEX_HTML: Final = (STATIC_DIR / "index.html").read_text("utf-8")


def header_bytes(request: web.BaseRequest) -> int:
    """The size of ``request``'s request line and headers as a client sends them."""
    size = len(request.method) + len(request.raw_path) + 12  # " " " HTTP/1.1\r\n"
    for name, value in request.raw_headers:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
    return size + 2  # the blank line


def header_limit(limit: int) -> Middleware:
    """Middleware: 431 (closing the connection) for a request whose head exceeds ``limit``."""

    @web.middleware
    async def check_header_size(request: web.Request, handler: Handler) -> web.StreamResponse:
        if header_bytes(request) > limit:
            log.info(
                "refused a request from %s: request line and headers over %d bytes (HTTP 431)",
                client_of(request),
                limit,
            )
            refusal = web.HTTPRequestHeaderFieldsTooLarge(
                text=f"request line and headers exceed {limit} bytes\n"
            )
            refusal.force_close()
            raise refusal
        return await handler(request)

    return check_header_size


class HttpAdmission(Admission):
    """:class:`hubbub.server.admission.Admission` for aiohttp handlers: a refusal is 503."""

    __slots__ = ()

    @contextmanager
    def handshake(self) -> Iterator[None]:
        """``with admission.handshake(): conn = await accept(...)``, then attach the connection
        with no await in between. Raises 503 while shutting down or at the limit."""
        try:
            self.enter()
        except AdmissionRefused as exc:
            raise web.HTTPServiceUnavailable(text=exc.text) from None
        try:
            yield
        finally:
            self.leave()


ADMISSION_KEY: Final = web.AppKey("admission", HttpAdmission)


def make_app(settings: Settings, node: Node, hooks: Hooks | None = None) -> web.Application:
    """Build the application serving ``node`` with the application's ``hooks``."""
    app = web.Application(
        client_max_size=settings.api_max_body_size,
        middlewares=[header_limit(settings.max_handshake_header_bytes)],
    )
    app[SETTINGS_KEY] = settings
    app[NODE_KEY] = node
    app[HOOKS_KEY] = hooks or Hooks()
    app[HANDLERS_KEY] = set()
    app[ADMISSION_KEY] = HttpAdmission(node, connection_limit(settings))
    trust(app, settings)
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/rooms/{room:.*}", room)
    app.router.add_get("/connection/websocket", connection_websocket)
    unidirectional.add_routes(app, settings, node, app[HOOKS_KEY], app[ADMISSION_KEY], _Served)
    emulation.add_routes(app, settings, node, app[HOOKS_KEY], app[ADMISSION_KEY], _Served)
    pusher.add_routes(app, settings, node, app[ADMISSION_KEY], _Served)
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/favicon.ico", favicon)
    pages.add_routes(app, settings, node)
    if settings.api_port is None:
        api.add_routes(app, settings, node)
        metrics.add_routes(app, node)
    return app


def make_api_app(settings: Settings, node: Node) -> web.Application:
    """The internal app for ``api_port``: the server API, ``/metrics`` and ``/health``."""
    app = web.Application(
        client_max_size=settings.api_max_body_size,
        middlewares=[header_limit(settings.max_handshake_header_bytes)],
    )
    api.add_routes(app, settings, node)
    metrics.add_routes(app, node)
    app.router.add_get("/health", health)
    app[NODE_KEY] = node
    trust(app, settings)
    return app


class Served(Transport, Protocol):
    """A connection a handler serves: a Transport it releases when done."""

    def release(self) -> None: ...


class _Served:
    """``with _Served(request, conn):`` keeps ``conn`` attached to the node (and its handler
    task known to the shutdown) for the block. A context object rather than a wrapping
    coroutine: one coroutine frame less per connection."""

    __slots__ = ("_conn", "_handlers", "_node", "_shutdown", "_task")

    def __init__(
        self,
        request: web.Request,
        conn: Served,
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
    with request.app[ADMISSION_KEY].handshake():
        conn = await accept(request, request.app[SETTINGS_KEY])
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
    with request.app[ADMISSION_KEY].handshake():
        conn = await accept(request, request.app[SETTINGS_KEY])
    with _Served(request, conn):
        await run_room(request.app[NODE_KEY], name, conn)
        # A close the dialect started must reach the peer before aiohttp ends the response
        # (it would close with 1000 itself).
        await conn.wait_closed()
    return conn.response


def _offered_codec(request: web.Request) -> Codec:
    """The codec of the first Centrifugo subprotocol the client offers; JSON without one.
    Only the first ``Sec-WebSocket-Protocol`` header is read, as aiohttp's handshake does,
    so the codec is always the subprotocol the handshake announces."""
    return offered_codec(request.headers.get("Sec-WebSocket-Protocol", "").split(","))[1]


async def connection_websocket(request: web.Request) -> web.StreamResponse:
    """``GET /connection/websocket``: the Centrifugo client protocol, JSON or (subprotocol
    ``centrifuge-protobuf``) Protobuf."""
    node = request.app[NODE_KEY]
    codec = _offered_codec(request)
    policy = CENTRIFUGE_POLICIES[codec.name]
    with request.app[ADMISSION_KEY].handshake():
        conn = await accept(request, request.app[SETTINGS_KEY], policy, tuple(CENTRIFUGE_CODECS))
    with _Served(request, conn, centrifuge.SHUTDOWN):
        await centrifuge.run_centrifuge(
            node, request.app[HOOKS_KEY], conn, request.headers, codec, address=client_of(request)
        )
        await conn.wait_closed()
    return conn.response


async def static_file(request: web.Request) -> web.StreamResponse:
    """``GET /static/{path}``: one of :data:`STATIC_FILES`, else 404. Public files, so any
    origin may load them (``Access-Control-Allow-Origin: *``: an application's page imports
    hubbub.js from here; no credentials are involved)."""
    path = STATIC_FILES.get(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="no such file\n")
    return web.FileResponse(path, headers={"Access-Control-Allow-Origin": "*"})


async def favicon(request: web.Request) -> web.StreamResponse:
    """``GET /favicon.ico``: hubbub's icon (SVG), for what browsers ask of pages that name
    none (/health, /metrics); hubbub's own pages link /static/favicon.svg."""
    return web.FileResponse(STATIC_DIR / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


async def health(request: web.Request) -> web.Response:
    """``GET /health``: :func:`hubbub.server.health.report`."""
    status, body = report(request.app[NODE_KEY])
    return web.json_response(body, status=status)
