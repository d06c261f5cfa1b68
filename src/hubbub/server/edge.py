"""The HTTP edge below the routes: what aiohttp's server leaves unbounded, bounded here.

:class:`EdgeRunner` is an ``AppRunner`` whose connections are :class:`EdgeProtocol` (aiohttp's
``RequestHandler`` plus the following). Guarantees:

- A connection's first request must have its request line and headers complete within
  ``handshake_timeout`` seconds of the connection, else the connection is closed: a silent
  socket and one that trickles its headers byte by byte (slowloris) both end there. Later
  requests on a keep-alive connection are bounded by ``keepalive_timeout`` the same way
  (aiohttp closes a connection whose next request is not complete by then).
- The first request's request line and headers may take ``max_handshake_header_bytes``; the
  bytes are counted as they arrive, so a bigger head is answered with HTTP 431 before aiohttp
  has buffered more than that, then the connection is closed. (Later requests are checked after
  parsing, by the application's middleware.)
- A request aiohttp's parser refuses (a line over 8190 bytes, more than 128 headers, garbage)
  gets 431, 414 or 400 and at most one log line, never an ERROR with a traceback.
- A frame a WebSocket client sends without the mask bit fails the connection with 1002
  (RFC 6455 §5.1) at its place in the stream: aiohttp's reader accepts such frames, so
  :class:`MaskCheck` reads the frame headers in front of it and, in place of the bad frame,
  hands it a frame with a reserved opcode, which aiohttp fails the connection for (messages
  before it are delivered first; nothing after it is read).
- A streaming response can ask to hear when its connection is lost (:meth:`EdgeProtocol.on_lost`).
- The connection's :class:`EdgeEvents` hears when the transport's write buffer drains below
  its low-water mark (``on_writable``), so a WebSocket can hold messages back while it is full.
- Once a connection is a WebSocket, aiohttp's HTTP parser and request queue are released (see
  :meth:`EdgeProtocol.set_parser`).
- Every connection counts in the process's :class:`hubbub.server.listener.SocketBudget`.

:class:`EdgeSite` is the runner's TCP site: it listens with a
:class:`hubbub.server.listener.Acceptor` (budget, back-off on accept errors), with TLS when
given a context (:mod:`hubbub.server.tls`): the TLS handshake is bounded by
``handshake_timeout`` too, then the first request's own deadline starts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_websocket import WebSocketReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from hubbub.config import Settings
from hubbub.server.access import AccessLog, access_logger
from hubbub.server.listener import Acceptor, Release, SocketBudget, bind

log = logging.getLogger(__name__)

#: What aiohttp's parser says when a request has more than ``max_headers`` headers.
_TOO_MANY_HEADERS = "Too many headers"
#: What an upgraded connection has as aiohttp's queue of parsed requests: one shared deque
#: that holds nothing (``maxlen=0`` drops whatever would be appended), in place of an empty
#: deque of its own (a deque allocates a block of 64 slots, ~760 bytes, even when empty).
NO_MESSAGES: Final[deque[Any]] = deque(maxlen=0)
#: A complete frame with the reserved opcode 0x3, which every reader must fail on (1002).
RESERVED_OPCODE_FRAME: Final = b"\x83\x80\x00\x00\x00\x00"


class EdgeEvents(Protocol):
    """What a connection served over an :class:`EdgeProtocol` hears from it."""

    def on_writable(self) -> None:
        """The transport's write buffer drained below its low-water mark."""


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    handshake_timeout: float
    max_header_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> EdgeLimits:
        return cls(settings.handshake_timeout, settings.max_handshake_header_bytes)


def plain_response(status: int, text: str) -> bytes:
    """A complete HTTP/1.1 response with a text body, closing the connection."""
    body = text.encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeadWatch:
    """Follows the bytes of a connection's first request until its head (request line and
    headers, up to the blank line) is complete. Empty lines before the request line count as
    bytes but cannot end the head."""

    __slots__ = ("begin", "line", "seen", "tail")

    def __init__(self) -> None:
        self.seen = 0  # bytes received
        self.begin = -1  # offset of the request line, once a byte of it arrived
        self.line = -1  # length of the request line, once its end arrived
        self.tail = b""  # the last bytes of the previous read (a terminator may be split)

    def feed(self, data: bytes) -> int:
        """The size of the head once it is complete, else -1."""
        view = self.tail + data
        base = self.seen - len(self.tail)  # offset of view[0] in the stream
        self.seen += len(data)
        start = 0
        if self.begin < 0:
            start = len(view) - len(view.lstrip(b"\r\n"))
            if start == len(view):
                self.tail = b""
                return -1
            self.begin = base + start
        if self.line < 0:
            newline = view.find(b"\n", start)
            if newline >= 0:
                self.line = base + newline - self.begin
        end = view.find(b"\r\n\r\n", start)
        if end >= 0:
            return base + end + 4
        self.tail = view[-3:]
        return -1


