"""Pusher Channels protocol 7 on the wire: channel names, codes, limits, frames in and out.

Rules of this module:

- Pure: no I/O, no clock, no randomness it did not get (:func:`new_socket_id` takes its
  source). Frames are text (JSON objects); binary frames are not part of the protocol.
- **In**: :func:`parse_client_frame` turns one text frame into one typed message
  (:class:`Subscribe`, :class:`Unsubscribe`, :class:`Ping`, :class:`Pong`, :class:`Signin`,
  :class:`ClientEvent`) or raises :class:`~.errors.ProtocolError`. pusher-js sends ``data``
  as a JSON object; older clients send it as a string holding JSON: both are accepted for
  the ``pusher:*`` events. A client event's ``data`` is kept as the JSON value it was.
- **Out**: every ``encode_*`` returns the text of one frame, so the edge encodes an event
  once and writes the same text to every subscriber. As Pusher does, the ``data`` of the
  server's own events is a string holding JSON (pusher-js parses it back).
- What a message means for a connection (is it subscribed, signed in, may it trigger client
  events) is the session's business, not this module's: here a message is checked only for
  what it says on its own.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hubbub.core import jsontext
from hubbub.dialects.pusher.errors import ProtocolError

#: The protocol version served (``?protocol=7`` in the connection URL).
PROTOCOL_VERSION: Final = 7
#: The longest channel name, in characters (Pusher's limit).
MAX_CHANNEL_NAME: Final = 200
#: The longest event name, in characters (Pusher's limit).
MAX_EVENT_NAME: Final = 200
#: The largest event data, in bytes of UTF-8 (Pusher's default: 10 KiB), for the HTTP API
#: and for client events alike.
MAX_EVENT_DATA: Final = 10 * 1024
#: The most members a presence channel has (Pusher's limit; the session enforces it).
MAX_PRESENCE_MEMBERS: Final = 100
#: The largest presence member (its ``channel_data``), in bytes of UTF-8 (Pusher: 1 KB).
MAX_PRESENCE_MEMBER: Final = 1024
#: The longest presence ``user_id``, in characters (Pusher's limit).
MAX_PRESENCE_USER_ID: Final = 128
#: The activity timeout the server announces by default (seconds): pusher-js pings after
#: this long without a message.
DEFAULT_ACTIVITY_TIMEOUT: Final = 120
#: The prefix of the channel a signed-in user gets its server-to-user events on.
SERVER_TO_USER_PREFIX: Final = "#server-to-user-"
#: What a client event's name must start with.
CLIENT_EVENT_PREFIX: Final = "client-"

_NAME_CHARS: Final = re.compile(r"[-a-zA-Z0-9_=@,.;]+")
_SOCKET_ID: Final = re.compile(r"\d+\.\d+")


# -- error codes -----------------------------------------------------------------------


class ErrorCode(enum.IntEnum):
    """The close codes of ``pusher:error`` as the protocol defines them.

    4000-4099: do not reconnect with the same parameters; 4100-4199: reconnect after backing
    off (1 s or more); 4200-4299: reconnect at once; 4300-4399: other errors.
    """

    #: The app only accepts TLS connections (reconnect with wss://).
    SSL_ONLY = 4000
    #: No app with this key.
    APP_NOT_FOUND = 4001
    #: The app is disabled.
    APP_DISABLED = 4003
    #: The app is over its connection quota.
    OVER_CONNECTION_QUOTA = 4004
    #: No such path.
    PATH_NOT_FOUND = 4005
    #: The version string is malformed.
    INVALID_VERSION = 4006
    #: The protocol version is not supported.
    UNSUPPORTED_PROTOCOL = 4007
    #: No protocol version was given.
    NO_PROTOCOL_VERSION = 4008
    #: The connection is unauthorized (for example: its user's connections were terminated).
    UNAUTHORIZED = 4009
    #: The server is over capacity.
    OVER_CAPACITY = 4100
    #: Generic: reconnect immediately (for example: the server is shutting down).
    RECONNECT_IMMEDIATELY = 4200
    #: A ping was sent and no pong came back in time.
    PONG_NOT_RECEIVED = 4201
    #: Closed after inactivity.
    CLOSED_AFTER_INACTIVITY = 4202
    #: A client event was refused for going over the rate limit.
    CLIENT_EVENT_RATE_LIMIT = 4301


#: A message for each code, to send with it.
ERROR_MESSAGES: Final[Mapping[ErrorCode, str]] = {
    ErrorCode.SSL_ONLY: "Application only accepts SSL connections, reconnect using wss://",
    ErrorCode.APP_NOT_FOUND: "Application does not exist",
    ErrorCode.APP_DISABLED: "Application disabled",
    ErrorCode.OVER_CONNECTION_QUOTA: "Application is over connection quota",
    ErrorCode.PATH_NOT_FOUND: "Path not found",
    ErrorCode.INVALID_VERSION: "Invalid version string format",
    ErrorCode.UNSUPPORTED_PROTOCOL: "Unsupported protocol version",
    ErrorCode.NO_PROTOCOL_VERSION: "No protocol version supplied",
    ErrorCode.UNAUTHORIZED: "Connection is unauthorized",
    ErrorCode.OVER_CAPACITY: "Over capacity",
    ErrorCode.RECONNECT_IMMEDIATELY: "Generic reconnect immediately",
    ErrorCode.PONG_NOT_RECEIVED: "Pong reply not received",
    ErrorCode.CLOSED_AFTER_INACTIVITY: "Closed after inactivity",
    ErrorCode.CLIENT_EVENT_RATE_LIMIT: "Client event rejected due to rate limit",
}


class Reconnect(enum.Enum):
    """What a client does after the connection closed with a code."""

    NEVER = "never"
    BACKOFF = "backoff"
    IMMEDIATELY = "immediately"


def reconnect_policy(code: int) -> Reconnect:
    """What the protocol tells a client to do after a close with ``code`` (4000-4299).

    Codes outside 4100-4299 (4000-4099 and anything else) say: do not reconnect.
    """
    if 4100 <= code < 4200:
        return Reconnect.BACKOFF
    if 4200 <= code < 4300:
        return Reconnect.IMMEDIATELY
    return Reconnect.NEVER


# -- channels --------------------------------------------------------------------------


class ChannelKind(enum.Enum):
    """The kinds of channel, told apart by the name's prefix."""

    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    PRIVATE_ENCRYPTED = "private-encrypted"
    CACHE = "cache"
    PRIVATE_CACHE = "private-cache"
    PRESENCE_CACHE = "presence-cache"
    PRIVATE_ENCRYPTED_CACHE = "private-encrypted-cache"
    SERVER_TO_USER = "server-to-user"

    @property
    def needs_auth(self) -> bool:
        """Whether subscribing needs an ``auth`` signature (private, presence, encrypted)."""
        return self not in (ChannelKind.PUBLIC, ChannelKind.CACHE, ChannelKind.SERVER_TO_USER)

    @property
    def is_presence(self) -> bool:
        """Whether members are tracked (``channel_data`` signed with the subscription)."""
        return self in (ChannelKind.PRESENCE, ChannelKind.PRESENCE_CACHE)

    @property
    def is_encrypted(self) -> bool:
        """Whether payloads are end-to-end encrypted (the server relays without reading)."""
        return self in (ChannelKind.PRIVATE_ENCRYPTED, ChannelKind.PRIVATE_ENCRYPTED_CACHE)

    @property
    def is_cache(self) -> bool:
        """Whether the last event is kept and sent on subscribe (else ``pusher:cache_miss``)."""
        return self in (
            ChannelKind.CACHE,
            ChannelKind.PRIVATE_CACHE,
            ChannelKind.PRESENCE_CACHE,
            ChannelKind.PRIVATE_ENCRYPTED_CACHE,
        )

    @property
    def allows_client_events(self) -> bool:
        """Whether ``client-*`` events may be sent on it (authorized, not encrypted: pusher-js
        refuses client events on encrypted channels), when the app allows them at all."""
        return self.needs_auth and not self.is_encrypted


