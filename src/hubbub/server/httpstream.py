"""One streaming HTTP response (``uni_sse``, ``uni_http_stream``) as a
:class:`hubbub.transport.Transport`.

Messages are framed as they are posted (the ``framing`` function: SSE events, lines) and
written in order by :meth:`StreamConnection.run`, which the request handler awaits for the
life of the stream. Guarantees, beside the Transport's:

- :meth:`post` never awaits; when the bytes waiting to be written (framed but unwritten, plus
  the socket's own buffer) pass ``write_buffer_limit`` what waits is dropped and the stream
  is closed with the ``slow`` code.
- :meth:`close` frames a last message for the code and reason (``farewell``: the disconnect
  push), writes it after what was posted before, then ends the response; a peer that does
  not read gets its TCP connection aborted :data:`CLOSE_TIMEOUT` seconds after the close.
- A peer that goes away ends :meth:`run` as soon as its connection is lost when served over
  an :class:`hubbub.server.edge.EdgeProtocol` (else at the next write, a ping at the latest).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.server.edge import EdgeProtocol

log = logging.getLogger(__name__)

#: Seconds a closing stream may take to write its last bytes before it is aborted.
CLOSE_TIMEOUT: Final = 3.0

_ids = itertools.count(1)


class StreamConnection:
    """A prepared streaming response; see the module docstring."""

    __slots__ = (
        "_abort_handle",
        "_closing",
        "_farewell",
        "_framing",
        "_id",
        "_limit",
        "_lost",
        "_pending",
        "_pending_bytes",
        "_request",
        "_response",
        "_slow_code",
        "_wake",
    )

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        settings: Settings,
        framing: Callable[[str | bytes], bytes],
        farewell: Callable[[int, str], str | bytes],
        slow: tuple[int, str],
    ) -> None:
        self._id = f"stream-{next(_ids)}"
        self._request = request
        self._response = response
        self._limit = settings.write_buffer_limit
        self._framing = framing
        self._farewell = farewell
        self._slow_code = slow
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._closing = False
        self._lost = False
        self._wake = asyncio.Event()
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
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._wake.set()
        transport = self._request.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        if self._pending_bytes + buffered > self._limit:
            log.info("%s: closing slow consumer (limit %d bytes)", self._id, self._limit)
            self._pending.clear()
            self._pending_bytes = 0
            self.close(*self._slow_code)

    def close(self, code: int, reason: str) -> None:
        """End the stream with the farewell message for ``code`` (idempotent)."""
        if self._closing or self._lost:
            return
        data = self._framing(self._farewell(code, reason))
        self._pending.append(data)
        self._closing = True
        self._wake.set()
        self._abort_handle = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)

    def on_lost(self) -> None:
        """The peer's connection is gone."""
        self._lost = True
        self._wake.set()

    def abort(self) -> None:
        """Drop the TCP connection now."""
        self._lost = True
        self._wake.set()
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def run(self) -> None:
        """Write what is posted until the stream is closed or lost; returns when it ended."""
        response = self._response
        wake = self._wake
        try:
            while not self._lost:
                await wake.wait()
                wake.clear()
                if self._pending and not self._lost:
                    data = b"".join(self._pending)
                    self._pending.clear()
                    self._pending_bytes = 0
                    await response.write(data)
                if self._closing and not self._pending:
                    if not self._lost:
                        await response.write_eof()
                    break
        except (ConnectionError, RuntimeError) as exc:  # aiohttp: "closing transport"
            log.debug("%s: %s", self._id, exc)
            self._lost = True
        finally:
            if self._abort_handle is not None:
                self._abort_handle.cancel()
                self._abort_handle = None
            if self._lost:
                transport = self._request.transport
                if transport is not None:
                    transport.abort()

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
    await response.prepare(request)
    if preamble:
        await response.write(preamble)
    conn = StreamConnection(request, response, settings, framing, farewell, slow)
    protocol = request.protocol
    if isinstance(protocol, EdgeProtocol):
        protocol.on_lost(conn.on_lost)
    return conn
