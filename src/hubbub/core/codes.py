"""Client error codes and disconnect codes of the Centrifugo client protocol.

Errors (100-112) answer one command; the connection stays. Disconnects close the connection
with a WebSocket close code: 3000-3499 (and 4000-4499) tell the SDK to reconnect, 3500-3999
(and 4500-4999) that it must not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ErrorCode(IntEnum):
    INTERNAL = 100
    UNAUTHORIZED = 101
    UNKNOWN_CHANNEL = 102
    PERMISSION_DENIED = 103
    METHOD_NOT_FOUND = 104
    ALREADY_SUBSCRIBED = 105
    LIMIT_EXCEEDED = 106
    BAD_REQUEST = 107
    NOT_AVAILABLE = 108
    TOKEN_EXPIRED = 109
    EXPIRED = 110
    TOO_MANY_REQUESTS = 111
    UNRECOVERABLE_POSITION = 112


ERROR_MESSAGES: dict[int, str] = {
    ErrorCode.INTERNAL: "internal server error",
    ErrorCode.UNAUTHORIZED: "unauthorized",
    ErrorCode.UNKNOWN_CHANNEL: "unknown channel",
    ErrorCode.PERMISSION_DENIED: "permission denied",
    ErrorCode.METHOD_NOT_FOUND: "method not found",
    ErrorCode.ALREADY_SUBSCRIBED: "already subscribed",
    ErrorCode.LIMIT_EXCEEDED: "limit exceeded",
    ErrorCode.BAD_REQUEST: "bad request",
    ErrorCode.NOT_AVAILABLE: "not available",
    ErrorCode.TOKEN_EXPIRED: "token expired",
    ErrorCode.EXPIRED: "expired",
    ErrorCode.TOO_MANY_REQUESTS: "too many requests",
    ErrorCode.UNRECOVERABLE_POSITION: "unrecoverable position",
}

#: Errors the client may retry as they are.
TEMPORARY_ERRORS = frozenset({ErrorCode.INTERNAL, ErrorCode.TOO_MANY_REQUESTS})


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Why a connection is closed: the WebSocket close code and reason sent to the client."""

    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        """Whether the SDK is told to reconnect (it decides from the code range)."""
        return not (3500 <= self.code < 4000 or 4500 <= self.code < 5000)


class Disconnects:
    """The protocol's disconnects; SDKs act on the code, the reason is for people."""

    SHUTDOWN = Disconnect(3001, "shutdown")
    SERVER_ERROR = Disconnect(3004, "internal server error")
    EXPIRED = Disconnect(3005, "connection expired")
    SLOW = Disconnect(3008, "slow")
    WRITE_ERROR = Disconnect(3009, "write error")
    INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
    FORCE_RECONNECT = Disconnect(3011, "force reconnect")
    NO_PONG = Disconnect(3012, "no pong")
    TOO_MANY_REQUESTS = Disconnect(3013, "too many requests")
    INVALID_TOKEN = Disconnect(3500, "invalid token")
    BAD_REQUEST = Disconnect(3501, "bad request")
    STALE = Disconnect(3502, "stale")
    FORCE_NO_RECONNECT = Disconnect(3503, "force disconnect")
    CONNECTION_LIMIT = Disconnect(3504, "connection limit")
    CHANNEL_LIMIT = Disconnect(3505, "channel limit")
    INAPPROPRIATE_PROTOCOL = Disconnect(3506, "inappropriate protocol")
    PERMISSION_DENIED = Disconnect(3507, "permission denied")
    NOT_AVAILABLE = Disconnect(3508, "not available")
    TOO_MANY_ERRORS = Disconnect(3509, "too many errors")
