"""The application's hooks: what each hook is given (its context) and may return (its result).

Hooks are plain async functions, registered on a :class:`hubbub.hub.Hub`. They refuse by
raising :class:`hubbub.errors.ClientError` (the client gets that error, the connection stays)
or :class:`hubbub.errors.DisconnectError` (the connection is closed with that code). Any other
exception is logged and the client gets error 100 (internal).

``data`` in a context is what the client sent: the JSON value (``None`` when it sent none), or,
from a Protobuf client whose data is not JSON, its ``bytes``. Results' ``data`` and ``info``
are JSON values (``bytes`` reach Protobuf clients as they are, and fail for JSON clients).

``meta`` in a context is the connection's meta: the connection token's ``meta`` claim (a JSON
object), or what ``on_connect`` returned as ``ConnectResult.meta``; None without either. It is
the server's own: never sent to any client (not in presence, join/leave or publications).
Treat it as read-only (the same dict is given to every hook of the connection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectContext:
    """``user`` is the verified token's ``sub`` ("" without a token), ``meta`` its ``meta``.

    ``headers`` are the HTTP headers of the connection's handshake, names as sent.
    ``emulated_headers`` are the headers the client put in its connect command
    (centrifuge-js's ``headers`` option, for browsers): names lowercased, values as sent.
    They are kept apart because any client may write anything there, and no reverse proxy
    in front of hubbub can set or strip them: take from them only what the hook checks
    itself (an ``authorization`` token it verifies), never what it would trust because a
    proxy set it (a client address, a user id). To accept a header either way, prefer the
    real one when both are there.
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


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """Who the client is. ``channels`` are server-side subscriptions made at connect (with
    the token's). ``meta``, a JSON object, replaces the token's meta (None keeps it)."""

    user: str = ""
    info: Any = None
    data: Any = None
    channels: list[str] = field(default_factory=list)
    meta: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeContext:
    client: str
    user: str
    channel: str
    data: Any
    token: str
    meta: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """``info`` is shown to others as the subscriber's chan_info; ``data`` goes to the client
    (None for either keeps a subscription token's ``info`` or ``data``)."""

    info: Any = None
    data: Any = None


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class PublishContext:
    client: str
    user: str
    channel: str
    data: Any
    meta: Any = None


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Replace the published data with ``data``."""

    data: Any


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class RPCContext:
    client: str
    user: str
    method: str
    data: Any
    meta: Any = None


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class MessageContext:
    client: str
    user: str
    data: Any
    meta: Any = None


@dataclass(frozen=True, slots=True)
class DisconnectContext:
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


@dataclass(slots=True)
class Hooks:
    """The application's hooks; every one is optional."""

    on_connect: ConnectHook | None = None
    on_subscribe: SubscribeHook | None = None
    on_publish: PublishHook | None = None
    on_message: MessageHook | None = None
    on_disconnect: DisconnectHook | None = None
    rpc: dict[str, RPCHandler] = field(default_factory=dict)
