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
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from aiohttp import web

from hubbub.config import Settings
from hubbub.core import messages as m
from hubbub.core.codes import Disconnects
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.codec import Codec, ProtocolViolation
from hubbub.dialects.centrifuge.emulation import (
    OP,
    BadEmulation,
    Delivery,
    EmulatedConnection,
    EmulationRequest,
    Sessions,
    decode_request,
    survey_params,
)
from hubbub.dialects.centrifuge.eventids import line_framing, sse_framing
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.dialects.centrifuge.uniwire import CONNECT_PARAM
from hubbub.errors import ClientError, StoreError
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.server.httpedge import (
    BINARY_HEADERS,
    LINE_HEADERS,
    SSE_HEADERS,
    answer_preflight,
    cors_headers,
    read_body,
    readable_refusals,
)
from hubbub.server.httpstream import open_stream
from hubbub.server.unidirectional import Handshakes, Served
from hubbub.survey import SurveyTimeout

#: The request's ``Content-Type`` that means Protobuf (Centrifugo's test: the header as
#: sent, so that a body without one is JSON; aiohttp's ``content_type`` would say
#: ``application/octet-stream`` then).
PROTOBUF_TYPE: Final = "application/octet-stream"


def _protobuf(request: web.Request) -> bool:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower() == PROTOBUF_TYPE


#: Seconds a list of the cluster's nodes is trusted before an unknown uid re-reads it.
NODES_TTL: Final = 1.0
#: HTTP status of each delivery.
STATUS: Final = {
    Delivery.DELIVERED: 204,
    Delivery.UNKNOWN: 404,
    Delivery.BUSY: 429,
    Delivery.BAD: 400,
}


def _binary(message: str | bytes) -> bytes:
    """Protobuf replies as they are: each one is length-delimited already."""
    return message if isinstance(message, bytes) else message.encode()


def _connect(codec: Codec, data: str | bytes) -> str | bytes:
    """``data`` when it is a frame of ``codec`` starting with a connect command; else 400."""
    if not data:
        raise web.HTTPBadRequest(text="no connect command\n")
    try:
        frames = codec.decode(data)
    except ProtocolViolation as exc:
        raise web.HTTPBadRequest(text=f"bad connect command: {exc}\n") from None
    if not frames or not isinstance(frames[0].request, m.Connect):
        raise web.HTTPBadRequest(text="the first command must be a connect\n")
    return data


class Cluster(Protocol):
    async def cluster(self) -> list[dict[str, Any]]: ...


class Nodes:
    """The uids of the cluster's live nodes, read again once :data:`NODES_TTL` has passed
    since the last read, by the first request that comes then: a request naming a made-up
    node costs no engine round trip more than once a second, a node that died (whose
    announcement expired) is unknown a second after it left the cluster's list, and requests
    arriving during a read wait for it (none is answered "unknown node" for a node that is
    known, e.g. the first ones a new node gets)."""

    __slots__ = ("_cluster", "_read_at", "_reading", "_uids")

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._uids: frozenset[str] = frozenset()
        self._read_at = -NODES_TTL
        self._reading: asyncio.Task[None] | None = None

    async def known(self, uid: str) -> bool:
        """Whether ``uid`` is a live node's. StoreError when the list cannot be read."""
        if self._reading is None and time.monotonic() - self._read_at >= NODES_TTL:
            self._read_at = time.monotonic()
            self._reading = asyncio.get_running_loop().create_task(self._read())
            self._reading.add_done_callback(_retrieved)
        if self._reading is not None:
            await asyncio.shield(self._reading)
        return uid in self._uids

    async def _read(self) -> None:
        try:
            self._uids = frozenset(str(n.get("uid")) for n in await self._cluster.cluster())
        finally:
            self._reading = None


def _retrieved(task: asyncio.Task[None]) -> None:
    """Its exception is seen (each waiter raised it), even when no one waited."""
    if not task.cancelled():
        task.exception()


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
    sessions = Sessions()
    node.surveys.register(OP, sessions.answer)
    nodes = Nodes(node)
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
        data = _connect(codec, data)
        headers = {**headers, **cors_headers(request, bool(allowed))}

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
                        node, hooks, conn, request.headers, codec, name, conn.session
                    )
                finally:
                    conn.close(Disconnects.SERVER_ERROR.code, Disconnects.SERVER_ERROR.reason)
                    await writer  # (the close is a no-op for a stream closed already)
        finally:
            sessions.discard(conn)
        return out.response

    async def http_stream(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, settings)
        if _protobuf(request):
            return await stream(
                request, PROTOBUF, body, BINARY_HEADERS, _binary, b"", "http_stream"
            )
        text = _text(body)
        return await stream(request, JSON, text, LINE_HEADERS, line_framing, b"", "http_stream")

    async def sse(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            text = _text(await read_body(request, settings))
        else:
            text = request.query.get(CONNECT_PARAM, "")
        return await stream(request, JSON, text, SSE_HEADERS, sse_framing, b"\r\n", "sse")

    async def emulation(request: web.Request) -> web.StreamResponse:
        body = await read_body(request, settings)
        try:
            emulated = decode_request(body, _protobuf(request))
        except BadEmulation as exc:
            raise web.HTTPBadRequest(text=f"bad emulation request: {exc}\n") from None
        delivery = await deliver(emulated)
        headers = cors_headers(request, bool(allowed))
        status = STATUS[delivery]
        text = None if status == 204 else f"{delivery.value}\n"
        return web.Response(status=status, text=text, headers=headers)

    async def deliver(emulated: EmulationRequest) -> Delivery:
        """Hand the commands to their session, here or on its node."""
        if not emulated.node or emulated.node == node.uid:
            return sessions.deliver(emulated.session, emulated.data)
        try:
            if not await nodes.known(emulated.node):
                raise web.HTTPNotFound(text="unknown node\n")
            answer = await node.surveys.ask_node(OP, survey_params(emulated), emulated.node)
        except (SurveyTimeout, StoreError, ClientError) as exc:
            raise web.HTTPServiceUnavailable(
                text=f"the session's node cannot be reached: {exc}\n"
            ) from None
        try:
            return Delivery(answer)
        except ValueError:
            raise web.HTTPServiceUnavailable(text="the session's node gave no answer\n") from None

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


def _text(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the connect command is not UTF-8\n") from None
