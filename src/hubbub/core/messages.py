"""The Centrifugo client protocol's messages as typed values, whatever the wire format.

A codec (``hubbub.dialects.centrifuge.jsonwire`` for JSON, ``...protowire`` for Protobuf)
turns frames into :class:`Frame` objects holding one request each, and turns :class:`Reply`
and push objects into frames. The session handler (``hubbub.dialects.centrifuge.client``)
sees only these types.

Rules every codec keeps:

- A request's fields are already of their type (strings, ints, bools); a field of the wrong
  type makes the frame's ``problem`` (answered with 107, the connection stays). Whether a field
  is *required* (a non-empty channel) is the handler's business, not the codec's.
- Payloads (``data``) are :class:`Payload`: the JSON text when the bytes are JSON, and the
  bytes as sent when they are not (only a binary codec can carry those).
- Outgoing data (:data:`Data`) is JSON text (``str``) or opaque bytes; a text codec that is
  handed bytes that are not JSON raises :class:`NotEncodable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from hubbub.core.jsontext import NotJSON, dumps, loads
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication

#: JSON text (``str``) or bytes that are not JSON (only binary codecs carry those).
Data: TypeAlias = str | bytes


class NotEncodable(ValueError):
    """A codec cannot write a value (binary data for a JSON client)."""


class _Unparsed:
    __slots__ = ()


_UNPARSED: Final = _Unparsed()


class _Unwritten:
    __slots__ = ()


_UNWRITTEN: Final = _Unwritten()


class Payload:
    """A client's ``data``: ``text`` is its JSON text when it is JSON (verbatim as sent by a
    Protobuf client, compact from a JSON client), else None; ``binary`` is the bytes of data
    that is not JSON (Protobuf clients only), else None. ``parsed`` is the value when the
    codec already had it. Never changed once made (equal when ``text`` and ``binary`` are).

    :meth:`of_value` makes one from a parsed value whose text is written only when first
    asked for (with :func:`hubbub.core.jsontext.dumps`): an RPC's data goes to its handler
    as a value and is never written at all. A plain slotted class, not a dataclass: made per
    command."""

    __slots__ = ("_text", "binary", "parsed")

    def __init__(self, text: str | None, binary: bytes | None = None, parsed: Any = _UNPARSED):
        self._text: str | _Unwritten | None = text
        self.binary = binary
        self.parsed = parsed

    @classmethod
    def of_value(cls, value: Any) -> Payload:
        """JSON ``value`` (not None) as a codec parsed it; the caller makes sure that
        ``dumps`` can write it (it is not nested too deeply)."""
        payload = cls.__new__(cls)
        payload._text = _UNWRITTEN
        payload.binary = None
        payload.parsed = value
        return payload

    @property
    def text(self) -> str | None:
        text = self._text
        if type(text) is _Unwritten:
            text = self._text = dumps(self.parsed)
        return text  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if type(other) is not Payload:
            return NotImplemented
        return self.text == other.text and self.binary == other.binary

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Payload(text={self.text!r}, binary={self.binary!r})"

    @classmethod
    def of_bytes(cls, raw: bytes) -> Payload:
        """Bytes as a Protobuf client sends them: JSON when they are JSON, else binary."""
        try:
            value = loads(raw)  # bytes: one pass, UTF-8 checked by the parser
            text = raw.decode()  # (json's fallback also reads UTF-16 and -32: not JSON here)
        except (UnicodeDecodeError, NotJSON):
            return cls(None, raw)
        return cls(text, None, value)

    def value(self) -> Any:
        """What hooks see: the JSON value, or the bytes of binary data."""
        if self.parsed is not _UNPARSED:
            return self.parsed
        if self.text is None:
            return self.binary
        return loads(self.text)

    @property
    def data(self) -> Data:
        """As outgoing :data:`Data`."""
        text = self.text
        return text if text is not None else (self.binary or b"")


# -- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A subscribe request, or a connect's entry in ``subs`` (then ``channel`` is the key)."""

    channel: str = ""
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: int = 0
    data: Payload | None = None
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    flag: int = 0
    #: The tags filter (``tf``), None when none was sent (see :mod:`hubbub.core.tagsfilter`).
    tags_filter: Filter | None = None
    #: The delta compression asked for (``"fossil"``), ``""`` for none.
    delta: str = ""


@dataclass(frozen=True, slots=True)
class Connect:
    """A connect request. ``headers``: the client's emulated HTTP headers (centrifuge-js's
    ``headers`` option), names and values as sent; not the connection's own headers."""

    token: str = ""
    data: Payload | None = None
    subs: Mapping[str, Subscribe] = field(default_factory=dict)
    name: str = ""
    version: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str = ""


@dataclass(slots=True)  # not frozen: made per command (frozen init costs 2x)
class Publish:
    channel: str = ""
    data: Payload | None = None


@dataclass(frozen=True, slots=True)
class Presence:
    channel: str = ""


@dataclass(frozen=True, slots=True)
class PresenceStats:
    channel: str = ""


@dataclass(frozen=True, slots=True)
class Since:
    offset: int = 0
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class History:
    channel: str = ""
    limit: int = 0
    since: Since | None = None
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(slots=True)  # not frozen: made per command (frozen init costs 2x)
class Send:
    data: Payload | None = None


@dataclass(slots=True)  # not frozen: made per command (frozen init costs 2x)
class RPC:
    method: str = ""
    data: Payload | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    token: str = ""


