"""The event outbox: events waiting for delivery to a target, and channel occupancy.

A store of small JSON events (the webhooks' outbox, :mod:`hubbub.webhooks.emitter`) kept in
the engine's store: SQLite (:mod:`hubbub.engines.sqlite_events`), PostgreSQL
(:mod:`hubbub.engines.pg_events`), Redis (:mod:`hubbub.engines.redis_events`), or memory
(:class:`MemoryEventOutbox`, lost on restart). Every implementation passes
``tests/contract/test_event_outbox.py``. Guarantees every :class:`EventOutbox` gives:

- **Added means stored.** ``add`` returns once the events are as durable as the store makes
  them (SQLite and PostgreSQL: committed; Redis: as its persistence is configured). An event
  is kept per ``(target, id)``: adding it again changes nothing.
- **Claims are leases.** ``claim`` returns at most ``limit`` of a target's events that are due
  (``due <= now``), oldest due first, and makes them due again only at ``now + lease``: two
  claims that overlap in time never return the same event, and an event claimed by a node
  that died comes back after its lease. ``ack`` deletes events; ``retry`` makes them due at
  ``due`` and counts one more attempt.
- **Occupancy transitions are atomic.** Memberships are ``(channel, node)`` pairs.
  ``occupy`` adds one and writes ``events`` to the outbox in the same atomic step if, and
  only if, the channel had no membership of any node before; ``vacate`` removes one and
  writes ``events`` if, and only if, it was there and none is left. So with several nodes each
  transition's event is written once, by one of them. ``events`` may be a function making
  them (:data:`TransitionEvents`): SQLite, PostgreSQL and memory call it inside the atomic
  step, with the channel locked, so the time of a channel's events follows the order in which
  the store applied its transitions, whichever node made them (Redis calls it just before
  its script: the order holds there up to that round trip).
- **Node liveness.** ``alive(node, until)`` says the node lives until then; ``dead_nodes``
  lists the nodes whose time passed, ``channels_of`` a node's memberships, ``forget_node``
  removes a node without memberships. A node that dies has its memberships vacated by
  another (``vacate`` for each, as the node itself would).
- **Failures are StoreError.**
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeAlias


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One event for one target: ``payload`` is its JSON text, ``created`` (seconds since
    1970) when it was made, ``attempts`` the deliveries tried so far."""

    target: str
    id: str
    payload: str
    created: float
    attempts: int = 0


#: An occupancy transition's events, or a function making them (with their time) when called.
TransitionEvents: TypeAlias = Sequence[OutboxEvent] | Callable[[], Sequence[OutboxEvent]]


def made(events: TransitionEvents) -> Sequence[OutboxEvent]:
    """The events of a transition (``events`` called if it is a function)."""
    return events() if callable(events) else events


class EventOutbox(Protocol):
    """See the module docstring."""

    #: Whether events survive a restart of the process.
    durable: bool

    async def open(self) -> None:
        """Create what the store needs (called once the engine is open)."""
        ...

    async def add(self, events: Sequence[OutboxEvent], due: float) -> None: ...

    async def claim(
        self, target: str, limit: int, now: float, lease: float
    ) -> list[OutboxEvent]: ...

    async def ack(self, target: str, ids: Sequence[str]) -> None: ...

    async def retry(self, target: str, ids: Sequence[str], due: float) -> None: ...

    async def depth(self, target: str) -> int:
        """Events of ``target`` in the outbox (due or not)."""
        ...

    async def occupy(
        self, channel: str, node: str, events: TransitionEvents, due: float
    ) -> bool: ...

    async def vacate(
        self, channel: str, node: str, events: TransitionEvents, due: float
    ) -> bool: ...

    async def alive(self, node: str, until: float) -> None: ...

    async def dead_nodes(self, now: float) -> list[str]: ...

    async def channels_of(self, node: str) -> list[str]: ...

    async def forget_node(self, node: str) -> None: ...


class MemoryEventOutbox:
    """An :class:`EventOutbox` in this process: gone when it stops (``durable`` is False)."""

    durable = False

    def __init__(self) -> None:
        # target -> id -> (event, due)
        self._events: dict[str, dict[str, tuple[OutboxEvent, float]]] = {}
        self._members: dict[str, set[str]] = {}  # channel -> nodes
        self._channels: dict[str, set[str]] = {}  # node -> channels
        self._alive: dict[str, float] = {}

    async def open(self) -> None:
        return None

    def _put(self, events: Sequence[OutboxEvent], due: float) -> None:
        for event in events:
            self._events.setdefault(event.target, {}).setdefault(event.id, (event, due))

    async def add(self, events: Sequence[OutboxEvent], due: float) -> None:
        self._put(events, due)

    async def claim(self, target: str, limit: int, now: float, lease: float) -> list[OutboxEvent]:
        events = self._events.get(target, {})
        ready = sorted((due, e.created, e.id) for e, due in events.values() if due <= now)
        out = []
        for _, _, eid in ready[:limit]:
            event = events[eid][0]
            events[eid] = (event, now + lease)
            out.append(event)
        return out

    async def ack(self, target: str, ids: Sequence[str]) -> None:
        events = self._events.get(target, {})
        for eid in ids:
            events.pop(eid, None)

    async def retry(self, target: str, ids: Sequence[str], due: float) -> None:
        events = self._events.get(target, {})
        for eid in ids:
            if eid in events:
                event = events[eid][0]
                events[eid] = (replace(event, attempts=event.attempts + 1), due)

    async def depth(self, target: str) -> int:
        return len(self._events.get(target, ()))

    async def occupy(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        nodes = self._members.setdefault(channel, set())
        first = not nodes
        if node in nodes:
            return False
        nodes.add(node)
        self._channels.setdefault(node, set()).add(channel)
        if first:
            self._put(made(events), due)
        return first

    async def vacate(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        nodes = self._members.get(channel)
        self._channels.get(node, set()).discard(channel)
        if nodes is None or node not in nodes:
            return False
        nodes.discard(node)
        if nodes:
            return False
        del self._members[channel]
        self._put(made(events), due)
        return True

    async def alive(self, node: str, until: float) -> None:
        self._alive[node] = until

    async def dead_nodes(self, now: float) -> list[str]:
        return sorted(node for node, until in self._alive.items() if until <= now)

    async def channels_of(self, node: str) -> list[str]:
        return sorted(self._channels.get(node, ()))

    async def forget_node(self, node: str) -> None:
        if not self._channels.get(node):
            self._channels.pop(node, None)
            self._alive.pop(node, None)
