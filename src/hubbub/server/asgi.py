"""hubbub as an ASGI 3 application (``hub.asgi()``): the endpoints of ``hubbub serve`` inside
another Python web application (Starlette, FastAPI, Django) or alone under an ASGI server.

Routes, relative to where the app is mounted (``scope["root_path"]`` is stripped from
``scope["path"]`` when the path starts with it, as Starlette's ``Mount`` passes it):

- WebSocket: ``/`` (echo), ``/rooms/{room}`` (raw rooms), ``/connection/websocket`` (the
  Centrifugo protocol, JSON or, with the ``centrifuge-protobuf`` subprotocol, Protobuf),
  ``/connection/uni_websocket``, ``/app/{key}`` (the Pusher protocol; its HTTP API is
  not served here).
- HTTP: ``GET /health``, ``POST /api/{method}``, the legacy ``POST /api``,
  ``GET /api/openapi.json``, ``GET /`` (a line saying what is served here), and the HTTP
  streams of :mod:`hubbub.server.asgi_stream`.

Guarantees, as hubbub's own edge gives them: the ``Origin`` allow-list (403), the connection
limit counting every WebSocket and stream (503), the server API's key (401) and body limit
(413), a bad room name (400); a WebSocket refused before its upgrade gets the HTTP status when
the ASGI server offers the ``websocket.http.response`` extension (uvicorn does), else the
server's 403. The node is the one :meth:`hubbub.Hub.running` runs: served alone, the app
enters it on the ASGI ``lifespan`` startup and leaves it at shutdown; mounted (a mounted app
gets no lifespan) the host enters ``hub.running()`` in its own lifespan. While no node runs,
HTTP requests get 503 and WebSockets are accepted and closed with 1013 and a reason.
Header names the hooks see are lowercased (ASGI gives them so). The client address is
``scope["client"]`` (the ASGI server's business, proxy headers included).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import parse_qsl

from hubbub import __version__
from hubbub.core import messages as m
from hubbub.core.closecode import CloseCode
from hubbub.core.names import validate_name
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.unidirectional import run_uni_websocket
from hubbub.dialects.centrifuge.uniwire import CONNECT_PARAM, BadConnect, connect_frame
from hubbub.dialects.pusher.session import SHUTDOWN as PUSHER_SHUTDOWN
from hubbub.dialects.pusher.session import Apps, run_pusher
from hubbub.dialects.raw import run_echo, run_room
from hubbub.errors import InvalidName
from hubbub.server import apicore
from hubbub.server.admission import (
    Admission,
    AdmissionRefused,
    connection_limit,
    origin_refusal,
)
from hubbub.server.asgi_http import (
    BodyRefused,
    Message,
    Receive,
    Scope,
    Send,
    client_address,
    headers_of,
    query_param,
    read_body,
    respond,
    respond_json,
    route_path,
)
from hubbub.server.asgi_stream import PATHS, serve_stream
from hubbub.server.asgi_websocket import ASGIWebSocket
from hubbub.server.emulationdesk import Desk
from hubbub.server.health import report
from hubbub.server.lifecycle import NodeRun
from hubbub.server.openapi import document
from hubbub.server.policy import (
    CENTRIFUGE_POLICIES,
    PUSHER_REFUSED,
    RAW_POLICY,
    UNI_WS_POLICY,
    Policy,
    offered_codec,
    pusher_policy,
)

if TYPE_CHECKING:  # the hub builds this app (Hub.asgi): at run time this way only
    from hubbub.hub import Hub

log = logging.getLogger(__name__)


class ASGIApp(Protocol):
    """An ASGI 3 application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


#: The reason of the close (1013) a WebSocket gets while no node runs.
NOT_RUNNING: Final = "hubbub is not running"
NOT_RUNNING_TEXT: Final = (
    "hubbub is not running: enter `async with hub.running():` in the application's lifespan\n"
)

#: The handler of one WebSocket once accepted.
Dialect = Callable[[ASGIWebSocket], Awaitable[None]]


def uni_connect(scope: Scope) -> m.Frame | None:
    """The connect request of ``cf_connect``; None without one. Raises :class:`BadConnect`."""
    text = query_param(scope, CONNECT_PARAM)
    return connect_frame(text) if text else None


