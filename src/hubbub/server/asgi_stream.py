"""The HTTP streams over ASGI: ``/connection/uni_sse``, ``/connection/uni_http_stream`` (the
unidirectional protocol), ``/connection/http_stream``, ``/connection/sse`` and ``/emulation``
(the bidirectional emulation), answering as hubbub's own edge does
(:mod:`hubbub.server.unidirectional`, :mod:`hubbub.server.emulation` say what): each on
unless its setting is off (404), ``Origin`` against ``allowed_origins`` (403), CORS for
allowed origins (their refusals and ``OPTIONS`` preflights too), bodies over
``max_message_size`` 413 and not all there within ``handshake_timeout`` 408, a connect that
cannot be read 400, the connection limit 503.

:class:`ASGIStream` is one streaming response as a :class:`hubbub.transport.Transport`:
:meth:`~ASGIStream.post` never awaits (messages are framed, queued, and one writer task per
stream hands what is queued to ``send`` as one body chunk, in order); queued bytes (and the
chunk ``send`` has not taken yet: the server's backpressure) past ``write_buffer_limit``
drop the queue and close the stream with the ``slow`` code; :meth:`~ASGIStream.close` queues
the farewell (the disconnect push) after what was posted, then ends the body; a peer that
goes away (``http.disconnect``) ends the stream at once. The ASGI server does the chunking.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from hubbub.config import Settings
from hubbub.core import messages as m
from hubbub.core.codes import Disconnects
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.codec import Codec
from hubbub.dialects.centrifuge.emulation import BadEmulation, EmulatedConnection, decode_request
from hubbub.dialects.centrifuge.eventids import (
    SseFraming,
    line_framing,
    parse_event_id,
    sse_framing,
)
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.dialects.centrifuge.unidirectional import run_unidirectional, with_recovery
from hubbub.dialects.centrifuge.uniwire import (
    CONNECT_PARAM,
    BadConnect,
    connect_frame,
    disconnect_push,
)
from hubbub.server.admission import Admission, AdmissionRefused, origin_refusal
from hubbub.server.asgi_http import (
    BodyRefused,
    Headers,
    Receive,
    Scope,
    Send,
    client_address,
    headers_of,
    query_param,
    read_body,
    respond,
)
from hubbub.server.emulationdesk import (
    STATUS,
    Desk,
    EmulationRefused,
    binary_framing,
    connect_data,
    connect_text,
    is_protobuf,
)
from hubbub.server.httpheads import BINARY_HEADERS, LINE_HEADERS, SSE_HEADERS, cors_headers
from hubbub.server.lifecycle import NodeRun

log = logging.getLogger(__name__)

#: Seconds a closing stream may take to hand its last bytes to the server.
CLOSE_TIMEOUT: Final = 3.0
#: The paths served here, with the methods each takes (beside ``OPTIONS``).
PATHS: Final = {
    "/connection/uni_sse": ("GET", "POST"),
    "/connection/uni_http_stream": ("POST",),
    "/connection/http_stream": ("POST",),
    "/connection/sse": ("GET", "POST"),
    "/emulation": ("POST",),
}

_ids = itertools.count(1)


class ASGIStream:
    """A started streaming response; see the module docstring."""

    __slots__ = (
        "_closing",
        "_ended",
        "_farewell",
        "_framing",
        "_limit",
        "_lost",
        "_pending",
        "_queue",
        "_send",
        "_slow",
        "_wakeup",
        "_writer",
        "closed_with",
        "id",
    )

    def __init__(
        self,
        send: Send,
        settings: Settings,
        framing: Callable[[str | bytes], bytes],
        farewell: Callable[[int, str], str | bytes],
        slow: tuple[int, str],
    ) -> None:
        self.id = f"asgi-stream-{next(_ids)}"
        self._send = send
        self._limit = settings.write_buffer_limit
        self._framing = framing
        self._farewell = farewell
        self._slow = slow
        self._queue: deque[bytes] = deque()
        self._pending = 0  # bytes queued or handed to send() that has not returned
        self._closing = False
        self._lost = False
        #: The code and reason this side closed with (None: it did not, or the peer left).
        self.closed_with: tuple[int, str] | None = None
        self._ended = asyncio.Event()  # closing or lost
        self._wakeup = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write())

    @property
    def closing(self) -> bool:
        return self._closing or self._lost

    def post(self, message: str | bytes) -> None:
        """Queue a message without waiting; see :class:`hubbub.transport.Transport`."""
        if self._closing or self._lost:
            return
        data = self._framing(message)
        self._queue.append(data)
        self._pending += len(data)
        if self._pending > self._limit:
            log.info("%s: closing slow consumer (limit %d bytes)", self.id, self._limit)
            self._queue.clear()
            self.close(*self._slow)
            return
        self._wakeup.set()

    def close(self, code: int, reason: str) -> None:
        """End the stream with the farewell message for ``code`` (idempotent)."""
        if self._closing or self._lost:
            return
        self.closed_with = (code, reason)
        self._queue.append(self._framing(self._farewell(code, reason)))
        self._closing = True
        self._ended.set()
        self._wakeup.set()

    def on_lost(self) -> None:
        """The peer is gone."""
        self._lost = True
        self._queue.clear()
        self._pending = 0
        self._ended.set()
        self._wakeup.set()

    async def _write(self) -> None:
        try:
            while not self._lost:
                if self._queue:
                    data = b"".join(self._queue)
                    self._queue.clear()
                    await self._send(
                        {"type": "http.response.body", "body": data, "more_body": True}
                    )
                    self._pending = max(0, self._pending - len(data))
                    continue
                if self._closing:
                    await self._send({"type": "http.response.body", "body": b""})
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
        except (OSError, RuntimeError):  # the server's "disconnected" errors
            self.on_lost()

    async def run(self, receive: Receive) -> None:
        """Watch for the peer's going (``receive``) until the stream is closed (its last
        bytes handed to the server, at most :data:`CLOSE_TIMEOUT` after) or lost."""
        watcher = asyncio.get_running_loop().create_task(self._watch(receive))
        try:
            await self._ended.wait()
            if not self._lost:
                await asyncio.wait((self._writer,), timeout=CLOSE_TIMEOUT)
        finally:
            watcher.cancel()
            await asyncio.wait((watcher,))  # (the caller's own cancellation propagates)
            if not watcher.cancelled():
                watcher.result()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.on_lost()

    def release(self) -> None:
        """The handler is done with the stream: its writer is stopped."""
        self._queue.clear()
        self._pending = 0
        if not self._writer.done():
            self._writer.cancel()

    async def finished(self) -> None:
        """Wait for the writer to end after :meth:`release`; a cancellation of the caller
        is the caller's (it propagates)."""
        await asyncio.wait((self._writer,))
        if not self._writer.cancelled():
            self._writer.result()


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


