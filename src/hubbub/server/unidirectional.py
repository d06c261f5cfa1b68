"""The unidirectional endpoints of the Centrifugo protocol, as Centrifugo serves them:
``/connection/uni_sse``, ``/connection/uni_http_stream`` and ``/connection/uni_websocket``
(each on unless its config key, ``uni_sse``, ``uni_http_stream``, ``uni_websocket``, is false:
then 404).

What the edge checks before a connection is served (the dialect then handles the connect,
:mod:`hubbub.dialects.centrifuge.unidirectional`):

- ``Origin`` against ``allowed_origins`` (403), as for ``/connection/websocket``.
- The connect request: ``uni_sse`` takes it as the JSON of the ``cf_connect`` query parameter
  (GET, what an ``EventSource`` can send) or as a POST body, ``uni_http_stream`` as a POST
  body, ``uni_websocket`` as ``cf_connect`` or else the first text message. A body over
  ``max_message_size`` bytes gets 413, a request that is not a JSON object of the protocol's
  types 400 (``uni_websocket``'s first message: close 3501).
- The connection limit (``client_connection_limit``, 503) counts these connections as it
  counts WebSockets.
- CORS, as Centrifugo: the HTTP streams (and their ``OPTIONS`` preflight) echo an allowed
  ``Origin`` in ``Access-Control-Allow-Origin`` with credentials allowed, so a page of an
  allowed origin can read them.

Responses: ``uni_sse`` is ``text/event-stream``, one SSE event per push; ``uni_http_stream``
one JSON push per line; both with the no-cache and ``X-Accel-Buffering: no`` headers
Centrifugo sends, so proxies do not buffer them. ``uni_websocket`` sends one text frame per
push, pings with WebSocket pings (a peer that does not answer is dropped), reads and ignores
what the client sends after the connect (counted by the rate limits as commands are: a flood
is disconnected with 3013), and ends with the disconnect push, then a close
frame with the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from aiohttp import web

from hubbub.config import Settings
from hubbub.core import messages as m
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.eventids import SseFraming, line_framing, parse_event_id
from hubbub.dialects.centrifuge.unidirectional import (
    run_uni_websocket,
    run_unidirectional,
    with_recovery,
)
from hubbub.dialects.centrifuge.uniwire import (
    CONNECT_PARAM,
    BadConnect,
    connect_frame,
    disconnect_push,
)
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.server.httpedge import (
    answer_preflight,
    read_body,
    readable_refusals,
)
from hubbub.server.httpheads import LINE_HEADERS, SSE_HEADERS, cors_headers
from hubbub.server.httpstream import StreamConnection, open_stream
from hubbub.server.policy import UNI_WS_POLICY
from hubbub.server.remote import client_of
from hubbub.server.websocket import accept

#: ``served(request, conn, shutdown)``: the app's context keeping ``conn`` attached.
Served = Callable[[web.Request, Any, tuple[int, str]], AbstractContextManager[None]]


class Handshakes(Protocol):
    def handshake(self) -> AbstractContextManager[None]: ...


def _frame(text: str | bytes) -> m.Frame:
    try:
        return connect_frame(text)
    except BadConnect as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None


def add_routes(
    app: web.Application,
    settings: Settings,
    node: Node,
    hooks: Hooks,
    admission: Handshakes,
    served: Served,
) -> None:
    """Register the endpoints the settings turn on."""

    async def stream(
        request: web.Request,
        frame: m.Frame,
        headers: dict[str, str],
        framing: Callable[[str | bytes], bytes],
        preamble: bytes,
        name: str,
    ) -> web.StreamResponse:
        headers = {**headers, **cors_headers(request.headers, bool(settings.allowed_origins))}
        with admission.handshake():
            conn: StreamConnection = await open_stream(
                request, settings, headers, framing, disconnect_push, centrifuge.SLOW, preamble
            )
        with served(request, conn, centrifuge.SHUTDOWN):
            await run_unidirectional(
                node, hooks, conn, request.headers, frame, conn.run, name, client_of(request)
            )
        return conn.response

    async def uni_sse(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            text: str | bytes = await read_body(request, settings)
        else:
            text = request.query.get(CONNECT_PARAM, "")
        frame = _frame(text)
        positions = parse_event_id(request.headers.get("Last-Event-ID", ""))
        frame = with_recovery(frame, positions)
        return await stream(request, frame, SSE_HEADERS, SseFraming(), b"\r\n", "uni_sse")

    async def uni_http_stream(request: web.Request) -> web.StreamResponse:
        frame = _frame(await read_body(request, settings))
        return await stream(request, frame, LINE_HEADERS, line_framing, b"", "uni_http_stream")

    async def preflight(request: web.Request) -> web.StreamResponse:
        methods = "GET, POST, OPTIONS" if request.path.endswith("uni_sse") else "POST, OPTIONS"
        return await answer_preflight(request, settings.allowed_origins, methods)

    async def uni_websocket(request: web.Request) -> web.StreamResponse:
        text = request.query.get(CONNECT_PARAM)
        frame = _frame(text) if text else None
        with admission.handshake():
            conn = await accept(request, settings, UNI_WS_POLICY)
        with served(request, conn, centrifuge.SHUTDOWN):
            await run_uni_websocket(node, hooks, conn, request.headers, frame, client_of(request))
            await conn.wait_closed()
        return conn.response

    allowed = settings.allowed_origins
    if settings.uni_sse:
        readable_sse = readable_refusals(uni_sse, allowed)  # (checks the Origin first)
        app.router.add_get("/connection/uni_sse", readable_sse, allow_head=False)
        app.router.add_post("/connection/uni_sse", readable_sse)
        app.router.add_route("OPTIONS", "/connection/uni_sse", preflight)
    if settings.uni_http_stream:
        readable_stream = readable_refusals(uni_http_stream, allowed)
        app.router.add_post("/connection/uni_http_stream", readable_stream)
        app.router.add_route("OPTIONS", "/connection/uni_http_stream", preflight)
    if settings.uni_websocket:
        app.router.add_get("/connection/uni_websocket", uni_websocket, allow_head=False)
