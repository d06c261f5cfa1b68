"""Channel names and the options that apply to them, with Centrifugo's meanings.

``chat:room1`` is channel ``room1``'s full name in namespace ``chat``; a name without ``:``
belongs to no namespace and gets the default options. A namespace that is not configured is an
unknown channel (102), except :data:`ROOMS_NAMESPACE`, which always exists: raw rooms
(``/rooms/lobby``) are its channels (``rooms:lobby``).

Two boundaries decide who may subscribe without a subscription token
(:func:`may_subscribe`): a name starting with :data:`PRIVATE_PREFIX` (``$chat:x``; the
namespace is read after the prefix) never may; a *user-limited* name, with
:data:`USER_BOUNDARY` (``dm:chat#alice,bob``), may for the users listed after the last ``#``
when the namespace has ``allow_user_limited_channels``, and for nobody else. Publishing to
such a channel and reading its history or presence takes being subscribed to it
(:func:`restricted`), as well as the namespace's flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from hubbub.config import ChannelOptions, Namespace
from hubbub.core.codes import ErrorCode
from hubbub.core.names import validate_name
from hubbub.errors import ClientError, InvalidName

NAMESPACE_SEPARATOR: Final = ":"
ROOMS_NAMESPACE: Final = "rooms"
#: Channels whose name starts with it need a subscription token (Centrifugo's private prefix).
PRIVATE_PREFIX: Final = "$"
#: Separates a user-limited channel's name from the users allowed in it.
USER_BOUNDARY: Final = "#"


def room_channel(room: str) -> str:
    return f"{ROOMS_NAMESPACE}{NAMESPACE_SEPARATOR}{room}"


class ChannelRules:
    """Resolves channel names to options; built once from the settings."""

    def __init__(
        self,
        default: ChannelOptions,
        namespaces: Iterable[Namespace],
        adjust: Callable[[str, ChannelOptions], ChannelOptions] | None = None,
    ) -> None:
        """``adjust``: ``(channel, options)`` -> the options that apply to ``channel`` (the
        Pusher apps' cache channels keep their last event); pure, and it returns the same
        object for the same arguments."""
        self.default = default
        self._namespaces: dict[str, ChannelOptions] = {ns.name: ns for ns in namespaces}
        self._namespaces.setdefault(ROOMS_NAMESPACE, default)
        self._adjust = adjust

    def options(self, channel: str) -> ChannelOptions:
        """Options for ``channel``; raises ClientError 107 (bad name) or 102 (unknown)."""
        try:
            validate_name(channel, kind="channel")
        except InvalidName as exc:
            raise ClientError(ErrorCode.BAD_REQUEST, f"bad request: {exc.reason}") from None
        name = channel[1:] if channel.startswith(PRIVATE_PREFIX) else channel
        namespace, sep, _ = name.partition(NAMESPACE_SEPARATOR)
        if not sep:
            return self.default
        options = self._namespaces.get(namespace)
        if options is None:
            raise ClientError(
                ErrorCode.UNKNOWN_CHANNEL, f"unknown channel: no namespace {namespace!r}"
            )
        if self._adjust is not None:
            return self._adjust(channel, options)
        return options


def restricted(channel: str) -> bool:
    """Whether ``channel`` is private (``$``) or user-limited (``#``): clients publish to it,
    and read its history and presence, only while subscribed to it (hubbub's rule; Centrifugo
    checks these names at subscribe only and leaves the rest to the namespace's flags)."""
    return channel.startswith(PRIVATE_PREFIX) or USER_BOUNDARY in channel


def may_subscribe(channel: str, options: ChannelOptions, user: str) -> bool:
    """Whether a client of ``user`` may subscribe to ``channel`` without a subscription token
    (server-side subscriptions and tokens are not asked): private (``$``) channels never,
    user-limited (``#``) channels only for their users where the namespace allows them (the
    flags are not asked then), other channels as the flags say."""
    if channel.startswith(PRIVATE_PREFIX):
        return False
    if USER_BOUNDARY in channel:
        if not options.allow_user_limited_channels or not user:
            return False
        return user in channel.rpartition(USER_BOUNDARY)[2].split(",")
    return allowed(options, "subscribe", user)


def allowed(options: ChannelOptions, action: str, user: str) -> bool:
    """Whether the channel's flags let a client with ``user`` (``""``: anonymous) do
    ``action`` (subscribe, publish, history, presence)."""
    suffix = "client" if user else "anonymous"
    return bool(getattr(options, f"allow_{action}_for_{suffix}"))
