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
- :class:`DeflateFramer`: the frames of connections that negotiated permessage-deflate,
  compressed once per loop, window, level and minimum size and shared like the plain ones
  (every handshake grants ``server_no_context_takeover``); :func:`framer_for` gives a loop's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import weakref
import zlib
from collections import deque
from collections.abc import Callable
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
        _flush_all(dirty, {})


def _flush_all(dirty: list[Flushable], frames: dict[object, bytes]) -> None:
    for conn in dirty:
        try:
            conn.flush(frames)
        except Exception:  # one broken connection must not stop the others
            log.exception("%s: flushing failed", conn.id)
            conn.abort()


def _no_base() -> Flusher | None:
    return None


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
        # No base while Flusher.__init__ sets slow_closes = 0 (the setter would reset the
        # base's count, a /metrics counter); then weakly: the base holds this one (no cycle).
        self._base: Callable[[], Flusher | None] = _no_base
        super().__init__(loop)
        self._base = weakref.ref(base)
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
        while True:  # the bucket the timer was armed for, then every other one that is due
            _, dirty = buckets.popleft()
            if dirty is self.dirty:  # (its turn has not ended: a timer of a zero-length wait)
                self._close_bucket()
            _flush_all(dirty, frames)
            if not buckets or buckets[0][0] > now:
                break
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


class DeflateFramer:
    """Compressed frames for every connection of one loop that negotiated permessage-deflate
    with the same window (RFC 7692 §7.2.1), built once and shared like the plain ones.

    Every handshake grants ``server_no_context_takeover`` (:mod:`hubbub.server.deflate`), so a
    message's compressed frame depends only on the message, the window and the level: one
    compressor per loop and setting serves every connection, and its frames go in the turn's
    frame cache under ``(framer, message)``. The compressor is reused with a full flush
    (``Z_FULL_FLUSH``: the output so far ends on a byte boundary and later output refers to
    nothing before it), which is what server_no_context_takeover requires and is cheaper than
    a fresh compressor per message (measured: 2.6 against 3.0 µs for a 180-byte message at 12
    bits, 2.8 against 22 µs at 15 bits, where a fresh one's 200 KiB must be set up).

    Guarantees: :meth:`frame` is synchronous and each frame inflates on its own, with an
    inflater of ``window_bits`` that is fresh or that inflated any other frames of this
    extension before (at a message boundary). Messages of fewer than ``min_size`` bytes go
    out as plain frames without RSV1 (RFC 7692 §6: compression is per message). The
    compressor (:func:`hubbub.server.deflate.compressor_bytes`: 30 KiB at 12 bits) exists once
    per loop and setting, made at the first message; a connection holds a reference only."""

    __slots__ = ("_compressor", "level", "min_size", "window_bits")

    def __init__(self, window_bits: int, level: int, min_size: int) -> None:
        self.window_bits = window_bits
        self.level = level
        self.min_size = min_size
        self._compressor: zlib._Compress | None = None

    def frame(self, message: str | bytes) -> bytes:
        """A final, unmasked frame holding ``message``: text for ``str``, binary for
        ``bytes``; compressed with RSV1 set unless shorter than ``min_size``."""
        if isinstance(message, str):
            payload, first = message.encode(), _TEXT
        else:
            payload, first = message, _BINARY
        if len(payload) < self.min_size:
            return _framed(first, payload)
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.window_bits, mem_level(self.window_bits)
            )
        try:
            data = compressor.compress(payload) + compressor.flush(zlib.Z_FULL_FLUSH)
        except BaseException:
            self._compressor = None  # its state is unknown: the next message gets a new one
            raise
        # A flush ends with an empty stored block, 00 00 ff ff, which the peer adds back.
        return _framed(first | _RSV1, data[:-4] if data.endswith(_FLUSH_TAIL) else data)


_framers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, int, int], DeflateFramer]
] = weakref.WeakKeyDictionary()


def framer_for(
    loop: asyncio.AbstractEventLoop, window_bits: int, level: int, min_size: int
) -> DeflateFramer:
    """The loop's :class:`DeflateFramer` for a window, a zlib level and a minimum size (the
    same object for the same arguments on the same loop: frames are cached by it)."""
    framers = _framers.get(loop)
    if framers is None:
        framers = _framers[loop] = {}
    key = (window_bits, level, min_size)
    framer = framers.get(key)
    if framer is None:
        framer = framers[key] = DeflateFramer(window_bits, level, min_size)
    return framer