def enabled(settings: Settings, path: str) -> bool:
    """Whether the settings turn the stream endpoint ``path`` on."""
    if path == "/emulation":
        return settings.http_stream or settings.sse
    name = path.rsplit("/", 1)[1]
    return bool(getattr(settings, name))


async def serve_stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    run: NodeRun,
    admission: Admission,
    desk: Desk | None,
    path: str,
) -> None:
    """Answer a request for one of :data:`PATHS` (see the module docstring)."""
    settings = run.settings
    method = scope.get("method", "GET")
    if not enabled(settings, path):
        await respond(send, 404, "not found\n")
        return
    headers = headers_of(scope)
    allowed = settings.allowed_origins
    refusal = origin_refusal(headers.getall("origin", ()), allowed)
    if refusal is not None:
        await respond(send, 403, refusal)
        return
    cors = cors_headers(headers, bool(allowed))
    methods = PATHS[path]
    if method == "OPTIONS":
        preflight = {
            "Access-Control-Max-Age": "300",
            "Access-Control-Allow-Methods": ", ".join((*methods, "OPTIONS")),
            **cors,
        }
        await respond(send, 204, b"", headers=preflight)
        return
    if method not in methods:
        allow = {"Allow": ", ".join(methods), **cors}
        await respond(send, 405, "method not allowed\n", headers=allow)
        return
    try:
        if path == "/emulation":
            assert desk is not None
            await _emulation(receive, send, settings, headers, desk, cors)
            return
        body = b""
        if method == "POST":
            body = await read_body(
                receive, headers, settings.max_message_size, settings.handshake_timeout
            )
        stream = _Stream(scope, receive, send, run, admission, headers, cors)
        if path.endswith("/uni_sse") or path.endswith("/uni_http_stream"):
            await stream.unidirectional(path, body)
        else:
            assert desk is not None
            await stream.emulated(path, body, desk)
    except (BodyRefused, EmulationRefused, _Refused) as exc:
        await respond(send, exc.status, exc.text if exc.text.endswith("\n") else exc.text + "\n",
                      headers=cors)  # fmt: skip


