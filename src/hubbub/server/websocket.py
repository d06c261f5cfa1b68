"""One accepted WebSocket on aiohttp, as a :class:`hubbub.transport.Transport`.

What this module adds on top of aiohttp's ``WebSocketResponse``:

- Origin allow-list at the handshake (HTTP 403), the defence against cross-site WebSocket
  hijacking: a browser always sends ``Origin``, so a page on another site cannot open a socket
  with the user's cookies. Clients that send no ``Origin`` (not browsers) are let through.
- The close handshake done right: a peer's close code (and reason) is echoed; a close frame
  carrying a code that is not allowed on the wire (e.g. 1006) is answered with 1002.
- Keepalive: a peer silent for ``ping_interval`` is pinged and must answer (any frame counts)
  within ``pong_timeout``, else its TCP connection is dropped.
- :meth:`post`: a bounded, ordered, non-awaiting send for fan-out. What is posted in one loop
  turn is written at the end of the turn by one callback for all connections (no task or
  coroutine per connection): with a policy that ``coalesce``s, a connection's messages of the
  turn become one newline-separated text frame and one ``write``; without, their frames go
  in one ``write`` too. Frames are built once per turn for identical contents, so a
  publication fanned out to 10,000 connections is framed once. With ``write_delay`` > 0 the
  output is held instead up to that long after the first message posted to an idle
  connection (one loop timer for all, :class:`hubbub.server.sending.DelayedFlusher`), so
  the messages of several turns share the write; closing writes what is held first, and
  what :meth:`on_writable` releases is not delayed again; held output past
  ``write_buffer_limit`` is written at once. When the unsent bytes (held and in the
  transport's buffer) pass ``write_buffer_limit`` the connection is closed with the policy's
  ``slow`` code. Connections that negotiated permessage-deflate (always context-free:
  :mod:`hubbub.server.deflate`) share compressed frames the same way, built once per turn per
  window (and level and minimum size): the cache key is ``(framer, message)``; a connection
  holds no compressor. The machinery is in :mod:`hubbub.server.sending`; keepalive deadlines
  share :mod:`hubbub.server.keepalive`.
- :meth:`close` that cannot hang: the close handshake is bounded by :data:`CLOSE_TIMEOUT`, and a
  peer that does not read gets its TCP connection aborted. Within that bound the close frame
  goes out before the TCP connection ends, also for a slow consumer: while the transport's
  buffer is over its high-water mark, posted messages wait in the connection (not in the
  transport), so a slow close drops them and its close frame queues behind at most that mark.
- :meth:`release`, which leaves nothing of the connection in a reference cycle: once the
  handler is done, the connection, its aiohttp response, request and protocol are freed by
  reference counting alone, however the connection ended (the cyclic GC is rare in a server,
  see ``runner.GC_THRESHOLDS``, and does not see the zlib memory it would free).
- Served over an :class:`hubbub.server.edge.EdgeProtocol`, a client frame without the mask bit
  fails the connection with 1002 (aiohttp's reader reports it as a protocol error).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from typing import Final

from aiohttp import WSMsgType, web
from aiohttp.base_protocol import BaseProtocol

from hubbub.config import Settings
from hubbub.core.closecode import CloseCode, close_reply
from hubbub.server.admission import origin_refusal
from hubbub.server.deflate import DeflateResponse
from hubbub.server.edge import EdgeProtocol
from hubbub.server.keepalive import TIMER_RESOLUTION, timers_for
from hubbub.server.policy import RAW_POLICY, Policy
from hubbub.server.sending import DeflateFramer, build_frame, flusher_for, framer_for

log = logging.getLogger(__name__)

#: Seconds the close handshake may take before the TCP connection is dropped.
CLOSE_TIMEOUT: Final = 3.0
#: Seconds between two looks at a closing transport's buffer (is the close frame out yet?).
CLOSE_POLL: Final = 0.02
#: A close reason may hold at most 123 bytes (RFC 6455 §5.5: control frames carry <= 125).
MAX_REASON_BYTES: Final = 123

_ids = itertools.count(1)


def check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Raise HTTP 403 when an allow-list is set and the request's ``Origin`` is not on it."""
    refusal = origin_refusal(request.headers.getall("Origin", ()), allowed)
    if refusal is not None:
        raise web.HTTPForbidden(text=refusal)


