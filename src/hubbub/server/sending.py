"""Sending what a connection posts: once per loop turn, frames built once, for every
connection of the loop together (see :class:`hubbub.server.websocket.WebSocketConnection`).

- :func:`build_frame`: an unmasked server frame for a message.
- :class:`Flusher`: one per event loop; connections append themselves to ``dirty`` when their
  first message of a turn is posted, and the flusher calls their ``flush`` at the end of the
  turn with a frame cache shared by all of them, so equal contents are framed once.
- :class:`DeflateWriter`: the send path of a connection that negotiated permessage-deflate,
  whose frames cannot be shared (the compressor keeps context).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import weakref
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

from aiohttp import web

log = logging.getLogger(__name__)

#: Seconds queued messages get to go out before a close frame.
FLUSH_TIMEOUT: Final = 1.0


class Flushable(Protocol):
    """What the flusher needs of a connection."""

    @property
    def id(self) -> str: ...

    def flush(self, frames: dict[object, bytes] | None = None) -> None: ...

    def abort(self) -> None: ...


_TEXT: Final = 0x81  # FIN + opcode 1
_BINARY: Final = 0x82  # FIN + opcode 2


def build_frame(message: str | bytes) -> bytes:
    """An unmasked, uncompressed, final WebSocket frame (server to client) holding
    ``message``: text for ``str``, binary for ``bytes``."""
    if isinstance(message, str):
        payload, first = message.encode(), _TEXT
    else:
        payload, first = message, _BINARY
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


class Flusher:
    """Writes, once per loop turn, what was posted to every connection during the turn."""

    __slots__ = ("_loop", "dirty", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: this object is the loop's value in a WeakKeyDictionary keyed by the loop.
        self._loop = weakref.ref(loop)
        #: Connections with something posted this turn (a connection appends itself when
        #: its first message of the turn comes, then calls schedule() unless scheduled).
        self.dirty: list[Flushable] = []
        self.scheduled = False

    def schedule(self) -> None:
        loop = self._loop()
        if loop is not None:
            self.scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        # Frames by content, for this turn: the keys (messages, or tuples of them) stay alive
        # in this dict, so equal keys really are equal contents.
        frames: dict[object, bytes] = {}
        for conn in dirty:
            try:
                conn.flush(frames)
            except Exception:  # one broken connection must not stop the others
                log.exception("%s: flushing failed", conn.id)
                conn.abort()


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary()
)


def flusher_for(loop: asyncio.AbstractEventLoop) -> Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = Flusher(loop)
    return flusher


class DeflateWriter:
    """The send path of a connection that negotiated permessage-deflate: its compressor
    keeps context between messages, so aiohttp compresses each message for this connection
    alone, in order, in one task."""

    def __init__(
        self, ws: web.WebSocketResponse, limit: int, conn_id: str, on_error: Callable[[], None]
    ) -> None:
        self._ws = ws
        self._limit = limit
        self._id = conn_id
        self._on_error = on_error
        self._messages: deque[str | bytes] = deque()
        self.queued = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def queue(self, messages: list[str | bytes]) -> bool:
        """Queue for sending; False when that would pass the connection's limit."""
        for message in messages:
            self._messages.append(message)
            self.queued += len(message)
        if self.queued > self._limit:
            return False
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        else:
            self._wake.set()
        return True

    def clear(self) -> None:
        self._messages.clear()
        self.queued = 0

    async def drain(self) -> None:
        """Wait (at most :data:`FLUSH_TIMEOUT`) for what is queued to be sent, then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await self._idle.wait()
        self.stop()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.clear()

    async def _run(self) -> None:
        ws, messages = self._ws, self._messages
        try:
            while True:
                while messages:
                    message = messages.popleft()
                    self.queued -= len(message)
                    if isinstance(message, str):
                        await ws.send_str(message)
                    else:
                        await ws.send_bytes(message)
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ConnectionError, or a message the socket cannot take
            log.info("%s: write failed: %r", self._id, exc)
            self._on_error()
