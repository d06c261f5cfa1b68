"""The state of one client connection speaking the channel protocol. Pure bookkeeping.

::

    CONNECTING --connect ok--> CONNECTED --close--> CLOSED
        |                                             ^
        +------------- close / bad command -----------+

Per channel a subscription is SUBSCRIBING (reply not sent yet) or SUBSCRIBED. Methods raise
:class:`hubbub.errors.DisconnectError` for what ends the connection (commands before connect,
a second connect) and :class:`hubbub.errors.ClientError` for what only fails one command.
"""

from __future__ import annotations

from enum import Enum

from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.errors import ClientError, DisconnectError


class State(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class SubState(Enum):
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"


def _bad_request(reason: str) -> DisconnectError:
    return DisconnectError(
        Disconnects.BAD_REQUEST.code, f"{Disconnects.BAD_REQUEST.reason}: {reason}"
    )


class Session:
    """Connection state; see the module docstring for the transitions."""

    __slots__ = ("channel_limit", "client_id", "conn_info", "state", "subs", "user")

    def __init__(self, client_id: str, channel_limit: int) -> None:
        self.client_id = client_id
        self.channel_limit = channel_limit
        self.state = State.CONNECTING
        self.user = ""
        self.conn_info: str | None = None
        self.subs: dict[str, SubState] = {}

    def check_connect(self) -> None:
        if self.state is not State.CONNECTING:
            raise _bad_request("connect sent twice")

    def connected(self, user: str, conn_info: str | None) -> None:
        self.check_connect()
        self.state = State.CONNECTED
        self.user = user
        self.conn_info = conn_info

    def require_connected(self, method: str) -> None:
        if self.state is not State.CONNECTED:
            raise _bad_request(f"{method} before connect")

    def begin_subscribe(self, channel: str) -> None:
        """Mark ``channel`` as subscribing; 105 if already there, 106 over the limit."""
        if channel in self.subs:
            raise ClientError(ErrorCode.ALREADY_SUBSCRIBED)
        if len(self.subs) >= self.channel_limit:
            raise ClientError(
                ErrorCode.LIMIT_EXCEEDED,
                f"limit exceeded: at most {self.channel_limit} channels per connection",
            )
        self.subs[channel] = SubState.SUBSCRIBING

    def subscribed(self, channel: str) -> None:
        self.subs[channel] = SubState.SUBSCRIBED

    def drop(self, channel: str) -> bool:
        """Forget ``channel``; True if it was subscribed or subscribing."""
        return self.subs.pop(channel, None) is not None

    def is_subscribed(self, channel: str) -> bool:
        return self.subs.get(channel) is SubState.SUBSCRIBED

    def close(self) -> list[str]:
        """Enter CLOSED; return the channels that were subscribed (to clean up)."""
        self.state = State.CLOSED
        channels = [ch for ch, st in self.subs.items() if st is SubState.SUBSCRIBED]
        self.subs.clear()
        return channels
