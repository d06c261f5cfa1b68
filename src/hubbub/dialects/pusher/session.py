"""One Pusher connection (protocol 7) on the node: frames in, node calls, frames out.

:func:`run_pusher` serves a WebSocket accepted on ``/app/{key}`` until it closes. What a
connection may do, as Pusher defines it, and how the node carries it:

- **Connect**: ``pusher:connection_established`` with a fresh socket id (its member id in
  every channel, so it never gets what it sent itself) and the app's activity timeout. An
  unknown key, a missing or unsupported ``protocol`` and an app over ``max_connections``
  get ``pusher:error`` and a close with the protocol's code (4001, 4008/4006/4007, 4004).
- **Subscribe** (``pusher:subscribe``): public and ``cache-`` channels as they are;
  ``private-``, ``presence-`` and ``private-encrypted-`` (and their cache forms) with an
  ``auth`` signed by the app's secret over the socket id, the channel (and ``channel_data``);
  ``#server-to-user-<id>`` only for a connection signed in as ``<id>``. A refusal is
  ``pusher:subscription_error`` on the channel; the connection stays. The reply
  (``pusher_internal:subscription_succeeded``, with the members on a presence channel) is
  posted before any event of the channel; a cache channel's kept event (or
  ``pusher:cache_miss``) follows it, and events published meanwhile are neither lost nor
  doubled (the node's pending member, offsets). At most ``client_channel_limit`` channels
  per connection.
- **Presence**: one entry per connection in the engine's presence (``client`` the socket id,
  ``user`` the user id, ``chan_info`` its user info), so every node sees every member.
  ``member_added`` goes out once per user, not per connection: a joining connection reads
  the channel's entries before and after adding its own, and announces its user unless a
  connection of that user was there before and still is after; ``member_removed`` goes out
  when, its entry removed, no connection of the user is left. So a user is never left out
  while a connection of it is in (one leaving as another joins: the leaver announces the
  removal or the joiner sees it gone and announces the user again; from two nodes, the
  broker may hand a third the two in either order), and two connections of
  one user joining at the same moment may both announce it (pusher-js keeps one member and
  counts it once).
  At most :data:`~.protocol.MAX_PRESENCE_MEMBERS` users per channel.
- **Client events** (``client-*``): only when the app has ``client_events``, on a private or
  presence channel (not encrypted) the connection is subscribed to, at most
  :data:`CLIENT_EVENT_RATE` per second (else ``pusher:error`` 4301 and the event is dropped);
  relayed to every other subscriber on every node, with ``user_id`` on presence channels;
  never stored.
- **Sign-in** (``pusher:signin``): ``user_data`` signed with the app's secret; the connection
  is then its user's (``terminate_connections`` and server API ``disconnect`` of
  :func:`~hubbub.pushersettings.user_key` close it, 4009).
- **Keepalive**: ``pusher:ping`` is answered with ``pusher:pong``; the server pings a
  connection silent for the activity timeout and closes it with 4201 when nothing comes
  within :data:`PONG_TIMEOUT` (the edge's policy: :mod:`hubbub.server.pusher`).
- **Bad input** (not JSON, unknown ``pusher:`` events, bad names, oversize data): a
  ``pusher:error`` without a code; the connection stays. Frames over the node's rate limits
  are dropped, and a connection that keeps sending over them is closed with 4301.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from hubbub.core import codes
from hubbub.core.jsontext import dumps
from hubbub.core.publishlatency import Source
from hubbub.core.ratelimit import RateLimiter, Verdict, message_size
from hubbub.core.types import ClientInfo
from hubbub.dialects.pusher import events, protocol, signing
from hubbub.dialects.pusher.errors import ProtocolError
from hubbub.dialects.pusher.protocol import ChannelKind, ErrorCode
from hubbub.dialects.pusher.wire import PusherWire, client_data, member_of
from hubbub.errors import ClientError, StoreError
from hubbub.node import Node
from hubbub.pushersettings import PusherApp, node_channel, user_key
from hubbub.transport import Transport

log = logging.getLogger(__name__)

#: Seconds a pinged connection has to answer (Pusher's pong timeout: 30 s).
PONG_TIMEOUT: Final = 30.0
#: Client events a connection may send per second (Pusher's limit), as a burst too.
CLIENT_EVENT_RATE: Final = 10.0
#: What a connection gets when the server stops: reconnect at once (to another node).
SHUTDOWN: Final = (int(ErrorCode.RECONNECT_IMMEDIATELY), "server shutting down")
#: A slow consumer: reconnect after backing off.
SLOW: Final = (int(ErrorCode.OVER_CAPACITY), "slow consumer")
#: Closed by ``terminate_connections`` or the server API's ``disconnect``.
TERMINATED: Final = (int(ErrorCode.UNAUTHORIZED), "connection terminated")
#: The oldest and newest protocol versions served (pusher-js sends 7).
PROTOCOLS: Final = range(5, 8)


class PusherConnection(Transport, Protocol):
    """What a Pusher session needs from its connection beyond :class:`Transport`."""

    async def receive(self) -> str | bytes | None: ...


class Apps:
    """The Pusher apps of a server by key, each with its wire, and the connections each has
    on this node (for ``max_connections``)."""

    def __init__(self, apps: tuple[PusherApp, ...]) -> None:
        self.by_key: dict[str, PusherApp] = {app.key: app for app in apps}
        self.by_id: dict[str, PusherApp] = {app.id: app for app in apps}
        self.wires: dict[str, PusherWire] = {app.id: PusherWire(app) for app in apps}
        self.connections: dict[str, int] = dict.fromkeys(self.by_id, 0)


def handshake_error(app: PusherApp | None, query: Mapping[str, str]) -> ErrorCode | None:
    """Why a connection to ``app`` with URL ``query`` is refused, or None."""
    if app is None:
        return ErrorCode.APP_NOT_FOUND
    version = query.get("protocol")
    if version is None:
        return ErrorCode.NO_PROTOCOL_VERSION
    if not version.isdigit():
        return ErrorCode.INVALID_VERSION
    if int(version) not in PROTOCOLS:
        return ErrorCode.UNSUPPORTED_PROTOCOL
    return None


def refuse(conn: Transport, code: ErrorCode) -> None:
    """``pusher:error`` with ``code`` and a close with it."""
    message = protocol.ERROR_MESSAGES[code]
    conn.post(protocol.encode_error(message, int(code)))
    conn.close(int(code), message)


@dataclass(eq=False, slots=True)
class PusherMember:
    """A Pusher connection as a channel member (:class:`hubbub.member.Member`)."""

    client_id: str
    transport: Transport
    wire: PusherWire
    #: The node channels it gets joins and leaves of (its presence channels).
    presence: set[str] = field(default_factory=set)

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        return channel in self.presence

    def positioned(self, channel: str) -> bool:
        return False  # Pusher has no offsets: nothing to recover


class _Bucket:
    """A token bucket: ``rate`` per second, ``rate`` at most."""

    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = self.tokens = rate
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class PusherSession:
    """One connection's state: its subscriptions (Pusher name -> node channel), its user."""

    def __init__(self, node: Node, app: PusherApp, conn: PusherConnection, wire: PusherWire):
        self.node = node
        self.app = app
        self.conn = conn
        self.socket_id = protocol.new_socket_id(secrets.randbelow)
        self.member = PusherMember(self.socket_id, conn, wire)
        self.channels: dict[str, str] = {}  # Pusher name -> node channel
        self.members: dict[str, protocol.Member] = {}  # presence channel -> who it is there
        self.user_id = ""  # signed in as
        self._registered = False
        now = time.monotonic()
        self._limiter = RateLimiter(node.limits, now)
        self._client_events = _Bucket(CLIENT_EVENT_RATE, now)

    # -- ControlledClient: server API control and terminate_connections -----------------

    @property
    def client_id(self) -> str:
        return self.socket_id

    @property
    def user(self) -> str:
        return user_key(self.app, self.user_id) if self.user_id else ""

    async def server_subscribe(
        self, channel: str, info: Any = None, data: Any = None, override: Any = None
    ) -> None:
        raise ClientError(codes.ErrorCode.NOT_AVAILABLE, "a Pusher connection subscribes itself")

    async def server_unsubscribe(
        self, channel: str, code: int = 2000, reason: str = "server unsubscribe"
    ) -> None:
        for name, node_ch in tuple(self.channels.items()):
            if node_ch == channel:
                await self.unsubscribe(name)

    async def insufficient_state(self, channel: str) -> None:
        return None  # never positioned: nothing to recover

    def disconnect(self, code: int, reason: str) -> None:
        if not 4000 <= code < 4400:
            code, reason = TERMINATED
        self.conn.post(protocol.encode_error(reason, code))
        self.conn.close(code, reason)

    async def server_refresh(self, expired: bool, expire_at: int, info: Any = None) -> None:
        return None  # no tokens: a signed-in Pusher connection does not expire

    def connection_info(self) -> dict[str, Any]:
        return {
            "client": self.socket_id,
            "user": self.user,
            "transport": "pusher",
            "app": self.app.id,
            "channels": sorted(self.channels),
        }

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        conn = self.conn
        conn.post(protocol.encode_connection_established(self.socket_id, self.app.activity_timeout))
        try:
            while (frame := await conn.receive()) is not None:
                verdict = self._limiter.admit(time.monotonic(), message_size(frame))
                if verdict is Verdict.DISCONNECT:
                    code = int(ErrorCode.CLIENT_EVENT_RATE_LIMIT)
                    conn.post(protocol.encode_error("rate limit exceeded", code))
                    conn.close(code, "rate limit exceeded")
                    break
                if verdict is Verdict.REFUSE:
                    continue
                try:
                    await self.handle(protocol.parse_client_frame(frame))
                except ProtocolError as exc:
                    conn.post(protocol.encode_error(str(exc), exc.code))
        finally:
            await self.close()

    async def handle(self, message: protocol.ClientMessage) -> None:
        if isinstance(message, protocol.Ping):
            self.conn.post(protocol.encode_pong())
        elif isinstance(message, protocol.Pong):
            pass  # a sign of life: the edge noted it
        elif isinstance(message, protocol.Subscribe):
            await self.subscribe(message)
        elif isinstance(message, protocol.Unsubscribe):
            await self.unsubscribe(message.channel)
        elif isinstance(message, protocol.ClientEvent):
            await self.client_event(message)
        else:
            await self.signin(message)

    async def close(self) -> None:
        """Leave every channel (presence entries and member_removed too); unregister."""
        try:
            for name in tuple(self.channels):
                await self.unsubscribe(name)
        finally:
            if self._registered:
                self.node.unregister_client(self)

    # -- subscriptions --------------------------------------------------------------------

    def _refuse(self, name: str, message: str, status: int = 401) -> None:
        self.conn.post(protocol.encode_subscription_error(name, message, status))

    async def subscribe(self, sub: protocol.Subscribe) -> None:
        name = sub.channel
        if name in self.channels:
            return  # already subscribed (pusher-js resubscribes only after a reconnect)
        if len(self.channels) >= self.node.settings.client_channel_limit:
            limit = self.node.settings.client_channel_limit
            self._refuse(name, f"Subscribed to {limit} channels already: the limit", 403)
            return
        kind = protocol.channel_kind(name)
        member: protocol.Member | None = None
        if kind.needs_auth:
            app = self.app
            data = sub.channel_data if kind.is_presence else None
            if not signing.verify_channel_auth(
                sub.auth, app.key, app.secret, self.socket_id, name, data
            ):
                self._refuse(name, f"Invalid signature for channel {name}")
                return
            if kind.is_presence:
                try:
                    member = protocol.parse_channel_data(sub.channel_data)
                except ProtocolError as exc:
                    self._refuse(name, str(exc), 400)
                    return
        elif kind is ChannelKind.SERVER_TO_USER:
            wanted = name[len(protocol.SERVER_TO_USER_PREFIX) :]
            if not self.user_id or wanted != self.user_id:
                self._refuse(name, "Subscribing to a user's channel needs signing in as it", 403)
                return
        channel = node_channel(self.app, name)
        try:
            if member is not None:
                await self._join_presence(name, channel, member)
            elif kind.is_cache:
                await self._subscribe_cache(name, channel)
            else:
                await self.node.add_member(channel, self.member)
                self.channels[name] = channel
                self.conn.post(protocol.encode_subscription_succeeded(name))
        except StoreError:
            self._refuse(name, "Subscription failed: try again later", 503)

    async def _subscribe_cache(self, name: str, channel: str) -> None:
        node = self.node
        await node.add_pending(channel, self.member)
        try:
            last = await events.last_event(node, channel)
        except BaseException:
            await node.drop_pending(channel, self.member)
            raise
        self.channels[name] = channel
        self.conn.post(protocol.encode_subscription_succeeded(name))
        if last is None:
            self.conn.post(protocol.encode_cache_miss(name))
            await node.events.pusher_cache_miss(channel)
        else:
            self.conn.post(self.member.wire.publication(channel, last))
        node.activate(channel, self.member, last.offset if last is not None else 0)

    async def _others(self, channel: str, user_id: str) -> list[str]:
        """The socket ids of ``user_id``'s other connections in presence ``channel``."""
        entries = await self.node.presence.presence(channel)
        return [c for c, info in entries.items() if info.user == user_id and c != self.socket_id]

    async def _join_presence(self, name: str, channel: str, member: protocol.Member) -> None:
        node = self.node
        entries = await node.presence.presence(channel)
        users: dict[str, Any] = {}
        before: set[str] = set()  # the user's connections already there
        for entry in entries.values():
            if entry.user and entry.client != self.socket_id:
                users.setdefault(entry.user, _user_info(entry))
                if entry.user == member.user_id:
                    before.add(entry.client)
        if member.user_id not in users and len(users) >= protocol.MAX_PRESENCE_MEMBERS:
            self._refuse(name, "Presence channel is full", 403)
            return
        info = ClientInfo(
            client=self.socket_id,
            user=member.user_id,
            chan_info=None if member.user_info is None else dumps(member.user_info),
        )
        # Joins and leaves of the channel from now on; then this connection's own entry.
        self.member.presence.add(channel)
        await node.add_member(channel, self.member)
        self.channels[name] = channel
        self.members[channel] = member
        try:
            await node.presence_add(channel, info)
            others = await self._others(channel, member.user_id)
        except StoreError:
            await self.unsubscribe(name)
            raise
        users[member.user_id] = member.user_info
        self.conn.post(protocol.encode_subscription_succeeded(name, users))
        if not before.intersection(others):
            await node.broker.publish_join(channel, info)
            await node.events.pusher_member_added(channel, member.user_id)

    async def unsubscribe(self, name: str) -> None:
        channel = self.channels.pop(name, None)
        if channel is None:
            return
        node = self.node
        member = self.members.pop(channel, None)
        self.member.presence.discard(channel)
        await node.remove_member(channel, self.member)
        if member is None:
            return
        try:
            await node.presence_remove(channel, self.socket_id)
            if not await self._others(channel, member.user_id):
                info = ClientInfo(client=self.socket_id, user=member.user_id)
                await node.broker.publish_leave(channel, info)
                await node.events.pusher_member_removed(channel, member.user_id)
        except StoreError:
            log.warning("%s: the presence of %s could not be updated", self.socket_id, channel)

    # -- client events and sign-in --------------------------------------------------------

    async def client_event(self, message: protocol.ClientEvent) -> None:
        name = message.channel
        kind = protocol.channel_kind(name)
        if not self.app.client_events:
            raise ProtocolError("Client events are not enabled for this app")
        if not kind.allows_client_events:
            raise ProtocolError(f"Client events are not allowed on {name}")
        channel = self.channels.get(name)
        if channel is None:
            raise ProtocolError(f"Client event on {name} without being subscribed to it")
        if not self._client_events.take(time.monotonic()):
            code = int(ErrorCode.CLIENT_EVENT_RATE_LIMIT)
            raise ProtocolError(protocol.ERROR_MESSAGES[ErrorCode.CLIENT_EVENT_RATE_LIMIT], code)
        member = self.members.get(channel)
        user_id = member.user_id if member is not None else None
        data = client_data(message.data)
        try:
            await events.publish(
                self.node,
                self.app,
                name,
                message.event,
                data,
                socket_id=self.socket_id,
                user_id=user_id or "",
                source=Source.CLIENT,
                keep=False,
            )
        except StoreError:
            raise ProtocolError("Client event could not be sent: try again later") from None
        await self.node.events.pusher_client_event(
            channel, message.event, data, self.socket_id, user_id
        )

    async def signin(self, message: protocol.Signin) -> None:
        app = self.app
        if not signing.verify_user_auth(
            message.auth, app.key, app.secret, self.socket_id, message.user_data
        ):
            raise ProtocolError("Invalid signature for user sign-in", int(ErrorCode.UNAUTHORIZED))
        user = protocol.parse_user_data(message.user_data)
        if self.user_id and self.user_id != user.id:
            raise ProtocolError("Already signed in as another user")
        if not self.user_id:
            self.user_id = user.id
            self.node.register_client(self)
            self._registered = True
        self.conn.post(protocol.encode_signin_success(message.user_data))


def _user_info(info: ClientInfo) -> Any:
    found = member_of(info)
    return found.user_info if found is not None else None


async def run_pusher(
    node: Node, apps: Apps, key: str, query: Mapping[str, str], conn: PusherConnection
) -> None:
    """Serve ``conn``, a WebSocket to ``/app/{key}`` with URL ``query``, until it closes."""
    app = apps.by_key.get(key)
    refusal = handshake_error(app, query)
    if (
        refusal is None
        and app is not None
        and app.max_connections
        and apps.connections[app.id] >= app.max_connections
    ):
        refusal = ErrorCode.OVER_CONNECTION_QUOTA
    if refusal is not None or app is None:
        refuse(conn, refusal or ErrorCode.APP_NOT_FOUND)
        while await conn.receive() is not None:
            pass  # (until the close completes)
        return
    apps.connections[app.id] += 1
    try:
        await PusherSession(node, app, conn, apps.wires[app.id]).run()
    finally:
        apps.connections[app.id] -= 1
