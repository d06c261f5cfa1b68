"""The in-memory engine: history and presence in this process, lost on exit.

The test double for the durable stores and the choice for ``--history memory``. Everything
happens without awaiting, so appends complete in call order. Streams (epoch + top offset)
outlive their publications: when retention drops every publication the position stays, so a
client that saw everything still recovers. A stream's meta is forgotten ``meta_ttl`` seconds
after its last publish (then a new epoch starts, which clients see as "not recovered").
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition
from hubbub.engines.base import HistoryOptions

Clock = Callable[[], float]


def new_epoch() -> str:
    return secrets.token_hex(4)


@dataclass(slots=True)
class _Stream:
    epoch: str
    top: int = 0
    size: int = 0
    touched: float = 0.0
    # (expires_at, publication), oldest first
    items: deque[tuple[float, Publication]] = field(default_factory=deque)
    # idempotency key -> (expires_at, publication)
    keys: dict[str, tuple[float, Publication]] = field(default_factory=dict)

    def trim(self, now: float) -> None:
        items = self.items
        while items and (len(items) > self.size or items[0][0] <= now):
            items.popleft()
        if self.keys:
            for key in [k for k, (exp, _) in self.keys.items() if exp <= now]:
                del self.keys[key]


class MemoryHistory:
    """A :class:`hubbub.engines.base.HistoryStore` in process memory."""

    def __init__(self, *, clock: Clock = time.time, meta_ttl: float = 30 * 24 * 3600) -> None:
        self._clock = clock
        self._meta_ttl = meta_ttl
        self._streams: dict[str, _Stream] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _stream(self, channel: str, now: float) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None or now - stream.touched > self._meta_ttl:
            stream = self._streams[channel] = _Stream(epoch=new_epoch(), touched=now)
        return stream

    async def append(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions,
        idempotency_key: str | None = None,
    ) -> tuple[Publication, bool]:
        now = self._clock()
        stream = self._stream(channel, now)
        stream.trim(now)
        if idempotency_key is not None:
            seen = stream.keys.get(idempotency_key)
            if seen is not None:
                return seen[1], False
        stream.top += 1
        stream.size, stream.touched = history.size, now
        stored = replace(pub, offset=stream.top, raw=None)
        stream.items.append((now + history.ttl, stored))
        if idempotency_key is not None:
            stream.keys[idempotency_key] = (now + history.idempotency_ttl, stored)
        stream.trim(now)
        return stored, True

    async def read(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        now = self._clock()
        stream = self._stream(channel, now)
        stream.trim(now)
        position = StreamPosition(stream.top, stream.epoch)
        if limit == 0:
            return HistoryResult([], position)
        pubs = [pub for _, pub in stream.items]
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
        self._streams.pop(channel, None)


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