def require_upgrade(request: web.Request) -> None:
    """Raise HTTP 426 when the request is not a WebSocket handshake."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise web.HTTPUpgradeRequired(
            text="this endpoint speaks WebSocket only\n", headers={"Upgrade": "websocket"}
        )


def _joined(messages: list[str | bytes]) -> str | bytes | None:
    """Messages of one type as one: text lines joined by newlines, binary ones concatenated;
    None when the types are mixed."""
    kind = type(messages[0])
    if not all(type(message) is kind for message in messages):
        return None
    if kind is str:
        return "\n".join(messages)  # type: ignore[arg-type]
    return b"".join(messages)  # type: ignore[arg-type]


def _shared(
    key: object, message: str | bytes, frames: dict[object, bytes], deflate: DeflateFramer | None
) -> bytes:
    """``message``'s frame from the turn's cache under ``key`` (a message, or the tuple of a
    coalesced turn's), built on a miss: plain, or by ``deflate``, whose frames are cached
    under ``(deflate, key)`` (another window or level, another frame)."""
    if deflate is not None:
        key = (deflate, key)
    frame = frames.get(key)
    if frame is None:
        frame = frames[key] = build_frame(message) if deflate is None else deflate.frame(message)
    return frame


def _byte_size(data: str | bytes) -> int:
    return len(data.encode()) if isinstance(data, str) else len(data)


def _reason_bytes(reason: str) -> bytes:
    data = reason.encode()
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode(errors="ignore").encode()


def _drop_tracebacks(exc: BaseException | None) -> None:
    """Clear the tracebacks of ``exc`` and of the exceptions it was raised from or during."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        if exc.__cause__ is not None:
            _drop_tracebacks(exc.__cause__)
        exc = exc.__context__


class WebSocketConnection:
    """A WebSocket accepted by :func:`accept`; see the module docstring for its guarantees."""

    __slots__ = (
        "__weakref__",
        "_closed_with",
        "_closer",
        "_coalesce",
        "_deflate",
        "_flow",
        "_flusher",
        "_id",
        "_last_seen",
        "_limit",
        "_loop",
        "_max_size",
        "_pending",
        "_pending_bytes",
        "_ping_due",
        "_ping_interval",
        "_ping_sent_at",
        "_ping_task",
        "_policy",
        "_pong_due",
        "_pong_timeout",
        "_request",
        "_scheduled",
        "_timers",
        "_transport",
        "_ws",
    )

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        settings: Settings,
        policy: Policy = RAW_POLICY,
        flow: BaseProtocol | None = None,
    ) -> None:
        """``flow``: the protocol whose ``writing_paused`` holds posted messages back; whoever
        passes it calls :meth:`on_writable` when writing resumes."""
        self._id = f"ws-{next(_ids)}"
        self._request = request
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self._limit = settings.write_buffer_limit
        self._max_size = settings.max_message_size
        self._policy = policy
        self._ping_interval = policy.ping_interval or settings.ping_interval
        self._pong_timeout = policy.pong_timeout or settings.pong_timeout
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost during the handshake")
        self._transport: asyncio.Transport = transport
        self._coalesce = policy.coalesce
        # write_delay > 0: a DelayedFlusher, same protocol (no timer or slot per connection).
        self._flusher = flusher_for(self._loop).delayed(settings.write_delay)
        self._pending: list[str | bytes] = []  # posted, not yet written
        self._pending_bytes = 0
        # Only with permessage-deflate: the loop's framer for the negotiated window (shared).
        params = ws.deflate if isinstance(ws, DeflateResponse) else None
        self._deflate: DeflateFramer | None = (
            framer_for(
                self._loop,
                params.window_bits,
                settings.compression_level,
                settings.compression_min_size,
            )
            if params
            else None
        )
        self._flow = flow  # (deflate too: its frames are compressed when they are written)
        self._closer: asyncio.Task[None] | None = None
        self._closed_with: tuple[int, str] | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._last_seen = self._loop.time()
        self._ping_sent_at = 0.0
        # Keepalive deadlines (loop time; inf: none), checked through the loop's shared
        # keepalive.Timers; _scheduled is the earliest time this connection is registered there for.
        self._ping_due = self._loop.time() + self._ping_interval
        self._pong_due = math.inf
        self._scheduled = math.inf
        self._timers = timers_for(self._loop)
        self._arm()

    @property
    def id(self) -> str:
        return self._id

    @property
    def response(self) -> web.WebSocketResponse:
        """The aiohttp response, to return from the request handler."""
        return self._ws

    @property
    def closing(self) -> bool:
        return self._closer is not None or self._ws.closed

    @property
    def closed_with(self) -> tuple[int, str] | None:
        """The code and reason this side closed with (None: it did not, or the peer did)."""
        return self._closed_with

    @property
    def queued_bytes(self) -> int:
        """Bytes posted but not yet sent: not yet written, or buffered by the transport."""
        transport = self._request.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._pending_bytes + buffered

    # -- receiving ------------------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        """The next text (``str``) or binary (``bytes``) message; ``None`` once closed.

        Pings are answered, pongs noted, a peer's close is answered (see :func:`close_reply`);
        protocol errors, oversize messages (1009) and invalid UTF-8 (1007) close the
        connection inside aiohttp and end up here as ``None``.
        """
        ws = self._ws
        while True:
            msg = await ws.receive()
            self._last_seen = self._loop.time()
            kind = msg.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                data: str | bytes = msg.data
                # Cheap pre-check first: a str of n characters is at most 4n UTF-8 bytes.
                if len(data) * 4 > self._max_size and _byte_size(data) > self._max_size:
                    # Only a compressed message of exactly limit + 1 bytes gets here (see accept).
                    await ws.close(code=int(CloseCode.MESSAGE_TOO_BIG), message=b"message too big")
                    self._stop_timers()
                    return None
                return data
            if kind is WSMsgType.PING:
                with contextlib.suppress(ConnectionError):
                    await ws.pong(msg.data)
                continue
            if kind is WSMsgType.PONG:
                continue
            if kind is WSMsgType.CLOSE:
                # The peer started the close: answer at once, without draining (it may already
                # have stopped reading) and without waiting for anything else.
                # The peer's reason is echoed with a valid code, so its onclose reads as sent.
                code = close_reply(msg.data)
                reason = _reason_bytes(msg.extra or "") if code == msg.data else b""
                await ws.close(code=int(code), message=reason, drain=False)
            elif kind is WSMsgType.ERROR:
                log.debug("%s: %s", self._id, msg.data)
            self._stop_timers()
            return None

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send now and wait for the socket to take it (backpressure); for request/reply use.

        Do not mix with :meth:`post` on one connection: the two are not ordered together.
        """
        if self.closing:
            return
        if self._deflate is not None:
            await self._send_compressed(message)
            return
        try:
            if isinstance(message, str):
                await self._ws.send_str(message)
            else:
                await self._ws.send_bytes(message)
        except ConnectionError:
            self.abort()

    async def _send_compressed(self, message: str | bytes) -> None:
        # Through the shared framer, like what is posted (aiohttp's compressor would be one
        # more per connection).
        transport = self._transport
        if transport.is_closing():
            return
        assert self._deflate is not None
        transport.write(self._deflate.frame(message))
        try:
            await self._request.writer.drain()
        except ConnectionError:
            self.abort()

    def post(self, message: str | bytes) -> None:
        """Queue a message without waiting; see :class:`hubbub.transport.Transport`."""
        if self._closer is not None:  # (a closed socket is caught by flush)
            return
        pending = self._pending
        if not pending:
            flusher = self._flusher
            flusher.dirty.append(self)
            if not flusher.scheduled:
                flusher.schedule()
        pending.append(message)
        self._pending_bytes += len(message)
        if self._pending_bytes > self._limit:
            flow = self._flow
            if flow is not None and flow.writing_paused:
                self._slow()  # held back behind a full transport: the peer is not reading
            else:
                # A burst bigger than the limit in one turn (a group commit's batch) goes out
                # now; only what the transport then cannot take makes the peer slow.
                self.flush()

    def _slow(self) -> None:
        log.info(
            "%s: closing slow consumer (%d bytes unsent, limit %d)",
            self._id,
            self.queued_bytes,
            self._limit,
        )
        self._pending.clear()
        self._pending_bytes = 0
        self._flusher.slow_closes += 1
        self.close(*self._policy.slow)

    def flush(self, frames: dict[object, bytes] | None = None) -> None:
        """Write what was posted (the flusher calls this at the end of the loop turn).
        ``frames``: frames already built this turn, by content; new ones are added."""
        pending = self._pending
        if not pending:
            return
        flow = self._flow
        if flow is not None and flow.writing_paused and self._closer is None:
            return  # held back until on_writable(); a slow close drops them unsent
        try:
            self._write(pending, {} if frames is None else frames)
        finally:
            pending.clear()  # the list is reused: one allocation less per connection and turn
            self._pending_bytes = 0

    def _write(self, pending: list[str | bytes], frames: dict[object, bytes]) -> None:
        transport = self._transport
        if transport.is_closing() or self._ws.closed:
            return
        deflate = self._deflate
        if deflate is None and len(pending) == 1:  # the common case: one push this turn
            message = pending[0]
            frame = frames.get(message)
            if frame is None:
                frame = frames[message] = build_frame(message)
            transport.write(frame)
        elif self._coalesce and len(pending) > 1 and (joined := _joined(pending)) is not None:
            transport.write(_shared(tuple(pending), joined, frames, deflate))
        else:  # one write of the frames, one after the other (one send for the kernel)
            transport.write(b"".join([_shared(m, m, frames, deflate) for m in pending]))
        if transport.get_write_buffer_size() > self._limit:
            self._slow()

    def on_writable(self) -> None:
        """The transport's buffer drained below its low-water mark: what was held back is
        written at the end of the turn (not after another ``write_delay``)."""
        if self._pending and self._closer is None:
            flusher = self._flusher.immediate
            flusher.dirty.append(self)
            if not flusher.scheduled:
                flusher.schedule()

    # -- closing --------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Start the close handshake (idempotent); bounded by :data:`CLOSE_TIMEOUT`."""
        if self._closer is not None or self._ws.closed:
            return
        self._closed_with = (code, reason)
        farewell = self._policy.farewell
        if farewell is not None:
            self.post(farewell(code, reason))
        self._closer = self._loop.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        self._stop_timers()
        self.flush()  # what was posted before the close (e.g. an error reply) goes out first
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=code, message=_reason_bytes(reason), drain=False)
                # aiohttp returns at once when the reader was waiting (it then closes the
                # transport): the close frame may still sit in the transport's buffer.
                await self._sent()
        except (TimeoutError, ConnectionError):
            pass
        transport = self._request.transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            # The peer is not reading; a FIN would wait forever behind the unsent data.
            transport.abort()

    async def _sent(self) -> None:
        """Return once the transport's buffer is empty (handed to the kernel or dropped)."""
        transport = self._transport
        # Polled: a transport tells when its buffer is below the low-water mark, not empty.
        while transport.get_write_buffer_size() > 0:  # noqa: ASYNC110
            await asyncio.sleep(CLOSE_POLL)

    async def wait_closed(self) -> None:
        """Wait for a close started with :meth:`close` to finish (bounded); a cancellation
        of the caller is the caller's (it propagates; the close goes on)."""
        if self._closer is not None:
            await asyncio.wait((self._closer,))  # (neither cancels the close nor swallows)
            if not self._closer.cancelled():
                self._closer.result()

    def release(self) -> None:
        """The handler is done with the connection: stop its timers and cut what would keep
        it in a reference cycle, so that it is freed without the cyclic GC once the handler's
        references go."""
        self._stop_timers()
        self._pending.clear()
        self._pending_bytes = 0
        # aiohttp keeps the exception that ended a connection (a reset peer, a failed write);
        # its traceback holds the frames of the response's own methods, hence the response.
        _drop_tracebacks(self._ws.exception())

    def abort(self) -> None:
        """Drop the TCP connection now (no close handshake)."""
        self._stop_timers()
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    # -- keepalive ------------------------------------------------------------------------

    @property
    def remote(self) -> str | None:
        """The peer's address."""
        return self._request.remote

    def _stop_timers(self) -> None:
        self._ping_due = self._pong_due = math.inf
        if self._scheduled != math.inf:  # not kept alive by the timers until its slot comes
            self._timers.discard(self, self._scheduled)
            self._scheduled = math.inf
        if self._ping_task is not None:
            # Dropped too: a cancelled task keeps its CancelledError, whose traceback holds
            # _send_ping's frame, hence this connection (a cycle through _ping_task).
            self._ping_task.cancel()
            self._ping_task = None

    def _arm(self) -> None:
        """Register for the next keepalive deadline unless already registered for it."""
        due = min(self._ping_due, self._pong_due)
        if due < self._scheduled:
            self._scheduled = due
            self._timers.add(self, due)

    def on_timer(self, now: float) -> None:
        """Called by :class:`hubbub.server.keepalive.Timers` with a time at or after a
        registered one."""
        if now + TIMER_RESOLUTION < self._scheduled:
            return  # an earlier registration, superseded by a later one
        self._scheduled = math.inf
        if self._pong_due <= now:
            self._on_pong_deadline()
        if self._ping_due <= now:
            self._on_ping_due(now)
        self._arm()

    def _on_ping_due(self, now: float) -> None:
        """Protocol pings go out on a fixed beat, busy or not (SDKs watch for them to detect a
        dead server); WebSocket pings only after ping_interval of silence. Either way the peer
        must show a sign of life within pong_timeout of the oldest unanswered ping."""
        ping = self._policy.ping
        beat = ping is not None and not self._policy.idle_ping
        if not beat and now - self._last_seen < self._ping_interval:
            self._ping_due = self._last_seen + self._ping_interval
            return
        if self.closing:
            self._ping_due = math.inf
            return
        if ping is not None:
            self.post(ping)
            self._ping_due = math.inf if not beat else now + self._ping_interval
        else:
            self._ping_due = math.inf  # the pong deadline decides when to look again
            self._ping_task = self._loop.create_task(self._send_ping())
        if self._pong_due == math.inf:
            # The real time (``now`` may be up to half a slot ahead): a pong must count.
            self._ping_sent_at = self._loop.time()
            self._pong_due = now + self._pong_timeout

    async def _send_ping(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._ws.ping()

    def _on_pong_deadline(self) -> None:
        self._pong_due = math.inf
        if self._last_seen >= self._ping_sent_at:
            if self._policy.ping is None or self._policy.idle_ping:
                self._ping_due = self._last_seen + self._ping_interval
            return
        log.info("%s: no answer to ping within %.1fs, dropping", self._id, self._pong_timeout)
        if self._policy.no_pong is not None:
            self.close(*self._policy.no_pong)
        else:
            self.abort()


async def accept(
    request: web.Request,
    settings: Settings,
    policy: Policy = RAW_POLICY,
    protocols: tuple[str, ...] = (),
) -> WebSocketConnection:
    """Check the Origin, complete the WebSocket handshake and wrap the result.

    ``protocols``: the subprotocols to choose from (the first the client offers wins; one it
    offers that is not here is not taken, and the handshake goes on without one).
    Raises ``web.HTTPException`` (403, 426, 400) for handshakes that are refused. Over an
    :class:`EdgeProtocol` the connection holds messages back while the transport's buffer is
    full.
    """
    check_origin(request, settings.allowed_origins)
    require_upgrade(request)
    ws = DeflateResponse(
        autoclose=False,
        autoping=False,
        window_bits=settings.compression_window_bits if settings.compression else None,
        # aiohttp refuses an uncompressed message of exactly max_msg_size bytes (its check is
        # ">="), but allows a compressed one of that size: giving it limit + 1 makes the first
        # right, and receive() refuses the one decompressed size that then slips through.
        max_msg_size=settings.max_message_size + 1,
        timeout=CLOSE_TIMEOUT,
        protocols=protocols,
    )
    await ws.prepare(request)
    protocol = request.protocol
    if not isinstance(protocol, EdgeProtocol):
        return WebSocketConnection(request, ws, settings, policy)
    conn = WebSocketConnection(request, ws, settings, policy, flow=protocol)
    protocol.bind(conn)
    return conn
