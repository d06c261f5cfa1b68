"""What a node tells its webhooks (``node.events``): the facts, written to the outbox.

The dialects call :class:`Events` (connect, disconnect, subscribe, unsubscribe, whatever the
wire); the node itself reports channel occupancy (:meth:`Events.channel_used`,
:meth:`Events.channel_unused`: its first member of a channel came, its last left, for every
kind of member) and accepted publications. With ``webhook_url`` unset every method returns at
once and nothing is kept.

Guarantees:

- **Written before it is acknowledged.** ``connected``, ``disconnected``, ``subscribed``,
  ``unsubscribed`` and ``published`` return once the event is in the outbox (committed, with
  a durable one), so the caller orders them with what it does next. The window left: an
  event is written right after its fact (the connect reply posted, the connection gone, the
  subscription live), so a ``kill -9`` between the two loses it; and the connections of a
  node that is killed get no ``disconnect``/``unsubscribe`` events at all (their channels do
  get ``channel_vacated``, from another node or the next start).
- **Only what completed.** Disconnect events come only for connections whose connect event
  was made (a completed connect), once each.
- **Occupancy once per transition, cluster-wide.** Channel use is handed to one worker that
  applies this node's membership (``occupy``/``vacate`` of :mod:`hubbub.engines.eventoutbox`,
  atomic, writing the event in the same step, and making it there: its ``time`` is that of
  the step, so a channel's events are timed in the order the store applied them, whichever
  node made them) in order per channel; a channel that is left
  and taken again before the worker gets to it makes no events (nothing changed). Every
  :data:`node_ttl` / 3 seconds the node renews its liveness and vacates the memberships of
  nodes whose liveness ran out (a node killed, or the previous run of this one).
- **Bounded.** The outbox holds about ``webhook_outbox_size`` events of a target at most (the
  depth last read plus what was added since); an event beyond is dropped, counted
  (``dropped["full"]``) and logged with its id and type. An event the outbox refused (a
  store failure) is counted (``dropped["store"]``) and logged the same way; the fact itself
  goes on (a connect is not refused for it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Final

from hubbub import periodic
from hubbub.bounded import bounded, stop_tasks
from hubbub.channeloptions import ChannelOptions
from hubbub.config import Settings
from hubbub.core.types import ClientInfo, Publication
from hubbub.engines.eventoutbox import EventOutbox, MemoryEventOutbox, OutboxEvent
from hubbub.errors import StoreError
from hubbub.webhooks import events as ev
from hubbub.webhooks.delivery import Deliverer, Target, webhook_target

log = logging.getLogger(__name__)

#: Seconds the occupancy worker gets at stop to apply what is left.
FLUSH_TIMEOUT: Final = 1.0
#: Seconds the background loops get to end once cancelled.
STOP_TIMEOUT: Final = 1.0


class Events:
    """See the module docstring."""

    def __init__(
        self, settings: Settings, outbox: EventOutbox | None, node: str, *, targets: list[Target]
    ) -> None:
        self.node = node
        self.settings = settings
        self.targets = targets
        self.enabled = bool(targets)
        self.outbox: EventOutbox = outbox or MemoryEventOutbox()
        self.types = frozenset(settings.webhook_events)
        #: Events written to the outbox, by type.
        self.emitted: Counter[str] = Counter()
        #: Events not delivered, by reason: ``full``, ``store`` (here), ``max_age``.
        self.dropped: Counter[str] = Counter()
        self.deliverers = [
            Deliverer(
                self.outbox,
                target,
                timeout=settings.webhook_timeout,
                batch_size=settings.webhook_batch_size,
                max_backoff=settings.webhook_max_backoff,
                max_age=settings.webhook_max_age,
                concurrency=settings.webhook_concurrency,
                dropped=self.dropped,
            )
            for target in targets
        ]
        self._connected: set[str] = set()
        self._occupancy = self.enabled and bool(
            self.types & {ev.CHANNEL_OCCUPIED, ev.CHANNEL_VACATED}
        )
        self._want: dict[str, bool] = {}  # channels whose use changed, not applied yet
        self._held: set[str] = set()  # channels this node holds a membership of
        self._dirty = asyncio.Event()
        self._settled = asyncio.Event()  # set while every change is applied
        self._settled.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @classmethod
    def of(cls, settings: Settings, outbox: EventOutbox | None, node: str) -> Events:
        """The node's events: off without ``webhook_url``."""
        targets = []
        if settings.webhook_url and settings.webhook_secret:
            targets.append(webhook_target(settings.webhook_url, settings.webhook_secret))
        return cls(settings, outbox, node, targets=targets)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outbox and start delivering (the engine is open)."""
        if not self.enabled:
            return
        if not self.outbox.durable:
            log.warning(
                "webhooks: the outbox is in memory (memory history, local engine): events "
                "not delivered yet are lost when hubbub stops"
            )
        await self.outbox.open()
        self._started = True
        loop = asyncio.get_running_loop()
        for deliverer in self.deliverers:
            deliverer.start()
        if self._occupancy:
            await self.outbox.alive(self.node, time.time() + self.settings.webhook_node_ttl)
            self._tasks.append(loop.create_task(self._apply_forever()))
            beat = self.settings.webhook_node_ttl / 3
            reaper = periodic.every(beat, self._renew_and_reap, "webhooks: node liveness")
            self._tasks.append(loop.create_task(reaper))

    async def stop(self) -> None:
        """Apply the occupancy changes left (bounded), stop delivering; give up this node's
        liveness, so another node (or the next start) vacates what it still holds."""
        if not self._started:
            return
        self._started = False
        try:
            await self._stop()
        except Exception:  # (the engines close after this, whatever happened here)
            log.exception("webhooks: stopping failed")

    async def _stop(self) -> None:
        if self._occupancy and self._tasks:
            await bounded(self._settled.wait(), FLUSH_TIMEOUT, "webhooks: the occupancy flush")
        await stop_tasks(self._tasks, STOP_TIMEOUT, "webhook loop")
        self._tasks = []
        for deliverer in self.deliverers:
            await deliverer.stop()
        if self._occupancy:
            try:
                await self.outbox.alive(self.node, 0.0)
                await self.outbox.forget_node(self.node)
            except StoreError as exc:
                log.warning("webhooks: could not withdraw this node: %s", exc)

    # -- facts -------------------------------------------------------------------------------

    async def connected(self, client: ClientInfo) -> None:
        if self.enabled:
            self._connected.add(client.client)
            await self._emit(ev.CONNECT, client=client)

    async def disconnected(self, client: ClientInfo, code: int, reason: str) -> None:
        if self.enabled and client.client in self._connected:
            self._connected.discard(client.client)
            await self._emit(ev.DISCONNECT, client=client, code=code, reason=reason)

    async def subscribed(self, channel: str, client: ClientInfo) -> None:
        if self.enabled:
            await self._emit(ev.SUBSCRIBE, client=client, channel=channel)

    async def unsubscribed(self, channel: str, client: ClientInfo) -> None:
        if self.enabled:
            await self._emit(ev.UNSUBSCRIBE, client=client, channel=channel)

    async def published(self, channel: str, pub: Publication, options: ChannelOptions) -> None:
        """A publication this node accepted (stored, handed to fan-out)."""
        if self.enabled and (options.webhook_publish or ev.PUBLISH in self.types):
            client = pub.info
            await self._emit(
                ev.PUBLISH, ev.publication_id(channel, pub), client=client, channel=channel, pub=pub
            )

    # (Placeholders of the Pusher webhooks, being written: the session calls them.)
    async def pusher_member_added(self, channel: str, user_id: str) -> None:
        return None

    async def pusher_member_removed(self, channel: str, user_id: str) -> None:
        return None

    async def pusher_client_event(
        self, channel: str, event: str, data: str, socket_id: str, user_id: str | None
    ) -> None:
        return None

    async def pusher_cache_miss(self, channel: str) -> None:
        return None

    def channel_used(self, channel: str) -> None:
        """This node's first member of ``channel`` came (does not wait)."""
        if self._occupancy:
            self._want[channel] = True
            self._settled.clear()
            self._dirty.set()

    def channel_unused(self, channel: str) -> None:
        """This node's last member of ``channel`` left (does not wait)."""
        if self._occupancy:
            self._want[channel] = False
            self._settled.clear()
            self._dirty.set()

    # -- writing -----------------------------------------------------------------------------

    def _make(
        self,
        kind: str,
        event_id: str | None = None,
        *,
        client: ClientInfo | None = None,
        channel: str | None = None,
        code: int | None = None,
        reason: str | None = None,
        pub: Publication | None = None,
    ) -> list[OutboxEvent]:
        now = time.time()
        eid = event_id or uuid.uuid4().hex
        payload = ev.event_json(
            kind,
            eid,
            int(now * 1000),
            self.node,
            client=client,
            channel=channel,
            code=code,
            reason=reason,
            pub=pub,
        )
        return [
            OutboxEvent(t.name, eid, payload, now) for t in self.targets if t.accepts(kind, channel)
        ]

    def _room(self, events: list[OutboxEvent], kind: str) -> list[OutboxEvent]:
        """The events that fit (``webhook_outbox_size``); the others are dropped, logged."""
        depth = {d.target.name: d.depth for d in self.deliverers}
        out = []
        for event in events:
            if depth[event.target] >= self.settings.webhook_outbox_size:
                self._lost(event, kind, "full", "the outbox is full (webhook_outbox_size)")
            else:
                out.append(event)
        return out

    def _lost(self, event: OutboxEvent, kind: str, reason: str, why: str) -> None:
        self.dropped[reason] += 1
        log.error("webhooks: event %s (%s) dropped: %s", event.id, kind, why)

    async def _emit(
        self,
        kind: str,
        event_id: str | None = None,
        *,
        client: ClientInfo | None = None,
        channel: str | None = None,
        code: int | None = None,
        reason: str | None = None,
        pub: Publication | None = None,
    ) -> None:
        if kind not in self.types and kind != ev.PUBLISH:
            return
        made = self._make(
            kind, event_id, client=client, channel=channel, code=code, reason=reason, pub=pub
        )
        events = self._room(made, kind)
        if not events:
            return
        try:
            await self.outbox.add(events, time.time())
        except StoreError as exc:
            for event in events:
                self._lost(event, kind, "store", f"the outbox failed: {exc}")
            return
        self._written(kind, events)

    def _written(self, kind: str, events: list[OutboxEvent]) -> None:
        self.emitted[kind] += 1
        names = {e.target for e in events}
        for deliverer in self.deliverers:
            if deliverer.target.name in names:
                deliverer.depth += 1
                deliverer.wake()

    # -- occupancy ---------------------------------------------------------------------------

    def _transition(
        self, kind: str, channel: str
    ) -> tuple[list[OutboxEvent], Callable[[], list[OutboxEvent]]]:
        """A transition's events as they would be made now (for the room check and the
        counts), and a function the outbox calls in its atomic step to make them again with
        the same id and targets and the time of that step (a channel's events are timed in
        the order the store applied them, whichever node made them)."""
        if kind not in self.types:
            return [], list
        early = self._room(self._make(kind, channel=channel), kind)
        if not early:
            return [], list
        eid, names = early[0].id, {e.target for e in early}

        def stamp() -> list[OutboxEvent]:
            return [e for e in self._make(kind, eid, channel=channel) if e.target in names]

        return early, stamp

    async def _apply_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            while self._want:
                channel = next(iter(self._want))
                want = self._want.pop(channel)
                try:
                    await self._apply(channel, want)
                except Exception as exc:  # (StoreError, or a bug: the worker goes on)
                    log.warning(
                        "webhooks: occupancy of %s not recorded yet: %s",
                        channel,
                        exc,
                        exc_info=not isinstance(exc, StoreError),
                    )
                    self._want.setdefault(channel, want)
                    await asyncio.sleep(1.0)
            self._settled.set()

    async def _apply(self, channel: str, want: bool) -> None:
        if want == (channel in self._held):
            return
        if want:
            events, stamp = self._transition(ev.CHANNEL_OCCUPIED, channel)
            changed = await self.outbox.occupy(channel, self.node, stamp, time.time())
            self._held.add(channel)
        else:
            events, stamp = self._transition(ev.CHANNEL_VACATED, channel)
            changed = await self.outbox.vacate(channel, self.node, stamp, time.time())
            self._held.discard(channel)
        if changed and events:
            self._written(ev.CHANNEL_OCCUPIED if want else ev.CHANNEL_VACATED, events)

    async def _renew_and_reap(self) -> None:
        """Renew this node's liveness; vacate what the nodes gone hold."""
        await self.outbox.alive(self.node, time.time() + self.settings.webhook_node_ttl)
        for node in await self.outbox.dead_nodes(time.time()):
            if node != self.node:
                await self._reap(node)

    async def _reap(self, node: str) -> None:
        """Vacate the memberships of ``node``, which is gone."""
        channels = await self.outbox.channels_of(node)
        vacated = 0
        for channel in channels:
            events, stamp = self._transition(ev.CHANNEL_VACATED, channel)
            if await self.outbox.vacate(channel, node, stamp, time.time()):
                vacated += 1
                if events:
                    self._written(ev.CHANNEL_VACATED, events)
        await self.outbox.forget_node(node)
        if channels:
            log.info(
                "webhooks: node %s is gone: %d of its %d channels vacated",
                node,
                vacated,
                len(channels),
            )
