"""One client of the channel protocol: commands in, replies and node calls out.

Wire-independent: the dialect's codec (:mod:`.jsonwire`, :mod:`.protowire`) decodes frames
into typed :class:`hubbub.core.messages.Frame` objects and hands them to
:meth:`Client.handle`, which answers with typed replies that the same codec encodes, and
posts them to the transport itself (so that a subscribe reply is always written before the
publications that follow it). The client is the channel member the node fans out to; its
codec is the member's wire. Session state is kept by the pure
:class:`hubbub.dialects.centrifuge.session.Session`; permissions come from the channel
options, then the hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any, Final

from hubbub import __version__, claims
from hubbub.claims import NO_OPTIONS, SubscribeOptions
from hubbub.config import ChannelOptions
from hubbub.core import messages as m
from hubbub.core import sparse
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.core.jsontext import dumps
from hubbub.core.ratelimit import RateLimiter, Verdict
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo
from hubbub.delta import DELTA_TYPES, Negotiated
from hubbub.dialects.centrifuge import commands, permits, proxying, reads, tokens
from hubbub.dialects.centrifuge.admission import admit, resubscription
from hubbub.dialects.centrifuge.codec import Codec
from hubbub.dialects.centrifuge.expiry import TokenExpiry
from hubbub.dialects.centrifuge.payloads import (
    required,
    writable,
)
from hubbub.dialects.centrifuge.pipeline import Replies
from hubbub.dialects.centrifuge.session import Session, State
from hubbub.errors import ClientError, DisconnectError, StoreError
from hubbub.hooks import DisconnectContext, Hooks
from hubbub.node import Node
from hubbub.transport import Transport

log = logging.getLogger(__name__)

#: Seconds a closing connection waits for its pending publishes to be stored and answered.
SETTLE_TIMEOUT: Final = 5.0

Handler = Callable[["Client", int, Any], Awaitable[m.Result | None]]


class Client:
    """Per-connection command handling; see the module docstring."""

    __slots__ = (
        "_chan_info",
        "_join_leave",
        "_limiter",
        "_options",
        "_positioned",
        "_replies",
        "_server_side",
        "address",
        "app",
        "client_id",
        "emulated",
        "forwarded",
        "headers",
        "hooks",
        "meta",
        "node",
        "session",
        "tokens",
        "transport",
        "transport_name",
        "wire",
    )

    def __init__(
        self,
        node: Node,
        hooks: Hooks,
        transport: Transport,
        headers: Mapping[str, str],
        codec: Codec,
    ) -> None:
        self.node = node
        self.hooks = hooks
        self.transport = transport
        self.headers = headers
        #: The codec of this connection, which is also its wire as a channel member.
        self.wire = codec
        self.client_id = str(uuid.uuid4())
        self.session = Session(self.client_id, node.settings.client_channel_limit)
        # Per-channel extras, rarely used (core.sparse: no dict until the first entry).
        self._chan_info: dict[str, str] = sparse.EMPTY  # channel -> chan_info JSON
        self._join_leave: dict[str, None] = sparse.EMPTY  # channels with join/leave pushes
        self._positioned: dict[str, None] = sparse.EMPTY  # channels whose position is watched
        # Subscriptions the server made: channel -> where from (FROM_TOKEN, FROM_SERVER).
        self._server_side: dict[str, str] = sparse.EMPTY
        # Channel options of subscriptions a token's override changed (claims.Override).
        self._options: dict[str, ChannelOptions] = sparse.EMPTY
        #: The token's (or on_connect's) ``meta``: for hooks only, never sent to a client.
        self.meta: dict[str, Any] | None = None
        self.tokens = TokenExpiry()
        # Replies in command order with publishes pipelined (pipeline.Replies): made at the
        # first publish, until then replies are posted as they come.
        self._replies: Replies | None = None
        self._limiter = RateLimiter(node.limits, time.monotonic())
        #: The connect's app name and version, and when it connected (ms since 1970).
        self.app: tuple[str, str, int] = _NO_APP
        self.transport_name = "websocket"  # what carries it, in Centrifugo's words
        self.emulated = ""  # an emulated connection's session id (connect result, /emulation)
        self.address = ""  # the client's IP address, trusted_proxies applied (on_connect)
        self.forwarded: Mapping[str, str] = proxying.NO_HEADERS  # proxy requests' (connect)

    @property
    def user(self) -> str:
        return self.session.user

    @property
    def connected(self) -> bool:
        return self.session.state is State.CONNECTED

    def info(self, channel: str | None = None) -> ClientInfo:
        chan_info = self._chan_info.get(channel) if channel is not None else None
        return ClientInfo(self.client_id, self.session.user, self.session.conn_info, chan_info)

    # -- dispatch ------------------------------------------------------------------------

    async def handle(self, frame: m.Frame, size: int = 0) -> None:
        """Handle one command; raises DisconnectError when the connection must end.

        ``size``: the bytes the command brings for the rate limit (the size of its frame for
        the first command of a frame, 0 for the others; see :mod:`hubbub.core.ratelimit`).
        Over a limit the command gets error 111; sustained abuse disconnects with 3013.

        Replies go out in command order. Publishes pipeline: each is handed to the node and
        the next command is handled while it is stored (see :meth:`pipelined`); any other
        command first waits until the publishes before it are answered.
        """
        kind = frame.kind
        if kind == "pong":  # nothing to answer; counted like any command, so that a flood of
            # them (one byte each in Protobuf) is cut off like any other
            if self._limiter.admit(time.monotonic(), size) is Verdict.DISCONNECT:
                d = Disconnects.TOO_MANY_REQUESTS
                raise DisconnectError(d.code, d.reason)
            return
        if self._replies is not None and self._replies.waiting and kind != "publish":
            await self._replies.drain()
        if self.session.state is not State.CONNECTED and kind != "connect":
            self.session.require_connected(kind if kind != "unknown" else "command")
        cid = frame.id
        if cid == 0 and kind != "send":
            raise DisconnectError(Disconnects.BAD_REQUEST.code, "bad request: command without id")
        verdict = self._limiter.admit(time.monotonic(), size)
        if verdict is not Verdict.ADMIT:
            if verdict is Verdict.DISCONNECT:
                d = Disconnects.TOO_MANY_REQUESTS
                raise DisconnectError(d.code, d.reason)
            if cid:
                self._answer(cid, self._error(cid, kind, ClientError(ErrorCode.TOO_MANY_REQUESTS)))
            return
        try:
            request = frame.request
            if request is None:
                if frame.problem is not None:
                    raise ClientError(ErrorCode.BAD_REQUEST, f"bad request: {frame.problem}")
                raise ClientError(ErrorCode.METHOD_NOT_FOUND)
            result = await _HANDLERS[type(request)](self, cid, request)
            if result is not None:
                self._answer(cid, self.wire.reply(m.Reply(cid, result)))
        except (ClientError, StoreError) as exc:
            if cid:
                self._answer(cid, self._error(cid, kind, exc))
        except DisconnectError:
            raise
        except m.NotEncodable as exc:
            log.error("%s: %s: %s", self.client_id, kind, exc)
            if cid:
                self._answer(cid, self._error(cid, kind, ClientError(ErrorCode.INTERNAL)))
        except Exception:
            log.exception("%s: %s failed", self.client_id, kind)
            if cid:
                self._answer(cid, self._error(cid, kind, ClientError(ErrorCode.INTERNAL)))

    def _error(self, cid: int, method: str | None, exc: ClientError | StoreError) -> str | bytes:
        if isinstance(exc, StoreError):
            log.warning("%s: %s failed: %s", self.client_id, method, exc)
            exc = ClientError(ErrorCode.INTERNAL)
        error = m.Error(exc.code, writable(exc.message), exc.temporary)  # an app's message too
        return self.wire.reply(m.Reply(cid, error=error))

    def _encoded(self, reply: m.Reply, channel: str) -> str | bytes:
        """``reply`` encoded while a subscription to ``channel`` can still be undone."""
        try:
            return self.wire.reply(reply)
        except m.NotEncodable as exc:
            log.error("%s: the reply to subscribe %s: %s", self.client_id, channel, exc)
            raise ClientError(ErrorCode.INTERNAL) from None

    def _published(self, cid: int) -> str | bytes:
        return self.wire.reply(m.Reply(cid, _PUBLISHED))

    def _answer(self, cid: int, message: str | bytes) -> None:
        """Post a reply now, or after the publishes still waiting before it."""
        if self._replies is None:
            self.transport.post(message)
        else:
            self._replies.answer(cid, message)

    # -- connect -------------------------------------------------------------------------

    async def _connect(self, cid: int, request: m.Connect) -> None:
        self.session.check_connect()
        admitted = await admit(self, request)
        user, channels, granted = admitted.user, admitted.channels, admitted.granted
        expire_at = admitted.expire_at
        # Server-side channels are checked before anything is joined: a bad one from the hook
        # fails the connect as a whole (error 100: the app's mistake, the client may retry).
        try:
            options = {channel: self.node.options(channel) for channel in channels}
            if len(channels) > self.session.channel_limit:
                raise ClientError(ErrorCode.LIMIT_EXCEEDED)
        except ClientError as exc:
            log.error("on_connect returned a bad server-side channel: %s", exc)
            raise ClientError(ErrorCode.INTERNAL) from None
        subs: dict[str, tuple[m.SubscribeResult, int]] = {}
        try:
            for channel in channels:
                self.session.begin_subscribe(channel)
                grant = granted.get(channel, NO_OPTIONS)
                options[channel] = self._granted(channel, options[channel], grant)
                sub = resubscription(channel, request.subs.get(channel))
                subs[channel] = await self._pending_result(
                    channel, options[channel], sub, grant.data
                )
        except BaseException:
            for channel in subs:
                await self.node.drop_pending(channel, self)
            for channel in channels:
                self.session.drop(channel)
                sparse.drop(self._chan_info, channel)
                sparse.drop(self._options, channel)
            raise
        self.session.connected(user, admitted.conn_info)
        self.app = (request.name, request.version, int(time.time() * 1000))
        self.meta = admitted.meta
        self.forwarded = admitted.forwarded
        await self.node.client_connected(self, self.info())
        ttl = tokens.expire_connection_at(self, expire_at) if expire_at is not None else 0
        result_of_connect = m.ConnectResult(
            client=self.client_id,
            version=__version__,
            expires=ttl > 0,  # (0 also when the refresh proxy refreshes it)
            ttl=ttl,
            data=admitted.data,
            subs={channel: result for channel, (result, _) in subs.items()},
            ping=max(1, round(self.node.settings.ping_interval)),
            pong=True,
            session=self.emulated,
            node=self.node.uid if self.emulated else "",
        )
        self.transport.post(self.wire.reply(m.Reply(cid, result_of_connect)))
        for channel, (result, top) in subs.items():
            source = FROM_TOKEN if channel in admitted.from_token else FROM_SERVER
            self._server_side = sparse.put(self._server_side, channel, source)
            self._live(channel, result, top, join_leave=False)
        for channel in subs:
            await self._joined(channel, options[channel], presence=options[channel].presence)

    # -- subscriptions -------------------------------------------------------------------

    async def _subscribe(self, cid: int, request: m.Subscribe) -> None:
        channel = required(request.channel, "channel")
        if request.delta and request.delta not in DELTA_TYPES:
            d = Disconnects.BAD_REQUEST
            raise DisconnectError(d.code, f"{d.reason}: unknown delta type")
        options = self.node.options(channel)
        claims = permits.token_claims(self, channel, options, request.token)
        if request.tags_filter is not None and not options.allow_tags_filter:
            raise ClientError(
                ErrorCode.BAD_REQUEST, "bad request: tags filters are not allowed in this channel"
            )
        self.session.begin_subscribe(channel)
        with self._undone_on_failure(channel):  # (token, flags, proxy, hook: permits.py)
            allowed = await permits.permit(self, channel, options, request, claims)
            own = allowed.options
            reply, top = await self._pending_result(
                channel, own, request, allowed.data, presence=own.presence
            )
            if allowed.expire_at is not None:  # (ttl 0: the server refreshes, by the proxy)
                ttl = tokens.expire_subscription_at(self, channel, allowed.expire_at)
                reply = dataclasses.replace(reply, expires=ttl > 0, ttl=ttl)
            delta = None
            # Not with a tags filter (the SDKs refuse both together; a filtered subscriber
            # would hold another base than the channel's other delta subscribers).
            if (
                request.delta
                and request.delta in options.allowed_delta_types
                and request.tags_filter is None
            ):
                reply = dataclasses.replace(reply, delta=True)
                pubs = reply.publications
                delta = Negotiated(pubs[-1].data if pubs else None)
            message = self._encoded(m.Reply(cid, reply), channel)
        self.transport.post(message)
        # Asked-for joins and leaves come where the namespace has them (Centrifugo's rule).
        self._live(
            channel,
            reply,
            top,
            join_leave=request.join_leave and options.join_leave,
            tags_filter=request.tags_filter,
            delta=delta,
        )
        await self._joined(channel, own, presence=False)

    def _granted(
        self, channel: str, options: ChannelOptions, grant: SubscribeOptions
    ) -> ChannelOptions:
        """Take a token's chan info for ``channel``; the subscription's options: the
        namespace's, changed by the token's override (then remembered until it leaves, so
        that leaving undoes what joining did)."""
        if grant.info is not None:
            self._chan_info = sparse.put(self._chan_info, channel, grant.info)
        own = options if grant.override is None else grant.override.apply(options)
        if own is not options:
            self._options = sparse.put(self._options, channel, own)
        return own

    @contextlib.contextmanager
    def _undone_on_failure(self, channel: str) -> Iterator[None]:
        """A subscription being opened is forgotten again when opening it fails."""
        try:
            yield
        except BaseException:
            self.session.drop(channel)
            sparse.drop(self._chan_info, channel)
            sparse.drop(self._options, channel)
            raise

    async def _pending_result(
        self,
        channel: str,
        options: ChannelOptions,
        request: m.Subscribe,
        data: m.Data | None,
        *,
        presence: bool = False,
    ) -> tuple[m.SubscribeResult, int]:
        """Become a pending member (publications are buffered from now on) and build the
        subscribe result; the pending membership is dropped again on failure. ``presence``:
        also enter the channel's presence, so that it lists the client once the reply is out
        (on every node)."""
        await self.node.add_pending(channel, self)
        try:
            result = await reads.subscribe_result(self.node, options, request, data, self.user)
            if presence:
                await self.node.presence_add(channel, self.info(channel))
            return result
        except BaseException:
            await self.node.drop_pending(channel, self)
            if presence:
                with contextlib.suppress(Exception):
                    await self.node.presence_remove(channel, self.client_id)
            raise

    def _live(
        self,
        channel: str,
        result: m.SubscribeResult,
        top: int,
        *,
        join_leave: bool,
        tags_filter: Filter | None = None,
        delta: Negotiated | None = None,
    ) -> None:
        """After the reply: buffered publications after ``top``, then live delivery (only
        of the publications ``tags_filter`` lets through, when there is one; in the delta
        forms when ``delta`` was negotiated)."""
        if join_leave:
            self._join_leave = sparse.put(self._join_leave, channel, None)
        if result.positioned:
            self._positioned = sparse.put(self._positioned, channel, None)
        self.session.subscribed(channel)
        self.node.activate(channel, self, top, tags_filter=tags_filter, delta=delta)

    def subscription_options(self, channel: str) -> ChannelOptions:
        """The options ``channel``'s subscription joined with (a token's override applied);
        ClientError for a channel whose namespace is gone."""
        own = self._options.get(channel)
        return own if own is not None else self.node.options(channel)

    def set_chan_info(self, channel: str, info: str) -> None:
        """``channel``'s chan info (JSON text) from now on (joins, presence, publications)."""
        self._chan_info = sparse.put(self._chan_info, channel, info)

    def from_token(self) -> list[str]:
        """The channels subscribed because the connection token named them."""
        return [ch for ch, source in self._server_side.items() if source == FROM_TOKEN]

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        if channel in self._join_leave:
            return True
        own = self._options.get(channel)
        return forced if own is None else own.force_push_join_leave

    def positioned(self, channel: str) -> bool:
        return channel in self._positioned

    async def _joined(self, channel: str, options: ChannelOptions, *, presence: bool) -> None:
        """Enter presence (unless done already) and announce the join."""
        await self.node.events.subscribed(channel, self.info(channel))
        if presence:
            await self.node.presence_add(channel, self.info(channel))
        if options.join_leave:
            await self.node.broker.publish_join(channel, self.info(channel))

    async def _left(self, channel: str) -> None:
        info = self.info(channel)
        self.tokens.cancel_subscription(channel)  # (a stale 2501 must not hit a later one)
        sparse.drop(self._chan_info, channel)
        sparse.drop(self._join_leave, channel)
        sparse.drop(self._positioned, channel)
        sparse.drop(self._server_side, channel)
        options = sparse.drop(self._options, channel)  # what this subscription joined with
        await self.node.remove_member(channel, self, info)
        if options is None:
            try:
                options = self.node.options(channel)
            except ClientError:
                return
        if options.presence:
            await self.node.presence_remove(channel, self.client_id)
        if options.join_leave:
            await self.node.broker.publish_leave(channel, info)

    async def _unsubscribe(self, cid: int, request: m.Unsubscribe) -> m.UnsubscribeResult:
        channel = required(request.channel, "channel")
        was_subscribed = self.session.is_subscribed(channel)
        if self.session.drop(channel) and was_subscribed:
            await self._left(channel)
        return _UNSUBSCRIBED

    # -- publishing and reading ----------------------------------------------------------

    async def pipelined(self, cid: int, publishing: Coroutine[Any, Any, Any]) -> None:
        """Answer command ``cid`` once ``publishing`` (a store) is done, in command order,
        while the next commands are read (see :class:`.pipeline.Replies`)."""
        if self._replies is None:
            self._replies = Replies(
                self.transport.post, self._published, self._error, self.client_id
            )
        await self._replies.start(cid, publishing)

    # -- server-side control (server API) ------------------------------------------------

    async def server_subscribe(
        self, channel: str, info: Any = None, data: Any = None, override: Any = None
    ) -> None:
        """Subscribe to ``channel`` from the server (``override`` as a token's); pushed."""
        if self.session.state is not State.CONNECTED:
            return
        options = self.node.options(channel)
        self.session.begin_subscribe(channel)
        with self._undone_on_failure(channel):
            if info is not None:
                self._chan_info = sparse.put(self._chan_info, channel, dumps(info))
            if override is not None:
                grant = SubscribeOptions(override=claims.override(override))
                options = self._granted(channel, options, grant)
            body, top = await self._pending_result(
                channel,
                options,
                m.Subscribe(channel),
                None if data is None else dumps(data),
                presence=options.presence,
            )
        self.transport.post(self.wire.push(m.Subscribed(channel, body)))
        self._server_side = sparse.put(self._server_side, channel, FROM_SERVER)
        self._live(channel, body, top, join_leave=False)
        await self._joined(channel, options, presence=False)

    async def server_unsubscribe(
        self, channel: str, code: int = 2000, reason: str = "server unsubscribe"
    ) -> None:
        """Unsubscribe this client from ``channel``; an unsubscribe push tells it why
        (codes below 2500 end the subscription, 2500 and up make the SDK resubscribe)."""
        was_subscribed = self.session.is_subscribed(channel)
        self.tokens.cancel_subscription(channel)
        if self.session.drop(channel) and was_subscribed:
            self.transport.post(self.wire.push(m.Unsubscribed(channel, code, reason)))
            await self._left(channel)

    async def insufficient_state(self, channel: str) -> None:
        """``channel``'s publications were lost on their way: the client resubscribes (2500),
        or reconnects (3010) for a server-made subscription, and recovers."""
        if channel in self._server_side:
            d = Disconnects.INSUFFICIENT_STATE
            self.disconnect(d.code, d.reason)
            return
        await self.server_unsubscribe(channel, 2500, "insufficient state")

    def disconnect(self, code: int, reason: str) -> None:
        self.transport.close(code, reason)

    async def server_refresh(self, expired: bool, expire_at: int, info: Any = None) -> None:
        """See :func:`hubbub.dialects.centrifuge.tokens.server_refresh`."""
        await tokens.server_refresh(self, expired, expire_at, info)

    def connection_info(self) -> dict[str, Any]:
        """Centrifugo's ``ConnectionInfo`` of this connection (empty strings left out)."""
        return commands.describe(self, *self.app)

    # -- end -----------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait (at most :data:`SETTLE_TIMEOUT`) until the publishes started so far are
        stored and answered, so that what follows (a close, leave, the disconnect hook)
        comes after them, as it would without pipelining."""
        if self._replies is not None and self._replies.waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replies.drain(), SETTLE_TIMEOUT)

    async def close(self, code: int, reason: str) -> None:
        """The connection ended: its publishes settle, then it leaves every channel and the
        disconnect hook is told."""
        await self.settle()
        self.tokens.cancel_all()
        self.node.unregister_client(self)
        for channel in self.session.close():
            try:
                await self._left(channel)
            except Exception:
                log.exception("%s: cleanup of %s failed", self.client_id, channel)
        await self.node.client_gone(self, self, self.info(), code, reason)
        if self.hooks.on_disconnect is not None:
            ctx = DisconnectContext(self.client_id, self.user, code, reason, self.meta)
            try:
                await self.hooks.on_disconnect(ctx)
            except Exception:
                log.exception("on_disconnect hook failed")


_NO_APP: Final = ("", "", 0)
#: Where a server-side subscription came from: the connection token's channels or subs, or
#: the server otherwise (an on_connect hook, the server API).
FROM_TOKEN: Final = "token"
FROM_SERVER: Final = "server"
_PUBLISHED: Final = m.PublishResult()
_UNSUBSCRIBED: Final = m.UnsubscribeResult()

#: Command handlers by request type, shared by every client (bound methods per client would
#: cost a dict and a dozen objects per connection).
_HANDLERS: Final[dict[type, Handler]] = {
    m.Connect: Client._connect,
    m.Subscribe: Client._subscribe,
    m.Unsubscribe: Client._unsubscribe,
    m.Publish: commands.publish,
    m.Presence: commands.presence,
    m.PresenceStats: commands.presence_stats,
    m.History: commands.history,
    m.Ping: commands.ping,
    m.Send: commands.send,
    m.RPC: commands.rpc,
    m.Refresh: tokens.refresh,
    m.SubRefresh: tokens.sub_refresh,
}