# Longest prefix first: "private-encrypted-cache-" before "private-encrypted-" before "private-".
_PREFIXES: Final = (
    ("private-encrypted-cache-", ChannelKind.PRIVATE_ENCRYPTED_CACHE),
    ("private-encrypted-", ChannelKind.PRIVATE_ENCRYPTED),
    ("private-cache-", ChannelKind.PRIVATE_CACHE),
    ("presence-cache-", ChannelKind.PRESENCE_CACHE),
    ("private-", ChannelKind.PRIVATE),
    ("presence-", ChannelKind.PRESENCE),
    ("cache-", ChannelKind.CACHE),
    (SERVER_TO_USER_PREFIX, ChannelKind.SERVER_TO_USER),
)


def channel_kind(name: str) -> ChannelKind:
    """The kind of a channel from its name (no validation: see :func:`check_channel_name`)."""
    for prefix, kind in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return ChannelKind.PUBLIC


def channel_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid channel name, or ``None`` when it is.

    Valid: a string of 1-200 characters from ``A-Z a-z 0-9 - _ = @ , . ;``, or
    ``#server-to-user-`` followed by at least one of those.
    """
    if not isinstance(name, str) or not name:
        return "channel name must be a non-empty string"
    if len(name) > MAX_CHANNEL_NAME:
        return f"channel name longer than {MAX_CHANNEL_NAME} characters"
    rest = name[len(SERVER_TO_USER_PREFIX) :] if name.startswith(SERVER_TO_USER_PREFIX) else name
    if not _NAME_CHARS.fullmatch(rest):
        return "channel name may only contain A-Z, a-z, 0-9 and - _ = @ , . ;"
    return None


def check_channel_name(name: object) -> str:
    """``name`` if it is a valid channel name; else raise :class:`ProtocolError` (no code)."""
    problem = channel_name_problem(name)
    if problem is not None:
        raise ProtocolError(f"Invalid channel name {name!r}: {problem}")
    assert isinstance(name, str)
    return name


def server_to_user_channel(user_id: str) -> str:
    """The channel a signed-in user receives server-to-user events on."""
    return SERVER_TO_USER_PREFIX + user_id


def is_valid_socket_id(value: object) -> bool:
    """Whether ``value`` has a socket id's form: digits, a dot, digits."""
    return isinstance(value, str) and _SOCKET_ID.fullmatch(value) is not None


