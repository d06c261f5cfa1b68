"""The in-memory engine: history and presence in this process, lost on exit.

The test double for the durable stores and the choice for ``--history memory``. Everything
happens without awaiting, so appends complete in call order. Streams (epoch + top offset)
outlive their publications: when retention drops every publication the position stays, so a
client that saw everything still recovers. A stream's meta is forgotten ``meta_ttl`` seconds
after its last publish (then a new epoch starts, which clients see as "not recovered").

**Global bound.** :class:`MemoryHistory` holds at most ``max_bytes`` across all channels, as
estimated by :func:`publication_cost` (data, tags and idempotency key plus the measured size
of the objects that hold them) and :func:`stream_cost`. Beyond it, the oldest publication of
all channels is evicted; streams (positions) stay, unless they alone take more than half of
``max_bytes``: then the stream published to (or created) the longest ago goes, with what it
holds. Eviction keeps publishing up for everyone (refusing appends would fail every channel's
publishes for one channel's flood) and never hides a loss: an evicted publication leaves a gap
below its stream's top, so recovery from a position before it says ``recovered: false``, and
an evicted stream starts a new epoch when it is next used. A publication kept under its
idempotency key counts twice while its stream also holds it (the estimate errs high). Streams
idle for ``meta_ttl`` are dropped as new ones come and appends happen, not only when they are
read again. So what the store holds is bounded in bytes and, through ``stream_cost``, in
number of streams; a flood of new streams cannot evict publications below half the bound.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition
from hubbub.engines.base import HistoryOptions

Clock = Callable[[], float]

#: Default of ``max_bytes`` (the setting ``memory_history_max_bytes``).
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
#: Bytes a stored publication takes besides its data and tags (its objects, the stream's
#: deque slot and the store's eviction entry; measured with tracemalloc: ~520 on CPython 3.11).
PUBLICATION_OVERHEAD: Final = 576
#: Bytes an idempotency key takes besides its text and its publication (~300 measured).
KEY_OVERHEAD: Final = 320
#: Bytes a stream takes besides its name (its object, epoch, empty deque and dicts: ~1,130).
STREAM_OVERHEAD: Final = 1152
#: Stale eviction entries tolerated before the eviction queue is compacted.
_COMPACT_SLACK: Final = 1024


def new_epoch() -> str:
    return secrets.token_hex(4)


def publication_cost(pub: Publication) -> int:
    """The bytes ``pub`` counts against the global bound while a stream holds it."""
    tags = sum(len(k) + len(v) + 120 for k, v in pub.tags.items()) if pub.tags else 0
    return PUBLICATION_OVERHEAD + len(pub.data) + tags


def stream_cost(channel: str) -> int:
    """The bytes the stream of ``channel`` counts against the global bound by itself."""
    return STREAM_OVERHEAD + len(channel)


#: (expires_at, publication, cost)
_Held = tuple[float, Publication, int]


@dataclass(slots=True, eq=False)
class _Stream:
    channel: str
    epoch: str
    touched: float
    top: int = 0
    size: int = 0
    cost: int = 0  # this stream and everything it holds, against the global bound
    items: deque[_Held] = field(default_factory=deque)  # oldest first
    keys: dict[str, _Held] = field(default_factory=dict)  # idempotency key -> held, by age


#: An eviction entry: (stored_at, stream, offset, idempotency key or None for the item).
_Entry = tuple[float, _Stream, int, str | None]


class MemoryHistory:
    """A :class:`hubbub.engines.base.HistoryStore` in process memory, bounded to
    ``max_bytes`` across channels (see the module docstring)."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        meta_ttl: float = 30 * 24 * 3600,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._clock = clock
        self._meta_ttl = meta_ttl
        self._max_bytes = max_bytes
        self._streams: OrderedDict[str, _Stream] = OrderedDict()  # least recently touched first
        self._order: deque[_Entry] = deque()  # held publications and keys, oldest first
        self._bytes = 0  # what everything held counts
        self._stream_bytes = 0  # what the streams count by themselves
        self._held = 0  # live entries of _order (the rest are stale)

    @property
    def bytes_held(self) -> int:
        """What the store holds now, as counted against ``max_bytes``."""
        return self._bytes

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- streams -------------------------------------------------------------------------

    def _stream(self, channel: str, now: float) -> _Stream:
        """The live stream of ``channel``; a new one (new epoch) when absent or expired."""
        stream = self._streams.get(channel)
        if stream is not None:
            if now - stream.touched <= self._meta_ttl:
                return stream
            self._drop_stream(stream)
        stream = _Stream(channel, new_epoch(), now, cost=stream_cost(channel))
        self._streams[channel] = stream
        self._bytes += stream.cost
        self._stream_bytes += stream.cost
        self._sweep(now)
        self._fit(stream)
        return stream

    def _touch(self, stream: _Stream, now: float) -> None:
        stream.touched = now
        self._streams.move_to_end(stream.channel)

    def _sweep(self, now: float) -> None:
        """Drop the streams idle for longer than ``meta_ttl`` (least recently touched first)."""
        while self._streams:
            oldest = next(iter(self._streams.values()))
            if now - oldest.touched <= self._meta_ttl:
                return
            self._drop_stream(oldest)

    def _drop_stream(self, stream: _Stream) -> None:
        del self._streams[stream.channel]
        self._bytes -= stream.cost
        self._stream_bytes -= stream_cost(stream.channel)
        self._held -= len(stream.items) + len(stream.keys)
        stream.items.clear()  # its eviction entries are stale from now on
        stream.keys.clear()

    # -- what a stream holds -------------------------------------------------------------

    def _hold(self, stream: _Stream, key: str | None, held: _Held, now: float) -> None:
        if key is None:
            stream.items.append(held)
        else:
            stream.keys[key] = held
        stream.cost += held[2]
        self._bytes += held[2]
        self._held += 1
        self._order.append((now, stream, held[1].offset, key))

    def _release(self, stream: _Stream, held: _Held) -> None:
        stream.cost -= held[2]
        self._bytes -= held[2]
        self._held -= 1

    def _trim(self, stream: _Stream, now: float) -> None:
        """Retention: the last ``size`` publications not past their TTL, and the keys whose
        window is open (keys are kept by age; a lookup checks the window itself)."""
        items = stream.items
        while items and (len(items) > stream.size or items[0][0] <= now):
            self._release(stream, items.popleft())
        keys = stream.keys
        while keys:
            key, held = next(iter(keys.items()))
            if held[0] > now:
                break
            self._release(stream, keys.pop(key))

    # -- the global bound ----------------------------------------------------------------

    def _live(self, entry: _Entry) -> bool:
        _, stream, offset, key = entry
        if self._streams.get(stream.channel) is not stream:
            return False
        if key is None:  # items leave from the front only, and offsets grow by one
            return bool(stream.items) and stream.items[0][1].offset <= offset
        held = stream.keys.get(key)
        return held is not None and held[1].offset == offset

    def _oldest(self) -> _Entry | None:
        """The oldest entry still held (stale ones before it are discarded)."""
        order = self._order
        while order and not self._live(order[0]):
            order.popleft()
        return order[0] if order else None

    def _fit(self, keep: _Stream) -> None:
        """Evict until within ``max_bytes``: the oldest publication or key, or the longest
        idle stream while streams take more than half (or nothing else is left). ``keep``
        (being written) is never dropped itself, though what it holds may be."""
        while self._bytes > self._max_bytes:
            idle = next(iter(self._streams.values()))
            entry = self._oldest()
            if idle is not keep and (entry is None or 2 * self._stream_bytes > self._max_bytes):
                self._drop_stream(idle)
            elif entry is not None:
                self._evict(entry)
            else:
                return

    def _evict(self, entry: _Entry) -> None:
        self._order.popleft()
        _, stream, _, key = entry
        if key is None:
            self._release(stream, stream.items.popleft())
        else:
            self._release(stream, stream.keys.pop(key))

    def _compact(self) -> None:
        """Drop stale eviction entries once they outnumber the live ones (amortised O(1))."""
        if len(self._order) > 2 * self._held + _COMPACT_SLACK:
            self._order = deque(entry for entry in self._order if self._live(entry))

    # -- the HistoryStore interface ------------------------------------------------------

    async def append(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions,
        idempotency_key: str | None = None,
    ) -> tuple[Publication, bool]:
        now = self._clock()
        stream = self._stream(channel, now)
        self._trim(stream, now)
        if idempotency_key is not None:
            seen = stream.keys.get(idempotency_key)
            if seen is not None and seen[0] > now:
                return seen[1], False
            if seen is not None:  # expired, not yet trimmed: re-added at the end
                self._release(stream, stream.keys.pop(idempotency_key))
        stream.top += 1
        stream.size = history.size
        self._touch(stream, now)
        stored = replace(pub, offset=stream.top, frame="", delta=False)
        cost = publication_cost(stored)
        self._hold(stream, None, (now + history.ttl, stored, cost), now)
        if idempotency_key is not None:
            held = (
                now + history.idempotency_ttl,
                stored,
                cost + KEY_OVERHEAD + len(idempotency_key),
            )
            self._hold(stream, idempotency_key, held, now)
        self._trim(stream, now)
        self._sweep(now)
        self._fit(stream)
        self._compact()
        return stored, True

    async def read(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        now = self._clock()
        stream = self._stream(channel, now)
        self._trim(stream, now)
        position = StreamPosition(stream.top, stream.epoch)
        if limit == 0:
            return HistoryResult([], position)
        pubs = [pub for _, pub, _ in stream.items]
        if since_offset is not None:
            if reverse:
                pubs = [p for p in pubs if p.offset < since_offset]
            else:
                pubs = [p for p in pubs if p.offset > since_offset]
        if reverse:
            pubs.reverse()
        if limit > 0:
            pubs = pubs[:limit]
        return HistoryResult(pubs, position)

    async def position(self, channel: str) -> StreamPosition:
        stream = self._stream(channel, self._clock())
        return StreamPosition(stream.top, stream.epoch)

    async def remove(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            self._drop_stream(stream)


class MemoryPresence:
    """Presence in process memory (see :class:`hubbub.engines.base.PresenceManager`)."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        # channel -> client id -> (expires_at, info)
        self._channels: dict[str, dict[str, tuple[float, ClientInfo]]] = {}

    def _live(self, channel: str) -> dict[str, tuple[float, ClientInfo]]:
        entries = self._channels.get(channel)
        if not entries:
            return {}
        now = self._clock()
        expired = [cid for cid, (exp, _) in entries.items() if exp <= now]
        for cid in expired:
            del entries[cid]
        if not entries:
            del self._channels[channel]
        return entries

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        self._channels.setdefault(channel, {})[info.client] = (self._clock() + ttl, info)

    async def remove(self, channel: str, client_id: str) -> None:
        entries = self._channels.get(channel)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._channels[channel]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return {cid: info for cid, (_, info) in self._live(channel).items()}

    async def stats(self, channel: str) -> tuple[int, int]:
        entries = self._live(channel)
        users = {info.user for _, info in entries.values() if info.user}
        return len(entries), len(users)
