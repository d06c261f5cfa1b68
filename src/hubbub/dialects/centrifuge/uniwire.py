"""The unidirectional JSON format of the Centrifugo client protocol (``uni_sse``,
``uni_http_stream``, ``uni_websocket``): bare ``Push`` objects, one per message, no replies.

- A connect result is written as the connect push ``{"connect": {...}}`` (``pong`` left out:
  a unidirectional client never answers pings), a publication as ``{"channel": ..., "pub":
  {...}}``, join, leave, subscribe, unsubscribe and refresh likewise without the ``{"push":
  ...}`` wrapper of the bidirectional protocol; the ping is the empty push ``{}``.
- An error reply cannot be sent (the client sends no commands it could answer): writing one
  raises :class:`hubbub.errors.DisconnectError` with the disconnect Centrifugo maps the error
  to (109/110: 3005, 111: 3013, 103: 3507, else 3004), so a failed connect ends the
  connection with a disconnect push.
- Messages that move a channel's stream position are :class:`Positioned` strings: the text
  above, plus what a transport needs to name the position in an event id (SSE's
  ``Last-Event-ID``, :mod:`hubbub.dialects.centrifuge.eventids`). A publication is still
  encoded once for every unidirectional member (:data:`UNI_JSON` is one wire, distinct from
  the bidirectional :data:`hubbub.dialects.centrifuge.jsonwire.JSON`).
"""

from __future__ import annotations

from typing import Final

from hubbub.core import messages as m
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.core.jsontext import dumps, parse
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.centrifuge import jsonwire
from hubbub.errors import DisconnectError

#: Centrifugo's mapping of a unidirectional connect's error to a disconnect.
ERROR_DISCONNECTS: Final = {
    ErrorCode.TOKEN_EXPIRED: Disconnects.EXPIRED,
    ErrorCode.EXPIRED: Disconnects.EXPIRED,
    ErrorCode.TOO_MANY_REQUESTS: Disconnects.TOO_MANY_REQUESTS,
    ErrorCode.PERMISSION_DENIED: Disconnects.PERMISSION_DENIED,
}

#: The query parameter holding the connect request (Centrifugo's name).
CONNECT_PARAM: Final = "cf_connect"


class BadConnect(ValueError):
    """A unidirectional connect request that is not a JSON object of the right fields."""


class Positioned(str):
    """A push that moves stream positions: ``positions`` maps channels to ``(offset, epoch)``
    (epoch ``None``: unchanged), ``dropped`` names a channel that no longer has one."""

    positions: dict[str, tuple[int, str | None]]
    dropped: str | None

    @classmethod
    def of(
        cls,
        text: str,
        positions: dict[str, tuple[int, str | None]],
        dropped: str | None = None,
    ) -> Positioned:
        message = cls(text)
        message.positions = positions
        message.dropped = dropped
        return message


def _position(result: m.SubscribeResult) -> tuple[int, str | None] | None:
    if result.epoch and (result.recoverable or result.positioned):
        return result.offset, result.epoch
    return None


