"""The application's hooks: what each hook is given (its context) and may return (its result).

Hooks are plain async functions, registered on a :class:`hubbub.Hub` with its decorators
(``@hub.on_connect``, ...). Every hook is optional. They refuse by raising
:class:`hubbub.ClientError` (the client gets that error reply, the connection stays) or
:class:`hubbub.DisconnectError` (the connection is closed with that code). Any other
exception is logged with its traceback and the client gets error 100 (internal).

Fields every context shares:

- ``client`` (str): the connection's id, a UUID made by the server; the same in every hook
  of one connection, in presence and in the server API's ``connections``.
- ``user`` (str): who the connection is: what ``on_connect`` returned as
  ``ConnectResult.user``, else the connection token's ``sub``; ``""`` for an anonymous
  connection.
- ``data`` (Any): what the client sent with the command: the JSON value, or, from a
  Protobuf client whose data is not JSON, its ``bytes``. It **may be None**: a client that
  sends no data (most connects and subscribes do not) gives ``None``, and so does one that
  sends JSON ``null``. Check its type before you read it (``isinstance(ctx.data, dict)``).
- ``meta`` (dict | None): the connection's meta: what ``on_connect`` returned as
  ``ConnectResult.meta``, else the connection token's ``meta`` claim (a JSON object);
  None without either. It is the server's own: never sent to any client (not in presence,
  join/leave or publications). Treat it as read-only (the same dict is given to every hook
  of the connection).

Results' ``data`` and ``info`` are JSON values (``bytes`` reach Protobuf clients as they are,
and must be JSON text to reach JSON clients; anything else is error 100, logged). A hook that
returns None keeps what the server would do without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectContext:
    """A client's ``connect`` command, given to ``on_connect`` before the client is admitted.

    Attributes:
        client: The connection's id (see the module docstring).
        token: The connection token as sent; ``""`` when the client sent none. With token
            keys configured (``token_hmac_secret``, ...) it has been verified before the hook
            is called (a bad one never reaches it); without them it is given as it is, for
            the application's own scheme to check.
        data: The connect data the client sent; **None when it sent none** (see the module
            docstring).
        name: The client's application name from its connect (``name``); ``""`` if unset.
        version: The client's application version from its connect; ``""`` if unset.
        headers: The HTTP headers of the connection's handshake (the WebSocket upgrade, or
            the HTTP request of a stream), names as sent. Set by the client's browser and by
            any reverse proxy in front of hubbub.
        user: The verified connection token's ``sub``, or for a client without a token the
            connect proxy's ``user`` (``proxy_connect_endpoint``); ``""`` without either, or
            when no token keys are configured.
        meta: The verified connection token's ``meta`` claim, or the connect proxy's
            ``meta``; None without one.
        emulated_headers: The headers the client put in its connect command (centrifuge-js's
            ``headers`` option, for browsers): names lowercased, values as sent; empty when
            it sent none.
        address: The client's IP address: the TCP peer's, or, when the peer is one of the
            ``trusted_proxies``, the one its ``X-Forwarded-For`` / ``X-Real-IP`` names (a
            client's own such headers are ignored). ``""`` when the connection did not come
            through hubbub's HTTP edge (a test calling the hook). Only the connect has it:
            keep it by ``client`` id if later hooks need it.

    ``emulated_headers`` are kept apart from ``headers`` because any client may write
    anything there, and no reverse proxy in front of hubbub can set or strip them: take from
    them only what the hook checks itself (an ``authorization`` token it verifies), never what
    it would trust because a proxy set it (a client address, a user id). To accept a header
    either way, prefer the real one when both are there.
    """

    client: str
    token: str
    data: Any
    name: str
    version: str
    headers: Mapping[str, str]
    user: str = ""
    meta: Any = None
    emulated_headers: Mapping[str, str] = field(default_factory=dict)
    address: str = ""


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """Who the client is, returned by ``on_connect``. Returning None admits the client as
    its token says (``ctx.user``, the token's ``info``), or as anonymous without a token:
    with an ``on_connect`` hook, ``allow_anonymous`` is the hook's to decide.

    Attributes:
        user: The user id of the connection. It replaces the token's ``sub``: return
            ``ConnectResult(user=ctx.user, ...)`` to keep it; ``""`` admits the client as
            anonymous (then the channels' ``allow_..._for_anonymous`` options apply).
        info: Connection info, a JSON value shown to others (presence, join/leave, the
            ``info`` of its publications). It replaces the token's ``info``; None: no info.
        data: A JSON value sent to the client in its connect reply; None sends nothing.
        channels: Server-side subscriptions made at connect, on top of the token's
            (``channels``/``subs``); the client gets their publications without subscribing.
        meta: A JSON object (dict) that replaces the token's ``meta`` as the connection's
            meta (given to its later hooks, never to clients); None keeps the token's.
    """

    user: str = ""
    info: Any = None
    data: Any = None
    channels: list[str] = field(default_factory=list)
    meta: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeContext:
    """A client's ``subscribe`` command, given to ``on_subscribe`` after the channel's
    permission checks passed (the channel's options, a valid subscription token, or the
    subscribe proxy of a ``proxy_subscribe`` namespace).

    Attributes:
        client: The connection's id.
        user: The connection's user id; ``""`` when anonymous.
        channel: The channel it subscribes to (``namespace:name`` or ``name``).
        data: The subscribe data the client sent; **None when it sent none**.
        token: The subscription token as sent (already verified); ``""`` when none.
        meta: The connection's meta; None without any.
    """

    client: str
    user: str
    channel: str
    data: Any
    token: str
    meta: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """What ``on_subscribe`` adds to the subscription (None subscribes it as it is).

    Attributes:
        info: Channel info, a JSON value shown to others as the subscriber's ``chan_info``
            (presence, join/leave, its publications); None keeps the subscription token's.
        data: A JSON value sent to the client in its subscribe reply; None keeps the
            subscription token's ``data`` (or sends none).
    """

    info: Any = None
    data: Any = None


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class PublishContext:
    """A client's ``publish`` command, given to ``on_publish`` after the permission, data
    and size checks (and the publish proxy of a ``proxy_publish`` namespace, whose rewritten
    data is then ``data``), before the publication is stored.

    Attributes:
        client: The connection's id.
        user: The publisher's user id; ``""`` when anonymous.
        channel: The channel published to.
        data: The published data: a JSON value (None when the client published JSON
            ``null``; a publish without data is refused before the hook), or ``bytes``
            from a Protobuf client.
        meta: The connection's meta; None without any.
    """

    client: str
    user: str
    channel: str
    data: Any
    meta: Any = None


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What ``on_publish`` publishes instead of what the client sent (None publishes the
    client's data as it is).

    Attributes:
        data: The JSON value published in place of the client's data
            (``PublishResult(None)`` publishes JSON ``null``).
    """

    data: Any


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class RPCContext:
    """A client's ``rpc`` command, given to the handler registered for its ``method`` with
    ``@hub.rpc(method)`` (a method without a handler goes to the RPC proxy when
    ``proxy_rpc_endpoint`` is set, else it is error 104).

    The handler's return value is the reply's data: a JSON value (or ``bytes`` for Protobuf
    clients); None replies with no data.

    Attributes:
        client: The connection's id.
        user: The caller's user id; ``""`` when anonymous.
        method: The RPC method the client named.
        data: The RPC's data; **None when the client sent none**.
        meta: The connection's meta; None without any.
    """

    client: str
    user: str
    method: str
    data: Any
    meta: Any = None


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class MessageContext:
    """A client's ``send`` (an asynchronous message without a reply), given to
    ``on_message``. Without an ``on_message`` hook a ``send`` disconnects the client (3508).
    A ``ClientError`` it raises is dropped (``send`` has no reply to carry it); a
    ``DisconnectError`` closes the connection.

    Attributes:
        client: The connection's id.
        user: The sender's user id; ``""`` when anonymous.
        data: The message's data; **None when the client sent none**.
        meta: The connection's meta; None without any.
    """

    client: str
    user: str
    data: Any
    meta: Any = None


@dataclass(frozen=True, slots=True)
class DisconnectContext:
    """A connection that ended, given to ``on_disconnect`` after it left its channels. It
    is called for every channel-protocol connection that ends, also for one that never
    completed its connect (refused, or closed before): then ``user`` is ``""``. What it
    raises is logged; the connection is gone either way.

    Attributes:
        client: The connection's id.
        user: The connection's user id; ``""`` when anonymous or never connected.
        code: Why it ended: the code the server closed the connection with (a hook's
            ``DisconnectError``, 3501 bad request, 3502 no connect in time, shutdown 3001,
            expiry 3005, slow 3008, no pong 3012, the server API's ``disconnect``...), the
            same the client is told; 3000 ("connection closed") when the client left or its
            connection broke.
        reason: The reason that goes with ``code``.
        meta: The connection's meta; None without any.
    """

    client: str
    user: str
    code: int
    reason: str
    meta: Any = None


ConnectHook = Callable[[ConnectContext], Awaitable[ConnectResult | None]]
SubscribeHook = Callable[[SubscribeContext], Awaitable[SubscribeResult | None]]
PublishHook = Callable[[PublishContext], Awaitable[PublishResult | None]]
RPCHandler = Callable[[RPCContext], Awaitable[Any]]
MessageHook = Callable[[MessageContext], Awaitable[None]]
DisconnectHook = Callable[[DisconnectContext], Awaitable[None]]
#: A function the server runs as a background task for as long as it serves
#: (``@hub.on_startup``): see :mod:`hubbub.startup`.
StartupHook = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Hooks:
    """The application's hooks; every one is optional."""

    on_connect: ConnectHook | None = None
    on_subscribe: SubscribeHook | None = None
    on_publish: PublishHook | None = None
    on_message: MessageHook | None = None
    on_disconnect: DisconnectHook | None = None
    rpc: dict[str, RPCHandler] = field(default_factory=dict)
    on_startup: list[StartupHook] = field(default_factory=list)