@dataclass(frozen=True, slots=True)
class SubRefresh:
    channel: str = ""
    token: str = ""


Request: TypeAlias = (
    Connect
    | Subscribe
    | Unsubscribe
    | Publish
    | Presence
    | PresenceStats
    | History
    | Ping
    | Send
    | RPC
    | Refresh
    | SubRefresh
)

#: The protocol's method names, by request type (codecs use them as keys or enum names).
METHOD_OF: Final[Mapping[type, str]] = MappingProxyType(
    {
        Connect: "connect",
        Subscribe: "subscribe",
        Unsubscribe: "unsubscribe",
        Publish: "publish",
        Presence: "presence",
        PresenceStats: "presence_stats",
        History: "history",
        Ping: "ping",
        Send: "send",
        RPC: "rpc",
        Refresh: "refresh",
        SubRefresh: "sub_refresh",
    }
)


@dataclass(slots=True)  # not frozen: made once per command, frozen init costs twice as much
class Frame:
    """One decoded command: its id and request. ``request`` is None for a pong (a command
    with no request at all, ``kind == "pong"``) and for an unknown method (``kind ==
    "unknown"``); ``problem`` says why a request is malformed (the request is then None and
    ``kind`` names its method)."""

    id: int
    request: Request | None
    kind: str
    problem: str | None = None


def frame_of(cid: int, request: Request) -> Frame:
    return Frame(cid, request, METHOD_OF[type(request)])


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    expires: bool = False
    ttl: int = 0
    recoverable: bool = False
    epoch: str = ""
    publications: tuple[Publication, ...] = ()
    recovered: bool = False
    offset: int = 0
    positioned: bool = False
    data: Data | None = None
    was_recovering: bool = False
    #: Delta compression was negotiated: publications of this subscription (the ones in this
    #: result too) carry their data as the JSON protocol sends deltas (a JSON string), and
    #: may be deltas (``delta: true``) against the previous one.
    delta: bool = False


@dataclass(frozen=True, slots=True)
class ConnectResult:
    client: str
    version: str
    expires: bool = False
    ttl: int = 0
    data: Data | None = None
    subs: Mapping[str, SubscribeResult] = field(default_factory=dict)
    ping: int = 0
    pong: bool = False
    #: An emulated connection's session id and the node holding it (``/emulation`` requests
    #: name both); empty otherwise.
    session: str = ""
    node: str = ""


@dataclass(frozen=True, slots=True)
class UnsubscribeResult:
    pass


@dataclass(frozen=True, slots=True)
class PublishResult:
    pass


@dataclass(frozen=True, slots=True)
class PresenceResult:
    presence: Mapping[str, ClientInfo]


@dataclass(frozen=True, slots=True)
class PresenceStatsResult:
    num_clients: int
    num_users: int


@dataclass(frozen=True, slots=True)
class HistoryResult:
    publications: tuple[Publication, ...]
    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class PingResult:
    pass


@dataclass(slots=True)  # not frozen: made per command (frozen init costs 2x)
class RPCResult:
    data: Data | None = None


@dataclass(frozen=True, slots=True)
class RefreshResult:
    client: str
    version: str
    expires: bool = False
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class SubRefreshResult:
    expires: bool = False
    ttl: int = 0


Result: TypeAlias = (
    ConnectResult
    | SubscribeResult
    | UnsubscribeResult
    | PublishResult
    | PresenceResult
    | PresenceStatsResult
    | HistoryResult
    | PingResult
    | RPCResult
    | RefreshResult
    | SubRefreshResult
)

RESULT_METHOD: Final[Mapping[type, str]] = MappingProxyType(
    {
        ConnectResult: "connect",
        SubscribeResult: "subscribe",
        UnsubscribeResult: "unsubscribe",
        PublishResult: "publish",
        PresenceResult: "presence",
        PresenceStatsResult: "presence_stats",
        HistoryResult: "history",
        PingResult: "ping",
        RPCResult: "rpc",
        RefreshResult: "refresh",
        SubRefreshResult: "sub_refresh",
    }
)


@dataclass(frozen=True, slots=True)
class Error:
    """The one error shape: a code of :class:`hubbub.core.codes.ErrorCode`, a message for
    people, and whether the same command may succeed when retried."""

    code: int
    message: str
    temporary: bool = False


@dataclass(slots=True)  # not frozen: made per command (frozen init costs 2x)
class Reply:
    """The answer to command ``id``: a result or an error."""

    id: int
    result: Result | None = None
    error: Error | None = None


# -- pushes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pub:
    channel: str
    pub: Publication


@dataclass(frozen=True, slots=True)
class Join:
    channel: str
    info: ClientInfo


@dataclass(frozen=True, slots=True)
class Leave:
    channel: str
    info: ClientInfo


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The server ended a subscription (codes below 2500 end it; 2500 and up make the SDK
    resubscribe)."""

    channel: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The server subscribed the client to ``channel``."""

    channel: str
    result: SubscribeResult


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The server moved the connection's expiry (server API ``refresh``): it now ends in
    ``ttl`` seconds unless the client refreshes its token, or (``expires`` false) never."""

    expires: bool
    ttl: int = 0


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The server ends the connection with ``code`` and ``reason``: the last message of a
    stream that has no close frame to carry them (HTTP streams, SSE)."""

    code: int
    reason: str


Push: TypeAlias = Pub | Join | Leave | Unsubscribed | Subscribed | Refreshed | Disconnected