def connect_frame(text: str | bytes) -> m.Frame:
    """The connect command of a unidirectional connection from its JSON request (an empty
    one for ``""``). Raises :class:`BadConnect` for anything else than a JSON object whose
    fields have the protocol's types."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise BadConnect("connect request is not UTF-8") from None
    if not text.strip():
        text = "{}"
    try:
        obj, problem = parse(text)
    except ValueError:
        raise BadConnect("connect request is not JSON") from None
    if obj is None:
        obj = {}  # a literal null, as Centrifugo: an empty request
    if not isinstance(obj, dict):
        raise BadConnect("connect request is not a JSON object")
    frame = jsonwire._frame({"id": 1, "connect": obj}, problem, jsonwire._shallow(text))
    if frame.request is None:
        raise BadConnect(f"bad connect request: {frame.problem}")
    return frame


def _push(channel: str, kind: str, body: str) -> str:
    if channel:
        return f'{{"channel":{dumps(channel)},"{kind}":{body}}}'
    return f'{{"{kind}":{body}}}'


def disconnect_push(code: int, reason: str) -> str:
    """The disconnect push ending a unidirectional stream."""
    return f'{{"disconnect":{{"code":{code},"reason":{dumps(reason)}}}}}'


class UniJsonCodec(jsonwire.JsonCodec):
    """The unidirectional JSON codec; :data:`UNI_JSON` is the one instance."""

    __slots__ = ()

    def decode(self, frame: str | bytes) -> list[m.Frame]:
        return [connect_frame(frame)]

    def reply(self, reply: m.Reply) -> str:
        if reply.error is not None:
            d = ERROR_DISCONNECTS.get(reply.error.code, Disconnects.SERVER_ERROR)  # type: ignore[call-overload]
            raise DisconnectError(d.code, d.reason)
        result = reply.result
        if type(result) is not m.ConnectResult:
            raise TypeError(f"no reply on a unidirectional connection: {result!r}")
        parts = [f'"client":{dumps(result.client)}', f'"version":{dumps(result.version)}']
        if result.ping:
            parts.append(f'"ping":{result.ping}')
        if result.expires:
            parts.append(f'"expires":true,"ttl":{result.ttl}')
        positions: dict[str, tuple[int, str | None]] = {}
        if result.subs:
            subs = []
            for channel, sub in result.subs.items():
                subs.append(f"{dumps(channel)}:{jsonwire.subscribe_json(sub)}")
                position = _position(sub)
                if position is not None:
                    positions[channel] = _latest(sub, position)
            parts.append(f'"subs":{{{",".join(subs)}}}')
        if result.data is not None:
            parts.append(f'"data":{jsonwire.data_text(result.data)}')
        return Positioned.of(_push("", "connect", "{" + ",".join(parts) + "}"), positions)

    def push(self, push: m.Push) -> str:
        if type(push) is m.Pub:
            return self.publication(push.channel, push.pub)
        if isinstance(push, m.Join | m.Leave):
            kind = "join" if isinstance(push, m.Join) else "leave"
            return _push(push.channel, kind, f'{{"info":{jsonwire.info_json(push.info)}}}')
        if isinstance(push, m.Unsubscribed):
            body = f'{{"code":{push.code},"reason":{dumps(push.reason)}}}'
            return Positioned.of(_push(push.channel, "unsubscribe", body), {}, push.channel)
        if isinstance(push, m.Subscribed):
            text = _push(push.channel, "subscribe", jsonwire.subscribe_json(push.result))
            position = _position(push.result)
            if position is None:
                return Positioned.of(text, {}, push.channel)
            return Positioned.of(text, {push.channel: _latest(push.result, position)})
        if isinstance(push, m.Refreshed):
            body = f'{{"expires":true,"ttl":{push.ttl}}}' if push.expires else "{}"
            return _push("", "refresh", body)
        if isinstance(push, m.Disconnected):
            return disconnect_push(push.code, push.reason)
        raise TypeError(f"not a push: {push!r}")

    def publication(self, channel: str, pub: Publication) -> str:
        text = _push(channel, "pub", jsonwire.publication_json(pub))
        if not pub.offset:
            return text
        return Positioned.of(text, {channel: (pub.offset, None)})

    def delta_publication(self, channel: str, pub: Publication, patch: bytes | None) -> str:
        text = _push(channel, "pub", jsonwire.delta_publication_json(pub, patch))
        if not pub.offset:
            return text
        return Positioned.of(text, {channel: (pub.offset, None)})

    def join(self, channel: str, info: ClientInfo) -> str:
        return _push(channel, "join", f'{{"info":{jsonwire.info_json(info)}}}')

    def leave(self, channel: str, info: ClientInfo) -> str:
        return _push(channel, "leave", f'{{"info":{jsonwire.info_json(info)}}}')


def _latest(result: m.SubscribeResult, position: tuple[int, str | None]) -> tuple[int, str | None]:
    """The position after a subscribe result's publications (recovered ones included)."""
    offset, epoch = position
    for pub in result.publications:
        offset = max(offset, pub.offset)
    return offset, epoch


#: The unidirectional JSON codec.
UNI_JSON: Final = UniJsonCodec()
