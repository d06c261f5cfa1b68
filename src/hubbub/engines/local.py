"""The single-node broker: fan-out inside this process, streams in a :class:`HistoryStore`.

Delivery happens right after the store acknowledged the append, in the same coroutine and
without awaiting, so the store's ordering guarantee (appends complete in offset order) is the
delivery order. With several nodes, a broker on Redis or PostgreSQL replaces this one.
"""

from __future__ import annotations

from dataclasses import replace

from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition
from hubbub.engines.base import BrokerHandler, HistoryOptions, HistoryStore


class LocalBroker:
    """A :class:`hubbub.engines.base.Broker` for one process."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self._handler: BrokerHandler | None = None

    def register(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def publish(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions | None,
        idempotency_key: str | None = None,
    ) -> Publication:
        if history is not None and history.enabled:
            stored, new = await self.store.append(channel, pub, history, idempotency_key)
            if not new:
                return stored
            if stored.frame != pub.frame or stored.delta != pub.delta:  # (stores keep neither)
                stored = replace(stored, frame=pub.frame, delta=pub.delta)
            pub = stored
        if self._handler is not None:
            self._handler.handle_publication(channel, pub)
        return pub

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        if self._handler is not None:
            self._handler.handle_join(channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        if self._handler is not None:
            self._handler.handle_leave(channel, info)

    async def control(self, message: str) -> None:
        """No other node to reach."""
        return None

    async def history(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        return await self.store.read(
            channel, since_offset=since_offset, limit=limit, reverse=reverse
        )

    async def position(self, channel: str) -> StreamPosition:
        return await self.store.position(channel)

    async def remove_history(self, channel: str) -> None:
        await self.store.remove(channel)
