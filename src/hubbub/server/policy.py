"""How a dialect wants its WebSocket connections kept alive and cut off, whatever edge
carries them (:mod:`hubbub.server.websocket` on aiohttp, :mod:`hubbub.server.asgi_websocket`
on an ASGI server)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hubbub.core.closecode import CloseCode
from hubbub.dialects.centrifuge import connection as centrifuge
from hubbub.dialects.centrifuge.codec import Codec
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.dialects.centrifuge.uniwire import disconnect_push
from hubbub.dialects.pusher import protocol as pusher
from hubbub.dialects.pusher.session import PONG_TIMEOUT as PUSHER_PONG_TIMEOUT
from hubbub.dialects.pusher.session import SLOW as PUSHER_SLOW
from hubbub.pushersettings import PusherApp


@dataclass(frozen=True, slots=True)
class Policy:
    """How a dialect wants its connections kept alive and cut off.

    ``ping``: ``None`` sends WebSocket ping frames after ``ping_interval`` of silence; a string
    is posted as an application-level ping message every ``ping_interval`` (the Centrifugo
    protocol's ``{}``: its SDKs reconnect when pings stop coming, busy or not).
    ``no_pong``: close code and reason for a peer that stays silent after a ping; ``None``
    drops its TCP connection. ``slow``: close code and reason for a peer whose unsent data
    passes the limit.
    """

    ping: str | bytes | None = None
    no_pong: tuple[int, str] | None = None
    slow: tuple[int, str] = (int(CloseCode.POLICY_VIOLATION), "slow consumer")
    #: Messages posted in one loop turn may share a frame: text ones separated by newlines
    #: (the Centrifugo JSON protocol), binary ones concatenated (its Protobuf protocol, whose
    #: messages are length-delimited); raw rooms keep one message per frame.
    coalesce: bool = False
    #: A last message for the close code and reason, posted before the close frame (the
    #: disconnect push of a unidirectional WebSocket); ``None``: none.
    farewell: Callable[[int, str], str | bytes] | None = None
    #: With a ``ping`` message: post it only after ``ping_interval`` of silence from the peer
    #: (the Pusher protocol's activity timeout), not on a fixed beat.
    idle_ping: bool = False
    #: Seconds that replace the settings' ``ping_interval`` and ``pong_timeout`` (None: theirs).
    ping_interval: float | None = None
    pong_timeout: float | None = None


RAW_POLICY: Final = Policy()


#: The Centrifugo protocol's wire formats by WebSocket subprotocol (none: JSON).
CENTRIFUGE_CODECS: Final[dict[str, Codec]] = {
    "centrifuge-json": JSON,
    "centrifuge-protobuf": PROTOBUF,
}
#: Keepalive and cut-off per codec: the format's own ping message.
CENTRIFUGE_POLICIES: Final[dict[str, Policy]] = {
    codec.name: Policy(
        ping=codec.ping, no_pong=centrifuge.NO_PONG, slow=centrifuge.SLOW, coalesce=True
    )
    for codec in (JSON, PROTOBUF)
}
#: uni_websocket: WebSocket pings (the client's library answers them), one frame per push.
UNI_WS_POLICY: Final = Policy(
    ping=None, no_pong=centrifuge.NO_PONG, slow=centrifuge.SLOW, farewell=disconnect_push
)


def offered_codec(offered: list[str]) -> tuple[str | None, Codec]:
    """The first Centrifugo subprotocol among ``offered`` and its codec; JSON without one."""
    for name in offered:
        codec = CENTRIFUGE_CODECS.get(name.strip())
        if codec is not None:
            return name.strip(), codec
    return None, JSON


def pusher_policy(app: PusherApp) -> Policy:
    """A Pusher app's connections: ``pusher:ping`` after the app's activity timeout of
    silence, 4201 without an answer within 30 s, 4100 for a slow consumer, one event per frame
    (pusher-js parses each frame as one message)."""
    return Policy(
        ping=pusher.encode_ping(),
        no_pong=(int(pusher.ErrorCode.PONG_NOT_RECEIVED), "Pong reply not received"),
        slow=PUSHER_SLOW,
        idle_ping=True,
        ping_interval=float(app.activity_timeout),
        pong_timeout=PUSHER_PONG_TIMEOUT,
    )


#: A connection to an unknown Pusher app (refused at once).
PUSHER_REFUSED: Final = Policy(slow=PUSHER_SLOW)