class MaskCheck:
    """Stands in front of aiohttp's WebSocket reader and stops at the first client frame
    without the mask bit: the bytes before it and then :data:`RESERVED_OPCODE_FRAME` are fed
    to the reader, ``on_unmasked`` is called, nothing after it is read. Only frame headers are
    looked at (payloads are skipped by count), and the reader never gets the first byte of a
    header without the second (the one with the mask bit): it waits here for it."""

    __slots__ = ("_carry", "_failed", "_on_unmasked", "_reader", "_skip")

    def __init__(self, reader: WebSocketReader, on_unmasked: Callable[[], None]) -> None:
        self._reader = reader
        self._on_unmasked = on_unmasked
        self._skip = 0  # payload bytes of the current frame still to come
        self._carry = b""  # the start of a frame header, not fed yet
        self._failed = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        if not self._skip and not self._carry and len(data) >= 2:
            # The usual read: exactly one whole masked frame of under 126 bytes (a command):
            # nothing to carry or skip, so no scan.
            second = data[1]
            size = second & 0x7F
            if second & 0x80 and size < 126 and len(data) == 6 + size:
                return self._reader.feed_data(data)
        if self._carry:
            data, self._carry = self._carry + data, b""
        end, unmasked = self._scan(data)
        if unmasked:
            self._failed = True
            self._on_unmasked()
            self._reader.feed_data(data[:end] + RESERVED_OPCODE_FRAME)
            return True, b""
        if end < len(data):
            data, self._carry = data[:end], data[end:]
            if not data:
                return False, b""
        return self._reader.feed_data(data)

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def _scan(self, data: bytes) -> tuple[int, bool]:
        """Where the first unmasked frame header starts in ``data`` (and True), else where an
        incomplete header at the end starts, or ``len(data)`` (and False)."""
        pos = self._skip
        end = len(data)
        while pos < end:
            if end - pos < 2:
                break
            second = data[pos + 1]
            if not second & 0x80:
                return pos, True
            size = second & 0x7F
            if size < 126:
                pos += 6 + size  # 2 bytes of header, 4 of mask
            elif size == 126:
                if end - pos < 4:
                    break
                pos += 8 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            else:
                if end - pos < 10:
                    break
                pos += 14 + int.from_bytes(data[pos + 2 : pos + 10], "big")
        if pos >= end:
            self._skip = pos - end
            return end, False
        self._skip = 0
        return pos, False