def new_socket_id(randbelow: Callable[[int], int]) -> str:
    """A fresh socket id (``"<digits>.<digits>"``) from ``randbelow`` (e.g.
    :func:`secrets.randbelow`); each half is below 10**10 and never has a leading zero."""
    return f"{randbelow(9 * 10**9) + 10**9}.{randbelow(9 * 10**9) + 10**9}"


# -- client messages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``pusher:subscribe``. ``auth`` is ``key:signature`` ('' or absent for public
    channels); ``channel_data`` the presence member as the JSON string the backend signed."""

    channel: str
    auth: str | None = None
    channel_data: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``pusher:unsubscribe``."""

    channel: str


@dataclass(frozen=True, slots=True)
class Ping:
    """``pusher:ping``: answer :func:`encode_pong`."""


@dataclass(frozen=True, slots=True)
class Pong:
    """``pusher:pong``: the answer to the server's ``pusher:ping``."""


@dataclass(frozen=True, slots=True)
class Signin:
    """``pusher:signin``: ``auth`` signs ``user_data``, a JSON object as a string."""

    auth: str
    user_data: str


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """A ``client-*`` event to relay to the channel's other subscribers. ``data`` is the
    JSON value the client sent (any type); ``size`` its size in bytes as JSON."""

    event: str
    channel: str
    data: Any
    size: int


ClientMessage = Subscribe | Unsubscribe | Ping | Pong | Signin | ClientEvent


def _data_object(event: str, data: object) -> dict[str, Any]:
    """The ``data`` of a ``pusher:*`` event as an object (it may come as a JSON string)."""
    if data is None:
        return {}
    if isinstance(data, str):
        try:
            data = jsontext.loads(data) if data else {}
        except ValueError:
            raise ProtocolError(f"{event}: data is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{event}: data must be an object")
    return data


