"""The bidirectional emulation endpoints of the Centrifugo protocol, as Centrifugo serves
them: ``/connection/http_stream`` and ``/connection/sse`` (on unless ``http_stream`` /
``sse`` is false: then 404) carry the server's replies and pushes, ``/emulation`` (on while
either is) the client's commands. centrifuge-js falls back to them from a WebSocket
(``new Centrifuge([{transport: 'websocket', ...}, {transport: 'http_stream', endpoint}, ...],
{emulationEndpoint})``).

- ``/connection/http_stream``: POST, the body the connect command (JSON, or Protobuf with
  ``Content-Type: application/octet-stream``, varint length-delimited as over a WebSocket);
  the response streams one JSON reply per line, or the Protobuf replies length-delimited.
- ``/connection/sse``: GET with the connect command's JSON in ``cf_connect`` (what an
  ``EventSource`` can send) or POST with it as the body; one SSE event per reply (JSON only).
- ``/emulation``: POST Centrifugo's ``EmulationRequest`` (``{"node", "session", "data"}``
  JSON, ``data`` the commands' text; or Protobuf) for the session the connect result named.
  204 once the commands are handed to the session (their replies come over its stream);
  400 for a body that is not a request, 404 for an unknown session or node, 413 beyond
  ``max_message_size``, 408 for a body not all there within ``handshake_timeout``, 429 while
  :data:`~hubbub.dialects.centrifuge.emulation.MAX_WAITING` requests wait for the session,
  503 when the node holding it does not answer within 2 s.
  A session lives on the node that serves its stream; a request that reaches another node
  of the cluster is handed to it through the engine (a survey addressed to that node,
  :meth:`hubbub.survey.Surveys.ask_node`: requests for one node wait their turn beyond 64
  in flight, so a flood for one node, or a dead one, delays no other node's sessions), so
  no sticky sessions are needed. The node named must be in the cluster's list (:class:`Nodes`).

As the other streams (:mod:`hubbub.server.unidirectional`): ``Origin`` against
``allowed_origins`` (403), CORS for allowed origins (and their preflights; refusals carry
it too, so that centrifuge-js reads their status), the connection limit (503), the
no-cache and no-buffering headers, ping and slow-consumer rules; a
connect command that cannot be read gets 400 before the stream starts; a server-side
disconnect is a disconnect push before the stream ends, so the SDK sees the code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aiohttp import web

from hubbub.config import Settings
from hubbub.core import messages as m
from hubbub.core.codes import Disconnects
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.codec import Codec
from hubbub.dialects.centrifuge.emulation import (
    BadEmulation,
    EmulatedConnection,
    decode_request,
)
from hubbub.dialects.centrifuge.eventids import line_framing, sse_framing
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.dialects.centrifuge.uniwire import CONNECT_PARAM
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.server.emulationdesk import (
    STATUS,
    Desk,
    EmulationRefused,
    binary_framing,
    connect_data,
    connect_text,
    is_protobuf,
)
from hubbub.server.httpedge import (
    answer_preflight,
    read_body,
    readable_refusals,
)
from hubbub.server.httpheads import BINARY_HEADERS, LINE_HEADERS, SSE_HEADERS, cors_headers
from hubbub.server.httpstream import open_stream
from hubbub.server.remote import client_of
from hubbub.server.unidirectional import Handshakes, Served

T = TypeVar("T")


def add_routes(
    app: web.Application,
    settings: Settings,
    node: Node,
    hooks: Hooks,
    admission: Handshakes,
    served: Served,
) -> None:
    """Register the endpoints the settings turn on."""
    if not (settings.http_stream or settings.sse):
        return
    desk = Desk(node)
    sessions = desk.sessions
    allowed = settings.allowed_origins

    async def stream(
        request: web.Request,
        codec: Codec,
        data: str | bytes,
        headers: dict[str, str],
        framing: Callable[[str | bytes], bytes],
        preamble: bytes,
        name: str,
    ) -> web.StreamResponse:
        data = _refusing(connect_data, codec, data)
        headers = {**headers, **cors_headers(request.headers, bool(allowed))}

        def farewell(code: int, reason: str) -> str | bytes:
            return codec.push(m.Disconnected(code, reason))

        with admission.handshake():
            out = await open_stream(
                request, settings, headers, framing, farewell, centrifuge.SLOW, preamble
            )
            conn = EmulatedConnection(out, codec, settings.ping_interval, settings.pong_timeout)
        sessions.add(conn)
        try:
            with served(request, conn, centrifuge.SHUTDOWN):
                conn.feed(data)
                writer = asyncio.get_running_loop().create_task(out.run())
                writer.add_done_callback(lambda _: conn.end())
                try:
                    await centrifuge.run_centrifuge(
                        node,
                        hooks,
                        conn,
                        request.headers,
                        codec,
                        name,
                        conn.session,
                        address=client_of(request),
                    )
                finally:
                    conn.close(Disconnects.SERVER_ERROR.code, Disconnects.SERVER_ERROR.reason)
                    await writer  # (the close is a no-op for a stream closed already)
        finally:
            sessions.discard(conn)
        return out.response

    async def http_stream(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, settings)
        if is_protobuf(request.headers.get("Content-Type", "")):
            return await stream(
                request, PROTOBUF, body, BINARY_HEADERS, binary_framing, b"", "http_stream"
            )
        text = _refusing(connect_text, body)
        return await stream(request, JSON, text, LINE_HEADERS, line_framing, b"", "http_stream")

    async def sse(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            text = _refusing(connect_text, await read_body(request, settings))
        else:
            text = request.query.get(CONNECT_PARAM, "")
        return await stream(request, JSON, text, SSE_HEADERS, sse_framing, b"\r\n", "sse")

    async def emulation(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, settings)
        try:
            emulated = decode_request(body, is_protobuf(request.headers.get("Content-Type", "")))
        except BadEmulation as exc:
            raise web.HTTPBadRequest(text=f"bad emulation request: {exc}\n") from None
        try:
            delivery = await desk.deliver(emulated)
        except EmulationRefused as exc:
            raise _http(exc) from None
        headers = cors_headers(request.headers, bool(allowed))
        status = STATUS[delivery]
        text = None if status == 204 else f"{delivery.value}\n"
        return web.Response(status=status, text=text, headers=headers)

    def preflight(methods: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            return await answer_preflight(request, allowed, methods)

        return answer

    if settings.http_stream:
        app.router.add_post("/connection/http_stream", readable_refusals(http_stream, allowed))
        app.router.add_route("OPTIONS", "/connection/http_stream", preflight("POST, OPTIONS"))
    if settings.sse:
        app.router.add_get("/connection/sse", readable_refusals(sse, allowed), allow_head=False)
        app.router.add_post("/connection/sse", readable_refusals(sse, allowed))
        app.router.add_route("OPTIONS", "/connection/sse", preflight("GET, POST, OPTIONS"))
    app.router.add_post("/emulation", readable_refusals(emulation, allowed))
    app.router.add_route("OPTIONS", "/emulation", preflight("POST, OPTIONS"))


def _http(exc: EmulationRefused) -> web.HTTPException:
    return _STATUS_CLASSES[exc.status](text=exc.text)


_STATUS_CLASSES: Final[dict[int, type[web.HTTPException]]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    503: web.HTTPServiceUnavailable,
}


def _refusing(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, its :class:`EmulationRefused` raised as aiohttp's HTTP error."""
    try:
        return fn(*args)
    except EmulationRefused as exc:
        raise _http(exc) from None