async def _emulation(
    receive: Receive,
    send: Send,
    settings: Settings,
    headers: Headers,
    desk: Desk,
    cors: dict[str, str],
) -> None:
    body = await read_body(receive, headers, settings.max_message_size, settings.handshake_timeout)
    try:
        emulated = decode_request(body, is_protobuf(headers.get("content-type", "")))
    except BadEmulation as exc:
        raise _Refused(400, f"bad emulation request: {exc}") from None
    delivery = await desk.deliver(emulated)
    status = STATUS[delivery]
    await respond(send, status, b"" if status == 204 else f"{delivery.value}\n", headers=cors)


class _Stream:
    """One stream request being served."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        run: NodeRun,
        admission: Admission,
        headers: Headers,
        cors: dict[str, str],
    ) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.run, self.admission, self.headers, self.cors = run, admission, headers, cors
        #: The client's address, as the ASGI server gives it (it reads proxy headers).
        self.address = client_address(scope) or ""

    async def open(
        self,
        content: dict[str, str],
        framing: Callable[[str | bytes], bytes],
        farewell: Callable[[int, str], str | bytes],
        preamble: bytes,
    ) -> ASGIStream:
        """Start the response (counted by the connection limit until it is attached)."""
        try:
            self.admission.enter()
        except AdmissionRefused as exc:
            raise _Refused(503, exc.text) from None
        try:
            raw = [(k.lower().encode(), v.encode()) for k, v in {**content, **self.cors}.items()]
            await self.send({"type": "http.response.start", "status": 200, "headers": raw})
            if preamble:
                body = {"type": "http.response.body", "body": preamble, "more_body": True}
                await self.send(body)
            return ASGIStream(self.send, self.run.settings, framing, farewell, centrifuge.SLOW)
        finally:
            self.admission.leave()

    async def unidirectional(self, path: str, body: bytes) -> None:
        text: str | bytes = body
        if self.scope.get("method") == "GET":
            text = query_param(self.scope, CONNECT_PARAM) or ""
        try:
            frame = connect_frame(text)
        except BadConnect as exc:
            raise _Refused(400, str(exc)) from None
        if path.endswith("/uni_sse"):
            positions = parse_event_id(self.headers.get("last-event-id", ""))
            frame = with_recovery(frame, positions)
            conn = await self.open(SSE_HEADERS, SseFraming(), disconnect_push, b"\r\n")
            name = "uni_sse"
        else:
            conn = await self.open(LINE_HEADERS, line_framing, disconnect_push, b"")
            name = "uni_http_stream"
        node, hooks = self.run.node, self.run.hooks

        async def ended() -> None:
            await conn.run(self.receive)

        with self._served(conn):
            await run_unidirectional(
                node, hooks, conn, self.headers, frame, ended, name, self.address
            )
        await conn.finished()

    async def emulated(self, path: str, body: bytes, desk: Desk) -> None:
        codec: Codec = JSON
        data: str | bytes
        if path.endswith("/http_stream"):
            if is_protobuf(self.headers.get("content-type", "")):
                codec, data, content, framing = PROTOBUF, body, BINARY_HEADERS, binary_framing
            else:
                data, content, framing = connect_text(body), LINE_HEADERS, line_framing
            preamble, name = b"", "http_stream"
        else:
            if self.scope.get("method") == "GET":
                data = query_param(self.scope, CONNECT_PARAM) or ""
            else:
                data = connect_text(body)
            content, framing, preamble, name = SSE_HEADERS, sse_framing, b"\r\n", "sse"
        data = connect_data(codec, data)

        def farewell(code: int, reason: str) -> str | bytes:
            return codec.push(m.Disconnected(code, reason))

        out = await self.open(content, framing, farewell, preamble)
        settings = self.run.settings
        conn = EmulatedConnection(out, codec, settings.ping_interval, settings.pong_timeout)
        desk.sessions.add(conn)
        try:
            with self._served(conn):
                conn.feed(data)
                writer = asyncio.get_running_loop().create_task(out.run(self.receive))
                writer.add_done_callback(lambda _: conn.end())
                try:
                    await centrifuge.run_centrifuge(
                        self.run.node,
                        self.run.hooks,
                        conn,
                        self.headers,
                        codec,
                        name,
                        conn.session,
                        address=self.address,
                    )
                finally:
                    conn.close(Disconnects.SERVER_ERROR.code, Disconnects.SERVER_ERROR.reason)
                    await writer
        finally:
            desk.sessions.discard(conn)
        await out.finished()

    @contextlib.contextmanager
    def _served(self, conn: ASGIStream | EmulatedConnection) -> Iterator[None]:
        run = self.run
        task = asyncio.current_task()
        assert task is not None
        run.node.attach(conn, centrifuge.SHUTDOWN)
        run.handlers.add(task)
        try:
            yield
        finally:
            run.handlers.discard(task)
            run.node.detach(conn)
            conn.release()