class EdgeProtocol(RequestHandler):
    """aiohttp's ``RequestHandler`` with the guarantees of the module docstring."""

    __slots__ = (
        "_deadline",
        "_edge_loop",
        "_events",
        "_head",
        "_limits",
        "_lost",
        "_refused",
        "_release",
        "_request_line",
    )

    def __init__(
        self,
        manager: web.Server,
        *,
        loop: asyncio.AbstractEventLoop,
        limits: EdgeLimits,
        release: Release | None = None,
        **kwargs: Any,
    ) -> None:
        """``release``: called when the connection is lost (its place in a socket budget)."""
        super().__init__(manager, loop=loop, **kwargs)
        self._edge_loop = loop
        self._limits = limits
        self._release = release
        self._head: HeadWatch | None = HeadWatch()
        self._request_line = -1  # length of the first request line; -1: not seen in full
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._events: EdgeEvents | None = None
        self._lost: Callable[[], None] | None = None

    # -- the first request ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._deadline = self._edge_loop.call_later(
            self._limits.handshake_timeout, self._handshake_expired
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self._release is not None:
            self._release()
            self._release = None
        self._end_deadline()
        self._head = None
        self._events = None
        lost, self._lost = self._lost, None
        if lost is not None:
            lost()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the client or the deadline closes
        head = self._head
        if head is not None:
            size = head.feed(data)
            self._request_line = head.line
            if size >= 0:  # complete (what follows in data is a body or frames)
                self._head = None
                self._end_deadline()
            else:
                size = head.seen
            if size > self._limits.max_header_bytes:
                self._refuse()
                return
        super().data_received(data)

    def _peer(self) -> str:
        """The peer's address as ``request.remote`` shows it."""
        peer = self.peername
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    def _end_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _handshake_expired(self) -> None:
        self._deadline = None
        if not self._refused:
            log.debug(
                "closing a connection from %s: no complete request within %.1fs",
                self._peer(),
                self._limits.handshake_timeout,
            )
        self.force_close()

    def _refuse(self) -> None:
        """Answer 431 and close; until the client closes (at the latest at the deadline, which
        stays armed) what it still sends is dropped, so it can read the answer."""
        self._refused = True
        self._head = None
        limit = self._limits.max_header_bytes
        log.info(
            "refused a request from %s: request line and headers over %d bytes (HTTP 431)",
            self._peer(),
            limit,
        )
        transport = self.transport
        if transport is None:
            return
        if self._deadline is None:
            self._deadline = self._edge_loop.call_later(
                self._limits.handshake_timeout, self._handshake_expired
            )
        transport.write(plain_response(431, f"request line and headers exceed {limit} bytes\n"))
        if transport.can_write_eof():
            transport.write_eof()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request the parser refused: a 4xx and one log line (aiohttp logs an ERROR with a
        traceback); anything else as aiohttp does it."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        status, text, noteworthy = self._refusal(exc)
        (log.info if noteworthy else log.debug)(
            "refused a request from %s: %s (HTTP %d)", request.remote, text, status
        )
        response = web.Response(status=status, text=text + "\n")
        response.force_close()
        return response

    def _refusal(self, exc: HttpProcessingError) -> tuple[int, str, bool]:
        """Status, text and whether it is worth an INFO line, for a parser error. A line too
        long is the request line (414) when the first request's was, else a header (431); on
        later requests of a keep-alive connection it is taken for a header."""
        if isinstance(exc, LineTooLong):
            if self._request_line < 0 or self._request_line > self.max_line_size:
                return 414, f"request line longer than {self.max_line_size} bytes", True
            return 431, f"a header line longer than {self.max_field_size} bytes", True
        if _TOO_MANY_HEADERS in str(exc):
            return 431, f"more than {self.max_headers} headers", True
        return exc.code if 400 <= exc.code < 500 else 400, f"bad request: {exc.message}", False

    # -- WebSockets -------------------------------------------------------------------------

    def bind(self, events: EdgeEvents | None) -> None:
        """Tell ``events`` when the transport's buffer drains, from now on (``None``: nobody)."""
        self._events = events

    def on_lost(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` once when the connection is lost (a streaming response's end);
        ``None``: no longer."""
        self._lost = callback

    def set_parser(
        self, parser: WebSocketReader, data_received_cb: Callable[[], None] | None = None
    ) -> None:
        super().set_parser(MaskCheck(parser, self._on_unmasked), data_received_cb)  # type: ignore[arg-type]
        # The connection speaks WebSocket from here on: aiohttp's HTTP parser and its queue of
        # parsed requests are never read again (data goes to the payload parser; a declined
        # upgrade never gets here), so they are let go: ~1.5 KB per connection.
        self._parser = None
        self._messages = NO_MESSAGES

    def _on_unmasked(self) -> None:
        log.info("failing a WebSocket from %s: client frame not masked (1002)", self._peer())

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._events is not None:
            self._events.on_writable()


class EdgeServer(web.Server):
    """aiohttp's low-level server making :class:`EdgeProtocol` connections."""

    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any,
        handler_cancellation: bool,
        loop: asyncio.AbstractEventLoop,
        limits: EdgeLimits,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            request_factory=request_factory,
            handler_cancellation=handler_cancellation,
            loop=loop,
            **kwargs,
        )
        self._edge_loop = loop
        self._edge_kwargs = kwargs
        self.limits = limits

    def __call__(self) -> EdgeProtocol:
        return self.protocol_for(None)

    def protocol_for(self, release: Release | None) -> EdgeProtocol:
        """The protocol of a new connection; it calls ``release`` when the connection is lost."""
        return EdgeProtocol(
            self, loop=self._edge_loop, limits=self.limits, release=release, **self._edge_kwargs
        )


class EdgeRunner(web.AppRunner):
    """An ``AppRunner`` serving ``app`` through an :class:`EdgeServer`, with the settings'
    ``keepalive_timeout``, the access log when ``access_log`` is set
    (:mod:`hubbub.server.access`), no signal handling and request bodies not
    decompressed (``Content-Encoding`` is left to the handler: none takes one). Sites:
    :class:`hubbub.server.listener.EdgeSite`."""

    def __init__(
        self,
        app: web.Application,
        settings: Settings,
        budget: SocketBudget,
        *,
        shutdown_timeout: float = 60.0,
    ) -> None:
        self._handler_kwargs: dict[str, Any] = {
            "access_log": access_logger() if settings.access_log else None,
            "access_log_class": AccessLog,
            "keepalive_timeout": settings.keepalive_timeout,
            # Request bodies as sent: a compressed one is not inflated (a 61 KB gzip body
            # would become 60 MB in one zlib call before any size limit is looked at).
            "auto_decompress": False,
        }
        super().__init__(
            app, handle_signals=False, shutdown_timeout=shutdown_timeout, **self._handler_kwargs
        )
        self.budget = budget
        self.limits = EdgeLimits.of(settings)

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # starts the application up
        return EdgeServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            limits=self.limits,
            **self._handler_kwargs,
        )


class EdgeSite(web.BaseSite):
    """A TCP site of an :class:`EdgeRunner` that listens with an
    :class:`hubbub.server.listener.Acceptor` (the runner's socket budget applies)."""

    __slots__ = ("_host", "_port", "_reuse_port", "_tls")

    def __init__(
        self,
        runner: EdgeRunner,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        backlog: int = 128,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._tls = tls

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'https' if self._tls else 'http'}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        runner = self._runner
        assert isinstance(runner, EdgeRunner)
        server = runner.server
        assert isinstance(server, EdgeServer)
        sockets = await bind(
            self._host, self._port, reuse_port=self._reuse_port, backlog=self._backlog
        )
        acceptor = Acceptor(
            sockets,
            server.protocol_for,
            runner.budget,
            tls=self._tls,
            handshake_timeout=runner.limits.handshake_timeout,
        )
        self._server = acceptor
        await acceptor.start_serving()
