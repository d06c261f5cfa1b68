"""The application's hooks: what each hook is given (its context) and may return (its result).

Hooks are plain async functions, registered on a :class:`hubbub.hub.Hub`. They refuse by
raising :class:`hubbub.errors.ClientError` (the client gets that error, the connection stays)
or :class:`hubbub.errors.DisconnectError` (the connection is closed with that code). Any other
exception is logged and the client gets error 100 (internal).

``data`` in a context is what the client sent: the JSON value (``None`` when it sent none), or,
from a Protobuf client whose data is not JSON, its ``bytes``. Results' ``data`` and ``info``
are JSON values (``bytes`` reach Protobuf clients as they are, and fail for JSON clients).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectContext:
    """``user`` is the verified token's ``sub`` ("" without a token)."""

    client: str
    token: str
    data: Any
    name: str
    version: str
    headers: Mapping[str, str]
    user: str = ""


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """Who the client is. ``channels`` are server-side subscriptions made at connect."""

    user: str = ""
    info: Any = None
    data: Any = None
    channels: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SubscribeContext:
    client: str
    user: str
    channel: str
    data: Any
    token: str


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """``info`` is shown to others as the subscriber's chan_info; ``data`` goes to the client."""

    info: Any = None
    data: Any = None


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class PublishContext:
    client: str
    user: str
    channel: str
    data: Any


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


@dataclass(slots=True)  # made per command: not frozen (frozen init costs 2x)
class MessageContext:
    client: str
    user: str
    data: Any


@dataclass(frozen=True, slots=True)
class DisconnectContext:
    client: str
    user: str
    code: int
    reason: str


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
