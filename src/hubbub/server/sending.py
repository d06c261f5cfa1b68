"""Sending what a connection posts: once per loop turn, frames built once, for every
connection of the loop together (see :class:`hubbub.server.websocket.WebSocketConnection`).

- :func:`build_frame`: an unmasked server frame for a message.
- :class:`Flusher`: one per event loop; connections append themselves to ``dirty`` when their
  first message of a turn is posted, and the flusher calls their ``flush`` at the end of the
  turn with a frame cache shared by all of them, so equal contents are framed once.
- :class:`DelayedFlusher` (``write_delay`` > 0): the same interface, but the connections that
  became dirty in one turn are flushed together ``write_delay`` seconds after that turn's
  first post, by one loop timer for all of them (FIFO of per-turn buckets: the delay is one
  constant, so deadlines come in the order the buckets were made).
- :class:`DeflateWriter`: the frames of a connection that negotiated permessage-deflate,
  compressed for it alone (the compressor keeps context), synchronously like the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import weakref
import zlib
from collections import deque
from typing import Final, Protocol

from hubbub.sendingsettings import MAX_WRITE_DELAY
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
    """Writes, once per loop turn, what was posted to every connection during the turn.

    The protocol with connections (inlined in their ``post`` for speed): a connection whose
    first message since its last flush is posted appends itself to :attr:`dirty`, then calls
    :meth:`schedule` unless :attr:`scheduled`; it is flushed once, after the current callback.
    """

    __slots__ = ("__weakref__", "_delayed", "_loop", "dirty", "scheduled", "slow_closes")

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
        self._delayed: dict[float, DelayedFlusher] = {}

    @property
    def immediate(self) -> Flusher:
        """The flusher that writes at the end of this turn (this one)."""
        return self

    def delayed(self, delay: float) -> Flusher:
        """The flusher to give connections for a ``write_delay`` of ``delay`` seconds: this one
        for 0, else the loop's :class:`DelayedFlusher` for that delay (made at first use; it
        counts slow closes here)."""
        if delay <= 0:
            return self
        flusher = self._delayed.get(delay)
        if flusher is None:
            loop = self._loop()
            if loop is None:
                return self
            flusher = self._delayed[delay] = DelayedFlusher(loop, delay, self)
        return flusher

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


def _flush_all(dirty: list[Flushable], frames: dict[object, bytes]) -> None:
    for conn in dirty:
        try:
            conn.flush(frames)
        except Exception:  # one broken connection must not stop the others
            log.exception("%s: flushing failed", conn.id)
            conn.abort()


class DelayedFlusher(Flusher):
    """A :class:`Flusher` that holds what is posted for up to ``delay`` seconds, so that more
    messages join a connection's next write (``write_delay``).

    Same protocol for connections. Guarantees:

    - A connection that joins :attr:`dirty` is flushed no later than ``delay`` seconds after
      the first post of the loop turn it joined in (plus the loop's latency): each turn with
      posts makes one bucket, whose deadline is its :meth:`schedule` time + ``delay``, and one
      loop timer is armed at a time, for the oldest bucket (``call_at``, no timer per
      connection). Buckets are flushed in the order they were made, with one frame cache per
      timer callback, so equal contents are still framed once for all of its connections.
    - A connection flushed earlier (its buffer passed the limit, it closed) is flushed again
      at its bucket's deadline, which writes nothing unless it was posted to since: nothing
      is written out of order or late. A connection is referred to by at most the buckets it
      joined, for at most ``delay`` seconds; an idle connection costs nothing here.
    - :attr:`immediate` is the loop's plain flusher, for what must not wait again (output
      held back by backpressure when the transport drains).
    """

    __slots__ = ("_armed", "_base", "_buckets", "_delay")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, base: Flusher) -> None:
        if not 0 < delay <= MAX_WRITE_DELAY:
            raise ValueError(f"write delay {delay!r} is not in (0, {MAX_WRITE_DELAY}]")
        # Weakly: the base flusher holds this one (no reference cycle).
        self._base = weakref.ref(base)
        super().__init__(loop)
        self._delay = delay
        #: (deadline, the connections that became dirty in that turn), oldest first.
        self._buckets: deque[tuple[float, list[Flushable]]] = deque()
        #: The deadline the loop timer is armed for (inf: none). The handle itself is not kept:
        #: it would hold this object in a cycle through its callback.
        self._armed = math.inf

    @property
    def immediate(self) -> Flusher:
        base = self._base()
        return self if base is None else base

    @property
    def slow_closes(self) -> int:
        base = self._base()
        return 0 if base is None else base.slow_closes

    @slow_closes.setter
    def slow_closes(self, value: int) -> None:
        base = self._base()
        if base is not None:
            base.slow_closes = value

    @property
    def delay(self) -> float:
        return self._delay

    def schedule(self) -> None:
        """Open this turn's bucket (``dirty`` already holds its first connection): due at
        now + delay; the bucket closes at the end of the turn."""
        loop = self._loop()
        if loop is None:
            return
        self.scheduled = True
        deadline = loop.time() + self._delay
        self._buckets.append((deadline, self.dirty))
        loop.call_soon(self._close_bucket)
        if self._armed == math.inf:
            self._armed = deadline
            loop.call_at(deadline, self.flush)

    def _close_bucket(self) -> None:
        self.scheduled = False
        self.dirty = []  # the bucket keeps the old list

    def flush(self) -> None:
        """The timer: flush the oldest bucket and every other one that is due, then arm the
        timer for the next."""
        self._armed = math.inf
        loop = self._loop()
        buckets = self._buckets
        if loop is None or not buckets:
            return
        now = loop.time()
        frames: dict[object, bytes] = {}
        _, dirty = buckets.popleft()  # the one the timer was armed for
        if dirty is self.dirty:  # (its turn has not ended: a timer of a zero-length wait)
            self._close_bucket()
        _flush_all(dirty, frames)
        while buckets and buckets[0][0] <= now:
            _, dirty = buckets.popleft()
            if dirty is self.dirty:
                self._close_bucket()
            _flush_all(dirty, frames)
        if buckets:
            self._armed = buckets[0][0]
            loop.call_at(self._armed, self.flush)


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