def _optional_str(event: str, data: Mapping[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"{event}: {field} must be a string")
    return value


def _json_size(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def parse_client_frame(text: str | bytes) -> ClientMessage:
    """One text frame from a client as a typed message.

    Raises :class:`ProtocolError` (no code: the connection stays) for a frame that is not a
    JSON object with a string ``event``, an unknown ``pusher:`` event, an invalid channel
    name, missing fields, a client event without a channel or over :data:`MAX_EVENT_DATA`,
    or an event name that is neither ``pusher:*`` nor ``client-*``.
    """
    try:
        frame = jsontext.loads(text)  # (RFC 8259 only: no NaN, exact big integers)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("Message is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolError("Message must be a JSON object")
    event = frame.get("event")
    if not isinstance(event, str):
        raise ProtocolError("Message has no event name")
    raw_data = frame.get("data")
    if event == "pusher:ping":
        return Ping()
    if event == "pusher:pong":
        return Pong()
    if event in ("pusher:subscribe", "pusher:unsubscribe"):
        data = _data_object(event, raw_data)
        channel = check_channel_name(data.get("channel"))
        if event == "pusher:unsubscribe":
            return Unsubscribe(channel)
        return Subscribe(
            channel,
            auth=_optional_str(event, data, "auth"),
            channel_data=_optional_str(event, data, "channel_data"),
        )
    if event == "pusher:signin":
        data = _data_object(event, raw_data)
        auth = _optional_str(event, data, "auth")
        user_data = _optional_str(event, data, "user_data")
        if not auth or not user_data:
            raise ProtocolError("pusher:signin needs auth and user_data")
        return Signin(auth, user_data)
    if event.startswith(CLIENT_EVENT_PREFIX):
        if len(event) > MAX_EVENT_NAME:
            raise ProtocolError(f"Event name longer than {MAX_EVENT_NAME} characters")
        channel = check_channel_name(frame.get("channel"))
        size = _json_size(raw_data)
        if size > MAX_EVENT_DATA:
            raise ProtocolError(f"Client event data over {MAX_EVENT_DATA} bytes")
        return ClientEvent(event, channel, raw_data, size)
    if event.startswith("pusher:"):
        raise ProtocolError(f"Unsupported event {event!r}")
    raise ProtocolError(f"Client event names must start with {CLIENT_EVENT_PREFIX!r}")


@dataclass(frozen=True, slots=True)
class Member:
    """A presence member: ``user_id`` (always a string) and its ``user_info`` (any JSON)."""

    user_id: str
    user_info: Any = None


def parse_channel_data(text: str | None) -> Member:
    """The member a presence subscription's ``channel_data`` names.

    ``{"user_id": ..., "user_info": ...}``; a number ``user_id`` (what Laravel sends) is
    taken as its decimal string. Raises :class:`ProtocolError` when the text is not such an
    object, is over :data:`MAX_PRESENCE_MEMBER` bytes, or ``user_id`` is empty or over
    :data:`MAX_PRESENCE_USER_ID` characters.
    """
    if text and len(text.encode()) > MAX_PRESENCE_MEMBER:
        raise ProtocolError(f"Presence channel_data over {MAX_PRESENCE_MEMBER} bytes")
    try:
        data = jsontext.loads(text) if text else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProtocolError("Presence channel_data must be a JSON object")
    user_id = data.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id:
        raise ProtocolError("Presence channel_data needs a user_id")
    if len(user_id) > MAX_PRESENCE_USER_ID:
        raise ProtocolError(f"Presence user_id longer than {MAX_PRESENCE_USER_ID} characters")
    return Member(user_id, data.get("user_info"))


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """The user of a ``pusher:signin``: its ``id`` and the whole ``user_data`` object."""

    id: str
    data: Mapping[str, Any]


def parse_user_data(text: str) -> SignedInUser:
    """The user a sign-in's ``user_data`` names (a JSON object with a non-empty string
    ``id``, as pusher-js requires); raises :class:`ProtocolError` otherwise."""
    try:
        data = jsontext.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProtocolError("user_data must be a JSON object")
    user_id = data.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ProtocolError("user_data needs a non-empty string id")
    return SignedInUser(user_id, data)


# -- server events ---------------------------------------------------------------------


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _frame(event: str, data: object = None, channel: str | None = None, **extra: str) -> str:
    frame: dict[str, object] = {"event": event}
    if channel is not None:
        frame["channel"] = channel
    if data is not None:
        frame["data"] = data
    frame.update(extra)
    return _compact(frame)


def encode_connection_established(
    socket_id: str, activity_timeout: int = DEFAULT_ACTIVITY_TIMEOUT
) -> str:
    """The first frame of a connection: its socket id and activity timeout (seconds)."""
    payload = {"socket_id": socket_id, "activity_timeout": activity_timeout}
    return _frame("pusher:connection_established", _compact(payload))


def encode_error(message: str, code: int | None = None) -> str:
    """``pusher:error``; a ``code`` of 4000-4299 precedes a close with that code."""
    return _frame("pusher:error", {"code": code, "message": message})


def encode_ping() -> str:
    """The server's ``pusher:ping`` (after the activity timeout without a message)."""
    return _frame("pusher:ping", {})


def encode_pong() -> str:
    """The answer to a client's ``pusher:ping``."""
    return _frame("pusher:pong", {})


def presence_payload(members: Mapping[str, Any]) -> dict[str, Any]:
    """``{"presence": {"ids": [...], "hash": {id: user_info}, "count": n}}`` for the members
    (user id -> user_info), ids in the mapping's order, ``count`` the number of users."""
    return {"presence": {"ids": list(members), "hash": dict(members), "count": len(members)}}


def encode_subscription_succeeded(channel: str, members: Mapping[str, Any] | None = None) -> str:
    """``pusher_internal:subscription_succeeded``; for a presence channel pass ``members``
    (user id -> user_info, the subscriber included)."""
    payload = {} if members is None else presence_payload(members)
    return _frame("pusher_internal:subscription_succeeded", _compact(payload), channel)


def encode_subscription_count(channel: str, count: int) -> str:
    """``pusher_internal:subscription_count``: how many connections are subscribed."""
    payload = _compact({"subscription_count": count})
    return _frame("pusher_internal:subscription_count", payload, channel)


def encode_member_added(channel: str, member: Member) -> str:
    """``pusher_internal:member_added``: send once per user (its first connection)."""
    payload = _compact({"user_id": member.user_id, "user_info": member.user_info})
    return _frame("pusher_internal:member_added", payload, channel)


def encode_member_removed(channel: str, user_id: str) -> str:
    """``pusher_internal:member_removed``: send once per user (its last connection left)."""
    return _frame("pusher_internal:member_removed", _compact({"user_id": user_id}), channel)


def encode_subscription_error(channel: str, message: str, status: int = 401) -> str:
    """``pusher:subscription_error`` on ``channel``: the subscription was refused (pusher-js
    hands it to the channel's ``pusher:subscription_error`` handlers)."""
    kind = "AuthError" if status in (401, 403) else "SubscriptionError"
    error: dict[str, object] = {"type": kind, "error": message, "status": status}
    return _frame("pusher:subscription_error", error, channel)


def encode_cache_miss(channel: str) -> str:
    """``pusher:cache_miss``: a cache channel was subscribed with no event kept."""
    return _frame("pusher:cache_miss", channel=channel)


def encode_signin_success(user_data: str) -> str:
    """``pusher:signin_success``, carrying the signed ``user_data`` string back."""
    return _frame("pusher:signin_success", _compact({"user_data": user_data}))


def encode_event(event: str, channel: str, data: Any, user_id: str | None = None) -> str:
    """An event on a channel: from the HTTP API (``data`` the string it was given) or a client
    event relayed (``data`` the JSON value the client sent; ``user_id`` of the sender on a
    presence channel)."""
    if user_id is None:
        return _frame(event, data, channel)
    return _frame(event, data, channel, user_id=user_id)