class HubASGI:
    """The ASGI app of one hub; see the module docstring."""

    def __init__(self, hub: Hub, config: str | Path | None, flags: dict[str, Any]) -> None:
        self._hub = hub
        self._config = config
        self._flags = flags
        self._state: tuple[NodeRun, Admission, Desk | None] | None = None
        self._pusher: tuple[NodeRun, Apps, dict[str, Policy]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)

    # -- lifespan -------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start the hub's node at startup (unless it runs already), stop it at shutdown."""
        async with AsyncExitStack() as stack:
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    if self._hub.node_run is None:
                        try:
                            await stack.enter_async_context(
                                self._hub.running(self._config, **self._flags)
                            )
                        except Exception as exc:
                            log.exception("hubbub could not start")
                            await send({"type": "lifespan.startup.failed", "message": str(exc)})
                            return
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await stack.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def _state_of(self, run: NodeRun) -> tuple[Admission, Desk | None]:
        """The connection limit's count and the emulation's sessions of ``run``'s node."""
        state = self._state
        if state is None or state[0] is not run:
            settings = run.settings
            admission = Admission(run.node, connection_limit(settings))
            desk = Desk(run.node) if settings.http_stream or settings.sse else None
            state = self._state = (run, admission, desk)
        return state[1], state[2]

    def _pusher_of(self, run: NodeRun) -> tuple[Apps, dict[str, Policy]]:
        """The Pusher apps of ``run``'s node (with their connection counts) and policies."""
        state = self._pusher
        if state is None or state[0] is not run:
            apps = run.settings.pusher_apps
            state = self._pusher = (run, Apps(apps), {a.key: pusher_policy(a) for a in apps})
        return state[1], state[2]

    # -- WebSockets -----------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        run = self._hub.node_run
        if run is None:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1013, "reason": NOT_RUNNING})
            return
        settings = run.settings
        headers = headers_of(scope)
        refusal = origin_refusal(headers.getall("origin", ()), settings.allowed_origins)
        if refusal is not None:
            await self._refuse(scope, send, 403, refusal)
            return
        path = route_path(scope)
        subprotocol: str | None = None
        shutdown = centrifuge.SHUTDOWN
        dialect: Dialect
        policy = RAW_POLICY
        node, hooks = run.node, run.hooks
        address = client_address(scope) or ""  # the ASGI server's (it reads proxy headers)
        if path == "/":
            shutdown = (1001, "going away")
            dialect = run_echo
        elif path.startswith("/rooms/"):
            room = path[len("/rooms/") :]
            try:
                validate_name(room)
            except InvalidName as exc:
                await self._refuse(scope, send, 400, f"bad room name: {exc.reason}\n")
                return
            shutdown = (1001, "going away")

            async def dialect(conn: ASGIWebSocket) -> None:
                await run_room(node, room, conn)

        elif path == "/connection/websocket":
            subprotocol, codec = offered_codec(list(scope.get("subprotocols") or ()))
            policy = CENTRIFUGE_POLICIES[codec.name]

            async def dialect(conn: ASGIWebSocket) -> None:
                await centrifuge.run_centrifuge(node, hooks, conn, headers, codec, address=address)

        elif path == "/connection/uni_websocket" and settings.uni_websocket:
            policy = UNI_WS_POLICY
            try:
                frame = uni_connect(scope)
            except BadConnect as exc:
                await self._refuse(scope, send, 400, f"{exc}\n")
                return

            async def dialect(conn: ASGIWebSocket) -> None:
                await run_uni_websocket(node, hooks, conn, headers, frame, address)

        elif path.startswith("/app/"):
            key = path[len("/app/") :]
            apps, policies = self._pusher_of(run)
            policy = policies.get(key, PUSHER_REFUSED)
            shutdown = PUSHER_SHUTDOWN
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))

            async def dialect(conn: ASGIWebSocket) -> None:
                await run_pusher(node, apps, key, query, conn)

        else:
            await self._refuse(scope, send, 404, "no such WebSocket endpoint\n")
            return
        admission = self._state_of(run)[0]
        try:
            admission.enter()
        except AdmissionRefused as exc:
            await self._refuse(scope, send, 503, exc.text, busy=True)
            return
        try:
            accept: Message = {"type": "websocket.accept"}
            if subprotocol is not None:
                accept["subprotocol"] = subprotocol
            await send(accept)
            conn = ASGIWebSocket(receive, send, settings, policy, client_address(scope))
        finally:
            admission.leave()
        await self._serve(run, conn, dialect, shutdown)

    @staticmethod
    async def _serve(
        run: NodeRun, conn: ASGIWebSocket, dialect: Dialect, shutdown: tuple[int, str]
    ) -> None:
        """``conn`` attached to the node (its task known to the shutdown) while ``dialect``
        serves it; nothing of it left running after."""
        task = asyncio.current_task()
        assert task is not None
        run.node.attach(conn, shutdown)
        run.handlers.add(task)
        try:
            await dialect(conn)
            await conn.wait_closed()
        finally:
            run.handlers.discard(task)
            run.node.detach(conn)
            conn.release()
            await conn.finished()

    @staticmethod
    async def _refuse(
        scope: Scope, send: Send, status: int, text: str, *, busy: bool = False
    ) -> None:
        """Refuse a handshake: with ``status`` and ``text`` where the server lets an app
        answer a handshake over HTTP; else the server's 403 (or, ``busy``, accepted and
        closed with 1013 and the text)."""
        if "websocket.http.response" in (scope.get("extensions") or {}):
            data = text.encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", b"%d" % len(data)),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": data})
        elif busy:
            await send({"type": "websocket.accept"})
            reason = text.strip()[:123]
            await send(
                {
                    "type": "websocket.close",
                    "code": int(CloseCode.TRY_AGAIN_LATER),
                    "reason": reason,
                }
            )
        else:
            await send({"type": "websocket.close", "code": 1008})

    # -- HTTP -----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = self._hub.node_run
        path = route_path(scope)
        method = scope.get("method", "GET")
        if run is None:
            await respond(send, 503, NOT_RUNNING_TEXT)
            return
        if path == "/health":
            if method not in ("GET", "HEAD"):
                await respond(send, 405, "method not allowed\n", headers={"Allow": "GET"})
                return
            status, body = report(run.node)
            await respond_json(send, status, json.dumps(body))
        elif path == "/api/openapi.json" and method in ("GET", "HEAD"):
            await respond_json(send, 200, json.dumps(document()))
        elif path == "/api" or path.startswith("/api/"):
            if method != "POST":
                await respond(send, 405, "method not allowed\n", headers={"Allow": "POST"})
                return
            await self._api(scope, receive, send, run, path)
        elif path == "/":
            if method not in ("GET", "HEAD"):
                await respond(send, 405, "method not allowed\n", headers={"Allow": "GET"})
                return
            text = f"hubbub {__version__}: WebSocket echo at this path\n"
            await respond(send, 200, text)
        elif path in PATHS:
            admission, desk = self._state_of(run)
            await serve_stream(scope, receive, send, run, admission, desk, path)
        else:
            await respond(send, 404, "not found\n")

    async def _api(
        self, scope: Scope, receive: Receive, send: Send, run: NodeRun, path: str
    ) -> None:
        settings = run.settings
        headers = headers_of(scope)
        refused = apicore.refused(settings, headers)
        if refused is not None:
            await respond_json(send, *refused)
            return
        name = path[len("/api/") :] if path.startswith("/api/") else None
        if name is not None:
            unknown = apicore.known(name)
            if unknown is not None:
                await respond_json(send, *unknown)
                return
        limit = settings.api_max_body_size
        try:
            raw = await read_body(receive, headers, limit, settings.handshake_timeout)
        except BodyRefused as exc:
            if exc.status == 413:
                await respond_json(send, *apicore.too_large(limit))
            elif exc.status == 408:
                await respond_json(send, *apicore.too_slow())
            else:
                await respond(send, exc.status, exc.text + "\n")
            return
        client = client_address(scope) or ""
        if name is None:
            await respond_json(send, *await apicore.call_legacy(run.node, raw, client))
        else:
            await respond_json(send, *await apicore.call(run.node, name, raw, client))
