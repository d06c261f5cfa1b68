"""One ASGI WebSocket (``scope["type"] == "websocket"``) as a :class:`hubbub.transport.Transport`,
so that the dialects run over an ASGI server (uvicorn, hypercorn...) unchanged.

The ASGI server owns the socket: framing, masking, UTF-8 checks, permessage-deflate (uvicorn
offers it) and the close handshake's timeouts are its business, and only messages cross the
``send``/``receive`` interface. What this module guarantees on top, as the aiohttp edge
(:mod:`hubbub.server.websocket`) does where ASGI lets it:

- :meth:`post` never awaits and never blocks: messages go to the connection's queue, and one
  writer task per connection hands them to ``send`` in the order they were posted. With a
  policy that ``coalesce``s, the messages waiting when the writer gets to them go as one
  message (text lines joined by newlines, binary ones concatenated). Unsent bytes (queued, or
  handed to ``send`` that has not returned: the server's backpressure) are bounded by
  ``write_buffer_limit``: past it the queue is dropped and the connection closed with the
  policy's ``slow`` code. Encode-once stops at ``send``: the ASGI server frames (and
  compresses) every message of every connection itself.
- :meth:`close` never awaits: it records the code and reason (:attr:`closed_with`, so the
  dialect's disconnect hook sees them), drops nothing posted before it (a farewell is posted
  last), and the writer sends the close after what was queued. :meth:`wait_closed` is bounded
  by :data:`CLOSE_TIMEOUT`.
- :meth:`receive` gives text as ``str`` and binary as ``bytes``, ``None`` once the peer is gone;
  a message over ``max_message_size`` closes with 1009. Once this side closed, it waits for the
  peer at most :data:`CLOSE_TIMEOUT`, then gives ``None`` as if the peer were gone: a peer that
  never reads (the close stuck behind its full socket buffer) or never answers the close does
  not keep the handler, its connection and its subscriptions.
- Keepalive for policies with an application ping (the Centrifugo protocol's): the ping is
  posted every ``ping_interval`` and the peer must show a sign of life (any message) within
  ``pong_timeout``, else it is closed with ``no_pong``. WebSocket-level pings (raw rooms,
  echo, uni_websocket) are the ASGI server's (uvicorn's ``--ws-ping-interval``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Final

from hubbub.config import Settings
from hubbub.core.closecode import CloseCode
from hubbub.server.asgi_http import Message, Receive, Send
from hubbub.server.policy import Policy

log = logging.getLogger(__name__)


#: Seconds :meth:`ASGIWebSocket.wait_closed` waits for the close to be handed to the server.
CLOSE_TIMEOUT: Final = 3.0
#: A close reason may hold at most 123 bytes (RFC 6455 §5.5: control frames carry <= 125).
MAX_REASON_BYTES: Final = 123

_ids = itertools.count(1)


def _reason(reason: str) -> str:
    data = reason.encode()
    if len(data) <= MAX_REASON_BYTES:
        return reason
    return data[:MAX_REASON_BYTES].decode(errors="ignore")


def _size(message: str | bytes) -> int:
    return len(message.encode()) if isinstance(message, str) else len(message)


def _event(message: str | bytes) -> Message:
    if isinstance(message, str):
        return {"type": "websocket.send", "text": message}
    return {"type": "websocket.send", "bytes": message}


class ASGIWebSocket:
    """An accepted ASGI WebSocket; see the module docstring for its guarantees."""

    __slots__ = (
        "_close",
        "_closed_with",
        "_deadline",
        "_give_up_at",
        "_gone",
        "_last_seen",
        "_limit",
        "_loop",
        "_max_size",
        "_pending",
        "_ping_handle",
        "_ping_interval",
        "_policy",
        "_pong_handle",
        "_pong_timeout",
        "_queue",
        "_receive",
        "_send",
        "_wakeup",
        "_writer",
        "id",
        "remote",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        settings: Settings,
        policy: Policy,
        remote: str | None = None,
    ) -> None:
        self.id = f"asgi-ws-{next(_ids)}"
        #: The peer's address as the ASGI server gives it (``scope["client"]``).
        self.remote = remote
        self._receive = receive
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._policy = policy
        self._limit = settings.write_buffer_limit
        self._max_size = settings.max_message_size
        self._ping_interval = policy.ping_interval or settings.ping_interval
        self._pong_timeout = policy.pong_timeout or settings.pong_timeout
        self._queue: deque[str | bytes] = deque()
        self._pending = 0  # bytes posted and not yet taken by send()
        self._close: tuple[int, str] | None = None  # to send once the queue is written
        self._closed_with: tuple[int, str] | None = None
        self._give_up_at: float | None = None  # loop time receive stops waiting, once closed
        self._deadline: asyncio.Timeout | None = None  # that of the receive under way
        self._gone = False  # the peer is gone (websocket.disconnect) or send failed
        self._wakeup: asyncio.Future[None] | None = None
        self._writer = self._loop.create_task(self._write(), name=f"hubbub {self.id} writer")
        self._last_seen = self._loop.time()
        self._ping_handle: asyncio.TimerHandle | None = None
        self._pong_handle: asyncio.TimerHandle | None = None
        if policy.ping is not None:
            self._ping_handle = self._loop.call_later(self._ping_interval, self._on_ping_due)

    @property
    def closing(self) -> bool:
        return self._close is not None or self._gone

    @property
    def closed_with(self) -> tuple[int, str] | None:
        """The code and reason this side closed with (None: it did not, or the peer did)."""
        return self._closed_with

    @property
    def queued_bytes(self) -> int:
        """Bytes posted and not yet taken by the server's ``send``."""
        return self._pending

    # -- receiving ------------------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        """The next message; ``None`` once the peer is gone (see the module docstring)."""
        while not self._gone:
            try:
                async with asyncio.timeout_at(self._give_up_at) as self._deadline:
                    event = await self._receive()
            except TimeoutError:  # closed, and the peer did not answer within CLOSE_TIMEOUT
                self._peer_gone()
                break
            finally:
                self._deadline = None
            kind = event["type"]
            if kind == "websocket.receive":
                self._last_seen = self._loop.time()
                text = event.get("text")
                data: str | bytes = text if text is not None else (event.get("bytes") or b"")
                # Cheap pre-check first: n characters are at most 4n UTF-8 bytes.
                if len(data) * 4 > self._max_size and _size(data) > self._max_size:
                    self.close(int(CloseCode.MESSAGE_TOO_BIG), "message too big")
                    return None
                return data
            if kind == "websocket.disconnect":
                self._peer_gone()
        return None

    def _peer_gone(self) -> None:
        self._gone = True
        self._queue.clear()
        self._pending = 0
        self._stop_timers()
        self._wake()

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send now and wait for the server to take it (its backpressure), for request/reply
        use (the echo). Do not mix with :meth:`post` on one connection: the two are not
        ordered together."""
        if self.closing:
            return
        try:
            await self._send(_event(message))
        except (OSError, RuntimeError):
            self._peer_gone()

    def post(self, message: str | bytes) -> None:
        """Queue a message without waiting; see :class:`hubbub.transport.Transport`."""
        if self._close is not None or self._gone:
            return
        self._queue.append(message)
        self._pending += len(message)
        if self._pending > self._limit:
            log.info(
                "%s: closing slow consumer (%d bytes unsent, limit %d)",
                self.id,
                self._pending,
                self._limit,
            )
            self._queue.clear()
            self.close(*self._policy.slow)
            return
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _batch(self) -> list[str | bytes]:
        """What the writer sends next: the queue, coalesced into one message if it may."""
        queue = self._queue
        if len(queue) > 1 and self._policy.coalesce:
            kind = type(queue[0])
            if all(type(message) is kind for message in queue):
                messages = list(queue)
                queue.clear()
                if kind is str:
                    return ["\n".join(messages)]  # type: ignore[arg-type]
                return [b"".join(messages)]  # type: ignore[arg-type]
        return [queue.popleft()]

    async def _write(self) -> None:
        """The writer task: the queue in order, then the close, then it ends."""
        try:
            while not self._gone:
                if self._queue:
                    for message in self._batch():
                        await self._send(_event(message))
                        self._pending = max(0, self._pending - len(message))
                    continue
                if self._close is not None:
                    code, reason = self._close
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                self._wakeup = self._loop.create_future()
                await self._wakeup
                self._wakeup = None
        except (OSError, RuntimeError):  # the server's "disconnected" errors
            self._gone = True
            self._stop_timers()

    # -- closing --------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Start closing with ``code`` and ``reason`` (idempotent); see the module docstring."""
        if self._close is not None or self._gone:
            return
        self._closed_with = (code, reason)
        farewell = self._policy.farewell
        if farewell is not None:
            self.post(farewell(code, reason))
        self._close = (code, _reason(reason))
        self._give_up_at = self._loop.time() + CLOSE_TIMEOUT
        if self._deadline is not None:
            self._deadline.reschedule(self._give_up_at)
        self._stop_timers()
        self._wake()

    async def wait_closed(self) -> None:
        """Wait for the close (or the peer's going) to be handed to the server; bounded."""
        if self._close is None and not self._gone:
            return
        # (asyncio.wait: neither cancels the writer nor swallows the caller's cancellation)
        await asyncio.wait((self._writer,), timeout=CLOSE_TIMEOUT)

    def release(self) -> None:
        """The handler is done: stop the timers and the writer."""
        self._stop_timers()
        self._queue.clear()
        self._pending = 0
        if not self._writer.done():
            self._writer.cancel()

    async def finished(self) -> None:
        """Wait for the writer task to end after :meth:`release` (nothing left behind); a
        cancellation of the caller is the caller's (it propagates)."""
        await asyncio.wait((self._writer,))
        if not self._writer.cancelled():
            self._writer.result()

    # -- keepalive ------------------------------------------------------------------------

    def _stop_timers(self) -> None:
        for handle in (self._ping_handle, self._pong_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = None

    def _on_ping_due(self) -> None:
        ping = self._policy.ping
        if self.closing or ping is None:
            return
        if self._policy.idle_ping:
            # Only after ping_interval of silence (the Pusher protocol's activity timeout).
            quiet_until = self._last_seen + self._ping_interval
            delay = quiet_until - self._loop.time()
            if delay > 0:
                self._ping_handle = self._loop.call_later(delay, self._on_ping_due)
                return
        self.post(ping)
        self._ping_handle = self._loop.call_later(self._ping_interval, self._on_ping_due)
        if self._pong_handle is None:
            sent_at = self._loop.time()
            self._pong_handle = self._loop.call_later(
                self._pong_timeout, self._on_pong_deadline, sent_at
            )

    def _on_pong_deadline(self, sent_at: float) -> None:
        self._pong_handle = None
        if self._last_seen >= sent_at or self.closing:
            return
        log.info("%s: no answer to ping within %.1fs, closing", self.id, self._pong_timeout)
        if self._policy.no_pong is not None:
            self.close(*self._policy.no_pong)
        else:
            self.close(int(CloseCode.POLICY_VIOLATION), "no pong")
