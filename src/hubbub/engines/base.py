"""The engine interfaces. Every implementation passes ``tests/contract/``.

Guarantees every :class:`Broker` gives:

- **One order per channel.** Publications of one channel reach the registered handler in the
  order of their offsets; each history-enabled publication gets ``offset = previous + 1``
  within the stream's epoch.
- **Append and fan-out are atomic per channel.** A publication that is in history has been, or
  will be, handed to the handler of every node subscribed to the channel; none is delivered
  that is not in history (for history-enabled publishes).
- **The epoch changes whenever continuity is lost** (history removed, stream expired): a
  position from the old epoch can then never be taken for a position in the new one.
- **Failures are StoreError.** Backend exceptions are translated; a publish that raised was not
  acknowledged and may or may not have been delivered (at-most-once fan-out).
- Handler calls never await and never raise into the broker.
- **Control messages** (:meth:`Broker.control`) reach every node connected to the engine
  when they are sent, whatever channels it subscribed to; at most once, like publications.
- A broker that fans out between nodes hands over only channels subscribed to (from the return
  of ``subscribe`` to the return of ``unsubscribe``); the local broker hands over everything
  and the node keeps what its members subscribed to.

Guarantees every :class:`HistoryStore` gives:

- **Acknowledged means stored.** ``append`` returns only once the publication is as durable as
  the store can make it (SQLite and PostgreSQL: committed).
- **Order.** Appends to one channel get ``offset = previous + 1`` and complete in that order
  (their awaits resume in offset order), so a broker that delivers right after ``append``
  delivers in offset order. Offsets survive restarts of durable stores.
- **Idempotency.** An append carrying an ``idempotency_key`` already seen in the channel within
  its window returns the original publication and ``False``; nothing new is stored.
- **Retention.** Reads never return publications past their TTL or beyond the channel's size;
  the stream position outlives them (until ``meta_ttl``), so a client that saw everything can
  still recover.
- **Failures are StoreError**, raised from the call that failed; the store keeps trying to
  reconnect on later calls.

Guarantees every :class:`PresenceManager` gives: an entry added with ``ttl`` disappears after
``ttl`` seconds unless added again (refreshed); ``presence`` and ``stats`` never list expired
entries; ``stats`` counts distinct non-empty user ids (anonymous connections count as clients
only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition

#: The longest idempotency key a publish may carry, in characters: the durable stores index
#: the keys (PostgreSQL's btree refuses entries above ~2.7 KB, and a refused append fails the
#: other appends of its group commit), so longer keys are refused before they reach a store.
MAX_IDEMPOTENCY_KEY: Final = 255


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    """Retention of one publish: keep the last ``size`` publications for ``ttl`` seconds, and
    remember idempotency keys for ``idempotency_ttl`` seconds."""

    size: int
    ttl: float
    idempotency_ttl: float = 300.0

    @property
    def enabled(self) -> bool:
        return self.size > 0 and self.ttl > 0


class BrokerHandler(Protocol):
    """What a broker calls on the node for channels the node subscribed to."""

    def handle_publication(self, channel: str, pub: Publication) -> None: ...

    def handle_join(self, channel: str, info: ClientInfo) -> None: ...

    def handle_leave(self, channel: str, info: ClientInfo) -> None: ...

    def handle_control(self, message: str) -> None:
        """A control message some node sent with :meth:`Broker.control` (this node's own
        included, where the engine loops them back)."""
        ...

    def handle_resync(self) -> None:
        """The broker's subscriptions were re-established after a failure: publications may
        have been missed, so local subscribers must recover."""
        ...


class Broker(Protocol):
    """Fan-out of publications between nodes, and the channel streams (history)."""

    def register(self, handler: BrokerHandler) -> None:
        """Set the node's handler; called once before anything else."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Start receiving the channel's publications (the node's first local subscriber)."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving them (the node's last local subscriber left)."""
        ...

    async def open(self) -> None:
        """Connect, create or upgrade schemas, start background work."""
        ...

    async def close(self) -> None: ...

    async def publish(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions | None,
        idempotency_key: str | None = None,
    ) -> Publication:
        """Append to the stream when ``history`` is enabled, fan out, return the publication
        as delivered (with its offset). A repeated ``idempotency_key`` (history channels only)
        returns the original publication and delivers nothing."""
        ...

    async def publish_join(self, channel: str, info: ClientInfo) -> None: ...

    async def control(self, message: str) -> None:
        """Send ``message`` to the handler of every other node connected to the engine
        (at most once, in the order sent by this node); returns once it is sent. Engines that
        connect no other nodes do nothing."""
        ...

    async def publish_leave(self, channel: str, info: ClientInfo) -> None: ...

    async def history(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        """Read the stream. ``since_offset``: only publications after it (before it when
        ``reverse``). ``limit``: at most that many; 0 reads only the position; -1 all."""
        ...

    async def position(self, channel: str) -> StreamPosition:
        """The stream's top offset and epoch (a new stream gets a fresh epoch)."""
        ...

    async def remove_history(self, channel: str) -> None:
        """Drop the stream; the next position has a new epoch."""
        ...


class HistoryStore(Protocol):
    """Durable channel streams; see the module docstring for the guarantees."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def append(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions,
        idempotency_key: str | None = None,
    ) -> tuple[Publication, bool]:
        """Store ``pub``; return it with its offset and whether it is new."""
        ...

    async def read(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        """As :meth:`Broker.history`."""
        ...

    async def position(self, channel: str) -> StreamPosition: ...

    async def remove(self, channel: str) -> None: ...


# -- optional capabilities: a broker has them or not (checked with isinstance) -----------


@runtime_checkable
class Announcing(Protocol):
    """A broker that connects nodes tells the cluster about this node: ``announce`` stores its
    snapshot for a few seconds (the node repeats it every second); ``withdraw`` removes it at
    once (a node that stops cleanly; a failure is left to the snapshot's expiry). Neither
    raises."""

    async def announce(self, uid: str, snapshot: dict[str, Any]) -> None: ...

    async def withdraw(self, uid: str) -> None: ...


@runtime_checkable
class Clustered(Protocol):
    """A broker that knows the other nodes: ``nodes`` lists the live ones' snapshots."""

    async def nodes(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class Monitored(Protocol):
    """A broker with a connection to watch: whether it is up, how often it failed and came
    back (``/health``, ``/metrics``)."""

    connected: bool
    errors: int
    reconnects: int


class PresenceManager(Protocol):
    """Who is subscribed to a channel, across nodes."""

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None: ...

    async def remove(self, channel: str, client_id: str) -> None: ...

    async def presence(self, channel: str) -> dict[str, ClientInfo]: ...

    async def stats(self, channel: str) -> tuple[int, int]:
        """``(num_clients, num_users)``."""
        ...
