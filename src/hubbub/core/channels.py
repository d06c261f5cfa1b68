"""Channel names and the options that apply to them.

``chat:room1`` is channel ``room1``'s full name in namespace ``chat``; a name without ``:``
belongs to no namespace and gets the default options. A namespace that is not configured is an
unknown channel (102), except :data:`ROOMS_NAMESPACE`, which always exists: raw rooms
(``/rooms/lobby``) are its channels (``rooms:lobby``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from hubbub.config import ChannelOptions, Namespace
from hubbub.core.codes import ErrorCode
from hubbub.core.names import validate_name
from hubbub.errors import ClientError, InvalidName

NAMESPACE_SEPARATOR: Final = ":"
ROOMS_NAMESPACE: Final = "rooms"


def room_channel(room: str) -> str:
    return f"{ROOMS_NAMESPACE}{NAMESPACE_SEPARATOR}{room}"


class ChannelRules:
    """Resolves channel names to options; built once from the settings."""

    def __init__(self, default: ChannelOptions, namespaces: Iterable[Namespace]) -> None:
        self.default = default
        self._namespaces: dict[str, ChannelOptions] = {ns.name: ns for ns in namespaces}
        self._namespaces.setdefault(ROOMS_NAMESPACE, default)

    def options(self, channel: str) -> ChannelOptions:
        """Options for ``channel``; raises ClientError 107 (bad name) or 102 (unknown)."""
        try:
            validate_name(channel, kind="channel")
        except InvalidName as exc:
            raise ClientError(ErrorCode.BAD_REQUEST, f"bad request: {exc.reason}") from None
        namespace, sep, _ = channel.partition(NAMESPACE_SEPARATOR)
        if not sep:
            return self.default
        options = self._namespaces.get(namespace)
        if options is None:
            raise ClientError(
                ErrorCode.UNKNOWN_CHANNEL, f"unknown channel: no namespace {namespace!r}"
            )
        return options


def allowed(options: ChannelOptions, action: str, user: str) -> bool:
    """Whether the channel's flags let a client with ``user`` (``""``: anonymous) do
    ``action`` (subscribe, publish, history, presence)."""
    suffix = "client" if user else "anonymous"
    return bool(getattr(options, f"allow_{action}_for_{suffix}"))
