"""One streaming HTTP response (``uni_sse``, ``uni_http_stream``) as a
:class:`hubbub.transport.Transport`.

Messages are framed as they are posted (the ``framing`` function: SSE events, lines) and
written at the end of the loop turn by one callback for every stream of the loop
(a :class:`hubbub.server.sending.Flusher` of this module's own), as WebSockets are: no task
switch per stream and message. A stream's messages of one turn become one write; over HTTP/1.1
(chunked transfer coding) one chunk, built here (``<size in hex>CRLF<data>CRLF``) once per turn
for equal contents, so a publication framed the same for many streams is chunked once. Over
HTTP/1.0 the bytes go as they are (the end of the connection ends the body). With
``write_delay`` > 0 a stream's output is held up to that long, as a WebSocket's is
(:class:`hubbub.server.sending.DelayedFlusher`), and the turns' messages share the chunk.
:meth:`StreamConnection.run`, which the request handler awaits for the life of the stream,
only ends it. Guarantees, beside the Transport's:

- :meth:`post` never awaits; messages are written in the order they were posted. When the
  bytes waiting to be written (framed but unwritten, plus the socket's own buffer) pass
  ``write_buffer_limit`` what waits is dropped and the stream is closed with the ``slow``
  code; unless the socket's buffer is empty (the peer keeps up: what waits is a burst, or
  held by ``write_delay``): then it is written at once, and only a buffer then over the
  limit closes the stream. Served over an :class:`hubbub.server.edge.EdgeProtocol`, posted
  messages wait in the connection while the transport's buffer is over its high-water mark,
  so the farewell of a slow stream queues behind at most that mark (plus a turn's writes).
- :meth:`close` frames a last message for the code and reason (``farewell``: the disconnect
  push), writes it after what was posted before, then ends the response; a peer that does
  not read gets its TCP connection aborted :data:`CLOSE_TIMEOUT` seconds after the close.
- A peer that goes away ends :meth:`run` as soon as its connection is lost when served over
  an :class:`hubbub.server.edge.EdgeProtocol` (else at the next write, a ping at the latest).
- :meth:`release` leaves the connection in no reference cycle with aiohttp's protocol.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Callable
from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.server.edge import EdgeProtocol
from hubbub.server.sending import Flusher

log = logging.getLogger(__name__)

#: Seconds a closing stream may take to write its last bytes before it is aborted.
CLOSE_TIMEOUT: Final = 3.0

_ids = itertools.count(1)

# The streams' own flushers (one per loop): their frame caches hold chunks, not WebSocket
# frames, for the same contents.
_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher_for(loop: asyncio.AbstractEventLoop) -> Flusher:
    """The streams' flusher of ``loop`` (made at first use; /metrics reads its ``slow_closes``)."""
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = Flusher(loop)
    return flusher


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of the chunked transfer coding (RFC 9112 §7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class StreamConnection:
    """A prepared streaming response; see the module docstring."""

    __slots__ = (
        "_abort_handle",
        "_chunked",
        "_closing",
        "_ended",
        "_farewell",
        "_flow",
        "_flusher",
        "_framing",
        "_id",
        "_limit",
        "_lost",
        "_pending",
        "_pending_bytes",
        "_request",
        "_response",
        "_room",
        "_slow_code",
        "_transport",
        "closed_with",
    )

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        settings: Settings,
        framing: Callable[[str | bytes], bytes],
        farewell: Callable[[int, str], str | bytes],
        slow: tuple[int, str],
        *,
        chunked: bool = True,
        flow: EdgeProtocol | None = None,
    ) -> None:
        """``chunked``: the response uses the chunked transfer coding; ``flow``: the protocol
        whose ``writing_paused`` holds posted messages back (whoever passes it calls
        :meth:`on_writable` when writing resumes)."""
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost before the stream started")
        self._id = f"stream-{next(_ids)}"
        self._request = request
        self._response = response
        self._transport: asyncio.Transport = transport
        self._chunked = chunked
        self._flow = flow
        self._flusher = flusher_for(asyncio.get_running_loop()).delayed(settings.write_delay)
        self._limit = settings.write_buffer_limit
        self._framing = framing
        self._farewell = farewell
        self._slow_code = slow
        self._pending: list[bytes] = []  # framed, not yet written
        self._pending_bytes = 0
        # Bytes that may wait before the limit is checked against the socket's buffer: the
        # limit less that buffer when it was last written to (it only shrinks in between).
        self._room = self._limit - transport.get_write_buffer_size()
        self._closing = False
        #: The code and reason this side closed with (None: it did not, or the peer left).
        self.closed_with: tuple[int, str] | None = None
        self._lost = False
        self._ended = asyncio.Event()  # closing or lost: run() has something to do
        self._abort_handle: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self._id

    @property
    def response(self) -> web.StreamResponse:
        """The aiohttp response, to return from the request handler."""
        return self._response

    @property
    def closing(self) -> bool:
        return self._closing or self._lost

    def post(self, message: str | bytes) -> None:
        """Queue a message without waiting; see :class:`hubbub.transport.Transport`."""
        if self._closing or self._lost:
            return
        data = self._framing(message)
        pending = self._pending
        if not pending:
            flusher = self._flusher
            flusher.dirty.append(self)
            if not flusher.scheduled:
                flusher.schedule()
        pending.append(data)
        self._pending_bytes += len(data)
        if (
            self._pending_bytes > self._room
            and self._pending_bytes + self._transport.get_write_buffer_size() > self._limit
        ):
            if not self._transport.get_write_buffer_size():
                # Over the limit with the socket keeping up (it took all that was written):
                # what waits is the server's own (a group commit's batch, or what
                # write_delay held), not a slow peer's. Out now; only what the transport
                # then cannot take makes the peer slow.
                self.flush()
                if self._transport.get_write_buffer_size() <= self._limit:
                    return
            log.info("%s: closing slow consumer (limit %d bytes)", self._id, self._limit)
            pending.clear()
            self._pending_bytes = 0
            self._flusher.slow_closes += 1
            self.close(*self._slow_code)

    def flush(self, frames: dict[object, bytes] | None = None) -> None:
        """Write what was posted (the flusher calls this at the end of the loop turn).
        ``frames``: chunks already built this turn, by content; new ones are added."""
        pending = self._pending
        if not pending:
            return
        if self._lost:
            pending.clear()
            self._pending_bytes = 0
            return
        flow = self._flow
        if flow is not None and flow.writing_paused and not self._closing:
            return  # held back until on_writable(); a slow close drops them unsent
        transport = self._transport
        if transport.is_closing():  # the peer went away (unnoticed without EdgeProtocol)
            self.on_lost()
            return
        if not self._chunked:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
        else:
            key: object = pending[0] if len(pending) == 1 else tuple(pending)
            cached = None if frames is None else frames.get(key)
            if cached is None:
                cached = chunk(pending[0] if len(pending) == 1 else b"".join(pending))
                if frames is not None:
                    frames[key] = cached
            data = cached
        pending.clear()  # the list is reused: one allocation less per stream and turn
        self._pending_bytes = 0
        transport.write(data)
        self._room = self._limit - transport.get_write_buffer_size()

    def on_writable(self) -> None:
        """The transport's buffer drained below its low-water mark: what was held back is
        written at the end of the turn (not after another ``write_delay``)."""
        if self._pending and not (self._closing or self._lost):
            flusher = self._flusher.immediate
            flusher.dirty.append(self)
            if not flusher.scheduled:
                flusher.schedule()

    def close(self, code: int, reason: str) -> None:
        """End the stream with the farewell message for ``code`` (idempotent)."""
        if self._closing or self._lost:
            return
        self.closed_with = (code, reason)
        data = self._framing(self._farewell(code, reason))
        self._pending.append(data)
        self._closing = True
        self.flush()  # what was posted before, then the farewell; run() ends the response
        self._ended.set()
        self._abort_handle = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)

    def on_lost(self) -> None:
        """The peer's connection is gone."""
        self._lost = True
        self._pending.clear()
        self._pending_bytes = 0
        self._ended.set()

    def abort(self) -> None:
        """Drop the TCP connection now."""
        self.on_lost()
        self._transport.abort()

    async def run(self) -> None:
        """Wait until the stream is closed (then end the response) or lost; returns when it
        ended."""
        try:
            await self._ended.wait()
            if not self._lost:
                await self._response.write_eof()  # the last chunk, once the rest is out
        except (ConnectionError, RuntimeError) as exc:  # aiohttp: "closing transport"
            log.debug("%s: %s", self._id, exc)
            self._lost = True
        finally:
            if self._abort_handle is not None:
                self._abort_handle.cancel()
                self._abort_handle = None
            if self._lost:
                self._transport.abort()

    def release(self) -> None:
        """The handler is done with the stream."""
        self._pending.clear()
        self._pending_bytes = 0
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        protocol = self._request.protocol
        if isinstance(protocol, EdgeProtocol):
            protocol.on_lost(None)
            protocol.bind(None)
        self._flow = None


async def open_stream(
    request: web.Request,
    settings: Settings,
    headers: dict[str, str],
    framing: Callable[[str | bytes], bytes],
    farewell: Callable[[int, str], str | bytes],
    slow: tuple[int, str],
    preamble: bytes = b"",
) -> StreamConnection:
    """Send the response's status and ``headers`` (and ``preamble``) and wrap the response."""
    response = web.StreamResponse(status=200, headers=headers)
    writer = await response.prepare(request)
    if preamble:
        await response.write(preamble)
    # aiohttp chunks a response without Content-Length to an HTTP/1.1 request (its writer
    # says so); to HTTP/1.0 it sends the body as it is and closes the connection after it.
    chunked = bool(getattr(writer, "chunked", False))
    protocol = request.protocol
    if not isinstance(protocol, EdgeProtocol):
        return StreamConnection(request, response, settings, framing, farewell, slow,
                                chunked=chunked)  # fmt: skip
    conn = StreamConnection(request, response, settings, framing, farewell, slow,
                            chunked=chunked, flow=protocol)  # fmt: skip
    protocol.on_lost(conn.on_lost)
    protocol.bind(conn)
    return conn
