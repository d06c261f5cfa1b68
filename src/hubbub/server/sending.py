"""Sending what a connection posts: once per loop turn, frames built once, for every
connection of the loop together (see :class:`hubbub.server.websocket.WebSocketConnection`).

- :func:`build_frame`: an unmasked server frame for a message.
- :class:`Flusher`: one per event loop; connections append themselves to ``dirty`` when their
  first message of a turn is posted, and the flusher calls their ``flush`` at the end of the
  turn with a frame cache shared by all of them, so equal contents are framed once.
- :class:`DeflateWriter`: the frames of a connection that negotiated permessage-deflate,
  compressed for it alone (the compressor keeps context), synchronously like the others.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import weakref
import zlib
from typing import Final, Protocol

from hubbub.server.deflate import mem_level

log = logging.getLogger(__name__)


class Flushable(Protocol):
    """What the flusher needs of a connection."""

    @property
    def id(self) -> str: ...

    def flush(self, frames: dict[object, bytes] | None = None) -> None: ...

    def abort(self) -> None: ...


_TEXT: Final = 0x81  # FIN + opcode 1
_BINARY: Final = 0x82  # FIN + opcode 2
_RSV1: Final = 0x40  # set on the first frame of a compressed message (RFC 7692 §6)
_FLUSH_TAIL: Final = b"\x00\x00\xff\xff"


def build_frame(message: str | bytes) -> bytes:
    """An unmasked, uncompressed, final WebSocket frame (server to client) holding
    ``message``: text for ``str``, binary for ``bytes``."""
    if isinstance(message, str):
        payload, first = message.encode(), _TEXT
    else:
        payload, first = message, _BINARY
    return _framed(first, payload)


def _framed(first: int, payload: bytes) -> bytes:
    """A frame of ``payload`` behind the header byte ``first`` (FIN, RSV, opcode)."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", first, 126, size) + payload
    return struct.pack("!BBQ", first, 127, size) + payload


class Flusher:
    """Writes, once per loop turn, what was posted to every connection during the turn."""

    __slots__ = ("_loop", "dirty", "scheduled", "slow_closes")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: this object is the loop's value in a WeakKeyDictionary keyed by the loop.
        self._loop = weakref.ref(loop)
        #: Connections with something posted this turn (a connection appends itself when
        #: its first message of the turn comes, then calls schedule() unless scheduled).
        self.dirty: list[Flushable] = []
        self.scheduled = False
        #: Connections of this loop closed as slow consumers (counted by the connections,
        #: read by ``/metrics``).
        self.slow_closes = 0

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
    """Frames for a connection that negotiated permessage-deflate (RFC 7692 §7.2.1): each
    message compressed with this connection's compressor, which keeps context from message to
    message (unless ``no_context_takeover``), so its frames are never shared.

    Guarantees: :meth:`frame` is synchronous, and frames written in the order they were made
    decode in that order. The zlib compressor is made at the first message, with a window of
    ``window_bits`` (the negotiated ``server_max_window_bits``) and the memory level
    :func:`hubbub.server.deflate.mem_level` pairs with it, so it holds at most
    :func:`hubbub.server.deflate.compressor_bytes` (30 KiB for 12 bits). :meth:`close` frees
    it; the writer refers to nothing else (no task, no callback: no reference cycle)."""

    __slots__ = ("__weakref__", "_closed", "_compressor", "_flush_mode", "_window_bits")

    def __init__(self, window_bits: int, no_context_takeover: bool = False) -> None:
        self._window_bits = window_bits
        # A full flush also forgets the context, as server_no_context_takeover requires.
        self._flush_mode = zlib.Z_FULL_FLUSH if no_context_takeover else zlib.Z_SYNC_FLUSH
        self._compressor: zlib._Compress | None = None
        self._closed = False

    @property
    def allocated(self) -> bool:
        """Whether the compressor exists (from the first message until :meth:`close`)."""
        return self._compressor is not None

    def frame(self, message: str | bytes) -> bytes:
        """A final, unmasked frame with RSV1 set holding ``message`` compressed: text for
        ``str``, binary for ``bytes``. Raises ``ConnectionResetError`` after :meth:`close`."""
        compressor = self._compressor
        if compressor is None:
            if self._closed:
                raise ConnectionResetError("the connection's compressor was released")
            compressor = self._compressor = zlib.compressobj(
                zlib.Z_BEST_SPEED, zlib.DEFLATED, -self._window_bits, mem_level(self._window_bits)
            )
        if isinstance(message, str):
            payload, first = message.encode(), _TEXT | _RSV1
        else:
            payload, first = message, _BINARY | _RSV1
        data = compressor.compress(payload) + compressor.flush(self._flush_mode)
        # A flush ends with an empty stored block, 00 00 ff ff, which the peer adds back.
        return _framed(first, data[:-4] if data.endswith(_FLUSH_TAIL) else data)

    def close(self) -> None:
        """Free the compressor; later :meth:`frame` calls raise."""
        self._compressor = None
        self._closed = True
