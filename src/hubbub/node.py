"""The node: owns the live connections, the channel memberships and the engines.

The node is the one place where the pure registry, the engines and the connections meet.
Edges attach connections; dialects add members to channels and publish; the broker hands
publications back through :meth:`Node.handle_publication`, which fans them out.

Fan-out guarantees (DESIGN.md §5): a publication is encoded at most once per wire format
(:class:`hubbub.wire.Wire`: each member carries its own) and the same object is posted to
every member of that wire; posting never awaits, so one slow member delays no one (its
transport cuts it off instead). The node knows no wire format itself.

Subscribing with a catch-up (recovery, history position) is race-free: the member is first
*pending* — publications arriving meanwhile are buffered for it — and :meth:`activate` then
delivers the buffered ones that come after what the member already got, and makes it a live
member, all without awaiting.

Members that negotiated delta compression get the delta forms of their wire instead
(:mod:`hubbub.delta`: one delta per publication, one message per wire and form).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any, Final

from hubbub import __version__, control, fanout
from hubbub.auth import TokenVerifier
from hubbub.bounded import stop_tasks
from hubbub.config import ChannelOptions, Settings
from hubbub.control import Control, ControlledClient
from hubbub.core.channels import ChannelRules
from hubbub.core.publishlatency import PublishLatency, Source
from hubbub.core.ratelimit import Limits
from hubbub.core.registry import Registry
from hubbub.core.streams import Streams
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication
from hubbub.delta import Deltas, Negotiated
from hubbub.engines.base import Announcing, Broker, Clustered, HistoryOptions, PresenceManager
from hubbub.engines.eventoutbox import EventOutbox
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory, MemoryPresence
from hubbub.errors import ClientError, StoreError
from hubbub.member import Member as Member
from hubbub.presencekeeper import PresenceKeeper
from hubbub.proxy.caller import ProxyCaller
from hubbub.pushersettings import cache_options, implicit_namespaces
from hubbub.survey import Surveys
from hubbub.transport import Transport
from hubbub.webhooks.emitter import Events
from hubbub.wire import Wire

log = logging.getLogger(__name__)

GOING_AWAY: Final = (1001, "going away")
#: Seconds between two announcements of this node to the cluster.
ANNOUNCE_INTERVAL: Final = 1.0
#: Seconds after a subscribe within which publications its reply covered may still arrive
#: from the broker (they are skipped for that member; see Node.activate).
CATCH_UP_WINDOW: Final = 5.0
#: Seconds :meth:`Node.stop` waits for its background loops to end once cancelled.
BACKGROUND_STOP_TIMEOUT: Final = 2.0


class Node:
    """Connections and channels of one hubbub process."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        broker: Broker | None = None,
        presence: PresenceManager | None = None,
        outbox: EventOutbox | None = None,
    ) -> None:
        self.settings = settings or Settings()
        namespaces = list(self.settings.namespaces)
        if self.settings.demos:
            from hubbub.demos import demo_namespaces

            namespaces += demo_namespaces(self.settings.namespaces)
        names = [ns.name for ns in namespaces]
        namespaces += implicit_namespaces(self.settings.pusher_apps, names)
        apps = self.settings.pusher_apps
        self.rules = ChannelRules(self.settings.channel, namespaces, cache_options(apps))
        self.broker: Broker = broker or LocalBroker(MemoryHistory())
        self.presence: PresenceManager = presence or MemoryPresence()
        self.broker.register(self)
        self.tokens = TokenVerifier(self.settings)
        self.proxy = ProxyCaller(self.settings)  # the HTTP proxy's calls (hubbub.proxy)
        #: The rate limits every connection of this node shares (one object for all).
        self.limits = Limits.of(self.settings)
        self.uid = str(uuid.uuid4())
        #: What the node and its dialects tell the webhooks (off without webhook_url).
        self.events = Events.of(self.settings, outbox, self.uid)
        self._connections: dict[str, tuple[Transport, tuple[int, str]]] = {}
        self._clients: dict[str, ControlledClient] = {}
        self._users: dict[str, set[str]] = {}
        self._members: Registry[Member] = Registry()
        self._pending: dict[str, dict[Member, list[Publication]]] = {}
        # Each channel's newest offset handed over, and the members catching up to it.
        self._streams: Streams[Member] = Streams()
        # Members with a tags filter, per channel (channels without any are not here).
        self._filters: dict[str, dict[Member, Filter]] = {}
        self._deltas = Deltas()  # members that negotiated delta compression, per channel
        # Control commands from other nodes, applied one after another in arrival order.
        #: Questions to every node and their answers (the server API's ``connections``).
        self.surveys = Surveys(
            self.uid, self.broker.control, lambda op, params: control.answer(self, op, params)
        )
        self.controls = control.Inbox(self, self.surveys)
        # Channels subscribed at the broker; the future completes when the subscription is
        # in place, so that a second subscriber never reads a position before it is.
        self._upstream: dict[str, asyncio.Future[None]] = {}
        self._presence_keeper = PresenceKeeper(self.presence, self.settings.presence_ttl)
        self._presence_task: asyncio.Task[None] | None = None
        self._position_task: asyncio.Task[None] | None = None
        self._announce_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.closing = False
        self.publications = 0
        self.deliveries = 0
        #: How long publishes take, per source (``hubbub_publish_duration_seconds``).
        self.publish_latency = PublishLatency()
        #: Publications a wire could not encode (skipped for that wire's members).
        self.encode_failures = 0
        #: Gaps seen in channels' offsets (publications lost between the engine and here).
        self.gaps = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the engines and start background work (presence refresh, announcing this
        node to the cluster when the broker connects nodes)."""
        await self.broker.open()
        await self.events.start()
        loop = asyncio.get_running_loop()
        if self._presence_task is None:
            self._presence_task = loop.create_task(self._presence_keeper.refresh_forever())
        if isinstance(self.broker, Announcing) and self._announce_task is None:
            self._announce_task = loop.create_task(self._announce_forever(self.broker))
        delay = self.settings.channel_position_check_delay
        if isinstance(self.broker, Clustered) and delay and self._position_task is None:
            from hubbub.positioncheck import check_positions_forever

            self._position_task = loop.create_task(check_positions_forever(self, delay))

    async def stop(self) -> None:
        """Stop background work and the engines; the cluster learns at once it is gone.

        The background loops are cancelled until they end, at most
        :data:`BACKGROUND_STOP_TIMEOUT` seconds (:func:`hubbub.bounded.stop_tasks`: an engine
        command can swallow a cancellation); the engines' own close is not bounded here
        (:func:`hubbub.server.lifecycle.node_running` bounds the whole stop, for ``hubbub
        serve`` and ``hub.running()`` alike)."""
        await self.controls.stop()
        announced = self._announce_task is not None
        background = (self._presence_task, self._announce_task, self._position_task)
        await stop_tasks(
            [task for task in background if task is not None],
            BACKGROUND_STOP_TIMEOUT,
            "node background loop",
        )
        self._presence_task = self._announce_task = self._position_task = None
        if announced and isinstance(self.broker, Announcing):
            await self.broker.withdraw(self.uid)
        await self.events.stop()
        await self.proxy.close()
        await self.broker.close()

    # -- connections ---------------------------------------------------------------------

    def attach(self, conn: Transport, shutdown: tuple[int, str] = GOING_AWAY) -> None:
        """Register a connection; ``shutdown`` is the close code and reason it gets when the
        server stops."""
        self._connections[conn.id] = (conn, shutdown)

    def detach(self, conn: Transport) -> None:
        self._connections.pop(conn.id, None)

    def connections(self) -> Iterable[Transport]:
        return tuple(conn for conn, _ in self._connections.values())

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def close_all(self) -> None:
        """Start closing every connection with its shutdown code (server stop)."""
        self.closing = True
        for conn, (code, reason) in tuple(self._connections.values()):
            conn.close(code, reason)

    # -- the cluster view ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This node as the server API's ``info`` shows it, plus its channels."""
        return {
            "uid": self.uid,
            "name": f"{socket.gethostname()}:{os.getpid()}",
            "version": __version__,
            "num_clients": self.client_count,
            "num_users": self.user_count,
            "num_channels": self._members.channel_count(),
            "num_subs": self.subscription_count(),
            "num_connections": self.connection_count,
            "uptime": int(time.time() - self.started_at),
            "channels": {c: self.subscriber_count(c) for c in self._members.channels()},
        }

    async def cluster(self) -> list[dict[str, Any]]:
        """Every live node's snapshot (just this one without a cluster broker)."""
        if not isinstance(self.broker, Clustered):
            return [self.snapshot()]
        nodes = await self.broker.nodes()
        mine = self.snapshot()
        return [mine, *(n for n in nodes if n.get("uid") != self.uid)]

    async def _announce_forever(self, broker: Announcing) -> None:
        while True:
            await broker.announce(self.uid, self.snapshot())
            await asyncio.sleep(ANNOUNCE_INTERVAL)

    # -- connected clients (for the server API) -----------------------------------------

    def register_client(self, client: ControlledClient) -> None:
        self._clients[client.client_id] = client
        self._users.setdefault(client.user, set()).add(client.client_id)

    async def client_connected(self, client: ControlledClient, info: ClientInfo) -> None:
        """A connect completed: the client is registered, its connect event written."""
        self.register_client(client)
        await self.events.connected(info)

    async def client_gone(
        self, client: ControlledClient, member: Member, info: ClientInfo, code: int, reason: str
    ) -> None:
        """A closed client's last memberships go (it left its subscriptions already); its
        disconnect event is written (only for a completed connect)."""
        for channel in tuple(self._members.channels_of(member)):
            await self.remove_member(channel, member)
        await self.events.disconnected(info, code, reason)

    def unregister_client(self, client: ControlledClient) -> None:
        if self._clients.pop(client.client_id, None) is None:
            return
        ids = self._users.get(client.user)
        if ids is not None:
            ids.discard(client.client_id)
            if not ids:
                del self._users[client.user]

    def client(self, client_id: str) -> ControlledClient | None:
        return self._clients.get(client_id)

    def clients_of(self, user: str) -> list[ControlledClient]:
        return [self._clients[cid] for cid in self._users.get(user, ())]

    async def control(self, cmd: Control) -> None:
        """Carry ``cmd`` out on the user's connections on every node: sent through the
        broker to the other nodes (returns once it is sent; StoreError when it could not be),
        then applied here (ClientError when this node's clients refuse it)."""
        await self.broker.control(cmd.encode(self.uid))
        await control.apply(self, cmd)

    async def survey(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        """Every live node's answer to ``op`` (see :mod:`hubbub.survey`), by node uid."""
        nodes = [str(n.get("uid")) for n in await self.cluster()]
        return await self.surveys.ask(op, params, nodes)

    def handle_control(self, message: str) -> None:
        """A message on the broker's control channel (see :meth:`hubbub.control.Inbox.take`)."""
        self.controls.take(message, self.uid)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def user_count(self) -> int:
        return len([u for u in self._users if u])

    def subscription_count(self) -> int:
        return self._members.subscription_count()

    # -- channel membership --------------------------------------------------------------

    def options(self, channel: str) -> ChannelOptions:
        return self.rules.options(channel)

    async def _ensure_upstream(self, channel: str) -> None:
        """Returns once the broker delivers ``channel`` to this node (the first caller asks
        the broker; callers meanwhile wait for that, and fail with it)."""
        underway = self._upstream.get(channel)
        if underway is not None:
            await asyncio.shield(underway)
            return
        underway = self._upstream[channel] = asyncio.get_running_loop().create_future()
        try:
            await self.broker.subscribe(channel)
        except BaseException as exc:
            if self._upstream.get(channel) is underway:
                del self._upstream[channel]
            failure = exc if isinstance(exc, StoreError) else StoreError("subscribe failed")
            underway.set_exception(failure)
            underway.exception()  # (retrieved: nobody may be waiting)
            raise
        underway.set_result(None)

    async def _release_upstream(self, channel: str) -> None:
        if channel in self._pending or self._members.subscribers(channel):
            return
        if channel in self._upstream:
            del self._upstream[channel]
            self._streams.forget_channel(channel)
            await self.broker.unsubscribe(channel)

    async def add_pending(self, channel: str, member: Member) -> None:
        """Start buffering ``channel``'s publications for ``member`` (see :meth:`activate`)."""
        self._pending.setdefault(channel, {})[member] = []
        try:
            await self._ensure_upstream(channel)
        except BaseException:
            await self.drop_pending(channel, member)
            raise

    def activate(
        self,
        channel: str,
        member: Member,
        after_offset: int,
        *,
        tags_filter: Filter | None = None,
        delta: Negotiated | None = None,
    ) -> None:
        """Make a pending member live: deliver what was buffered after ``after_offset``
        (everything when the channel has no offsets), then fan out to it directly; with
        ``tags_filter``, only the publications whose tags it lets through. A positioned member
        whose buffered publications do not continue ``after_offset`` resubscribes (a gap).
        ``delta``: it negotiated delta compression (its wire's delta forms from now on)."""
        pending = self._pending.get(channel)
        buffered = pending.pop(member, []) if pending is not None else []
        if pending is not None and not pending:
            del self._pending[channel]
        if tags_filter is not None:
            self._filters.setdefault(channel, {})[member] = tags_filter
        # The newest offset handed over before it went live (the buffered ones included).
        seen = self._streams.last(channel)
        wire = member.wire
        expected = after_offset
        base = delta.base if delta is not None else None
        for pub in buffered:
            offset = pub.offset
            if offset > expected + 1 and member.positioned(channel):
                self._insufficient(channel, [member])  # (a gap in what was buffered)
                return
            fresh = offset == 0 or offset > after_offset
            if fresh and (tags_filter is None or tags_filter.matches(pub.tags)):
                if delta is None:
                    message = self._encode(wire, channel, pub)
                else:
                    message = self._deltas.full(channel, wire, pub)
                if message is not None:
                    member.transport.post(message)
                    base = pub.data
            expected = max(expected, offset)
        if after_offset > 0 and seen < after_offset:
            # Offsets in (seen, after_offset] are in its reply but may still be on their
            # way from the broker; they come within moments, if at all.
            until = asyncio.get_running_loop().time() + CATCH_UP_WINDOW
            self._streams.behind(channel, member, seen, after_offset, until)
        if delta is not None:
            self._deltas.join(channel, member, base)
        if self._members.subscribe(channel, member):
            self.events.channel_used(channel)

    async def drop_pending(self, channel: str, member: Member) -> None:
        pending = self._pending.get(channel)
        if pending is not None:
            pending.pop(member, None)
            if not pending:
                del self._pending[channel]
        await self._release_upstream(channel)

    async def add_member(self, channel: str, member: Member) -> None:
        """Make ``member`` live in ``channel`` at once (no catch-up needed)."""
        await self._ensure_upstream(channel)
        if self._members.subscribe(channel, member):
            self.events.channel_used(channel)

    async def remove_member(
        self, channel: str, member: Member, info: ClientInfo | None = None
    ) -> None:
        """``member`` leaves ``channel``; with ``info``, a client's unsubscribe event."""
        if info is not None:
            await self.events.unsubscribed(channel, info)
        if self._members.unsubscribe(channel, member):
            self.events.channel_unused(channel)
        self._deltas.leave(channel, member)
        self._streams.forget_member(channel, member)
        filters = self._filters.get(channel)
        if filters is not None and filters.pop(member, None) is not None and not filters:
            del self._filters[channel]
        await self._release_upstream(channel)

    def member_channels(self, member: Member) -> frozenset[str]:
        return self._members.channels_of(member)

    def channels(self) -> list[str]:
        return list(self._members.channels())

    def subscriber_count(self, channel: str) -> int:
        return len(self._members.subscribers(channel))

    # -- presence ------------------------------------------------------------------------

    async def presence_add(self, channel: str, info: ClientInfo) -> None:
        """Enter (or update) ``info``'s entry, refreshed until removed (PresenceKeeper)."""
        await self._presence_keeper.add(channel, info)

    async def presence_remove(self, channel: str, client_id: str) -> None:
        await self._presence_keeper.remove(channel, client_id)

    # -- publishing ----------------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        data: str,
        *,
        info: ClientInfo | None = None,
        tags: dict[str, str] | None = None,
        frame: str = "",
        options: ChannelOptions | None = None,
        idempotency_key: str | None = None,
        skip_history: bool = False,
        delta: bool = False,
        source: Source = Source.HUB,
    ) -> Publication:
        """Publish JSON text ``data`` to ``channel`` (history as its options say; ``frame``: a
        raw room's frame kind, see :class:`Publication`; ``delta``: marked delta, as every
        publication of a ``delta_publish`` namespace is). Returns once the publication is
        stored; raises StoreError when it could not be. The time it took is observed for
        ``source`` (:mod:`hubbub.core.publishlatency`)."""
        started = time.perf_counter()
        options = options or self.options(channel)
        history = HistoryOptions(
            options.history_size, options.history_ttl, self.settings.idempotency_ttl
        )
        pub = Publication(
            data=data,
            info=info,
            tags=tags,
            time_ms=int(time.time() * 1000),
            frame=frame,
            delta=delta or options.delta_publish,
        )
        keep = history.enabled and not skip_history
        pub = await self.broker.publish(channel, pub, history if keep else None, idempotency_key)
        self.publish_latency.stored(source, pub, started, time.perf_counter())
        await self.events.published(channel, pub, options)
        return pub

    # -- BrokerHandler: fan-out ----------------------------------------------------------

    def handle_publication(self, channel: str, pub: Publication) -> None:
        self.publish_latency.handed(pub, time.perf_counter())
        self.publications += 1
        pending = self._pending.get(channel)
        if pending:
            for buffered in pending.values():
                buffered.append(pub)
        offset = pub.offset
        members = self._members.subscribers(channel)
        # (Not for a channel no one here is in any more: its record is gone, and stays so.)
        previous = self._streams.handed(channel, offset) if offset and (members or pending) else 0
        if not members:
            return
        streams = self._streams
        if offset > previous + 1:  # (previous 0: the first offset since the node subscribed)
            self._gap(channel, offset, previous)  # (may take members out of the channel)
        skip = None
        if offset and streams.catching_up(channel):
            skip = streams.skipping(channel, offset, asyncio.get_running_loop().time())
        filters = self._filters.get(channel)
        deltas = self._deltas.fan(channel, pub)  # (and per form for delta members)
        sender = pub.info.client if pub.info is not None else None
        encode = self._encode
        if skip or filters or deltas is not None:
            self.deliveries += fanout.each(
                members, channel, pub, encode, sender, skip, filters, deltas
            )
        else:
            self.deliveries += fanout.usual(members, channel, pub, encode, sender)

    def _encode(self, wire: Wire, channel: str, pub: Publication) -> str | bytes | None:
        """``wire``'s message for ``pub``; None when it cannot write it (logged), so that one
        wire's failure never keeps a publication from the members of the others."""
        try:
            return wire.publication(channel, pub)
        except Exception:
            self.encode_failures += 1
            if self.encode_failures % 1000 == 1:  # one log line per thousand, not a flood
                log.exception(
                    "%s: a publication could not be encoded (%d so far)",
                    channel,
                    self.encode_failures,
                )
            return None

    def _gap(self, channel: str, offset: int, previous: int) -> None:
        """``offset`` came after ``previous``: the positioned members whose stream stands
        before ``offset - 1`` missed publications, and resubscribe (before ``offset`` reaches
        them, so that their recovery starts where they really are)."""
        lost = self._behind(channel, previous, offset - 1)
        if previous or lost:  # (the first offset after subscribing upstream starts anywhere)
            self.gaps += 1
            if self.gaps % 1000 == 1:  # one log line per thousand, not a flood
                log.warning(
                    "%s: publications lost before offset %d (%d gaps so far)",
                    channel,
                    offset,
                    self.gaps,
                )
        self._insufficient(channel, lost)

    def last_offset(self, channel: str) -> int:
        """The newest offset of ``channel`` handed over to this node (0: none yet)."""
        return self._streams.last(channel)

    def has_positioned(self, channel: str) -> bool:
        return any(member.positioned(channel) for member in self._members.subscribers(channel))

    def lagging(self, channel: str, top: int) -> None:
        """``channel``'s stream is at ``top`` (read from the engine): the positioned members
        that were not handed that far resubscribe (:mod:`hubbub.positioncheck`)."""
        lost = self._behind(channel, self._streams.last(channel), top)
        if lost:
            self.gaps += 1
            log.info("%s: publications up to offset %d lost on their way here", channel, top)
        self._insufficient(channel, lost)

    def _behind(self, channel: str, newest: int, reached: int) -> list[Member]:
        """The positioned members whose stream stands before ``reached`` (with ``newest`` the
        newest offset handed over)."""
        streams = self._streams
        return [
            member
            for member in self._members.subscribers(channel)
            if member.positioned(channel) and streams.position(channel, member, newest) < reached
        ]

    def _insufficient(self, channel: str, members: Iterable[Member]) -> None:
        """``members`` of ``channel`` get nothing more of it and are made to recover
        (``insufficient_state``: resubscribe, or reconnect for server-side subscriptions);
        raw members are not clients: they stay."""
        loop = asyncio.get_running_loop()
        for member in members:
            client = self._clients.get(member.client_id)
            if client is None:
                continue
            if self._members.unsubscribe(channel, member):
                self.events.channel_unused(channel)
            task = loop.create_task(client.insufficient_state(channel))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def handle_resync(self) -> None:
        """Every channel-protocol subscriber is made to recover (see :meth:`_insufficient`),
        so no publication missed meanwhile goes unnoticed."""
        for channel in list(self._members.channels()):
            self._insufficient(channel, tuple(self._members.subscribers(channel)))

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        fanout.join_leave(
            self._members.subscribers(channel), channel, True, info, self._force(channel)
        )

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        fanout.join_leave(
            self._members.subscribers(channel), channel, False, info, self._force(channel)
        )

    def _force(self, channel: str) -> bool:
        """The namespace's ``force_push_join_leave`` (False for a channel of no namespace)."""
        try:
            return self.options(channel).force_push_join_leave
        except ClientError:
            return False
