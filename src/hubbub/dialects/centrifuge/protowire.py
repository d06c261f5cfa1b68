"""The Protobuf wire format of the Centrifugo client protocol (subprotocol
``centrifuge-protobuf``, protocol version 2): binary frames of varint length-delimited
messages, the schema in ``proto/client.proto``.

- A frame holds one or more ``Command`` messages, each prefixed with its length as a varint
  (as centrifuge-js and centrifuge-python write them). A text frame, an empty frame, a
  truncated length or command, or a command that does not parse (invalid UTF-8 in a string
  field included) is a :class:`ProtocolViolation`. Fields this schema does not declare are
  ignored.
- A command with exactly one request field is that request. With none it is the client's pong
  when its id is 0 (kind ``"pong"``), else an unknown method (kind ``"unknown"``: a method
  newer than this schema arrives as an unknown field). With more than one request field it is
  ``"unknown"`` too, as in the JSON codec: no request is picked.
- A ``data`` field is a :class:`hubbub.core.messages.Payload` (JSON text when its bytes are
  JSON, else binary); empty bytes are no data (None). Protobuf has no field of the wrong type,
  so no command gets a ``problem``.
- Replies and pushes are one length-delimited ``Reply`` each (a push is a Reply with id 0 and
  ``push`` set; the server's ping is the empty Reply, ``b"\\x00"``). A result with no fields
  (publish, unsubscribe, ping, ...) is still written as its empty field, so the SDK sees which
  result it is. Every :data:`hubbub.core.messages.Data` is encodable: JSON text goes as its
  UTF-8 bytes, bytes as they are (never :class:`NotEncodable`).
- Subscriptions with delta compression get the same publications, except deltas: the delta's
  bytes in place of the data and ``delta: true`` (Publication field 8).
- ``Subscribed`` pushes carry what the protocol's ``Subscribe`` push has (recoverable, epoch,
  offset, positioned, data); the other fields of its result are not sent. ``Refreshed`` is the
  protocol's ``Refresh`` push (no channel).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from hubbub.core import messages as m
from hubbub.core import tagsfilter
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.centrifuge.codec import ProtocolViolation
from hubbub.dialects.centrifuge.proto import client_pb2 as pb

# -- framing ---------------------------------------------------------------------------------

#: Varint bytes of 0..127, the length prefix of nearly every message.
_SHORT: Final = tuple(bytes((n,)) for n in range(128))


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SHORT[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(body: bytes) -> bytes:
    size = len(body)
    return (_SHORT[size] if size < 0x80 else _varint(size)) + body


def _read_length(frame: bytes, pos: int, end: int) -> tuple[int, int]:
    """A varint length (at most 5 bytes: below 2**35) at ``pos``; returns it and the next
    position."""
    value = 0
    shift = 0
    while pos < end:
        byte = frame[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 35:
            raise ProtocolViolation("command length prefix is too long")
    raise ProtocolViolation("truncated command length prefix")


# -- reading requests ------------------------------------------------------------------------


def _payload(raw: bytes) -> m.Payload | None:
    return m.Payload.of_bytes(raw) if raw else None


def _subscribe(req: pb.SubscribeRequest, channel: str | None = None) -> m.Subscribe:
    return m.Subscribe(
        channel=req.channel if channel is None else channel,
        token=req.token,
        recover=req.recover,
        epoch=req.epoch,
        offset=req.offset,
        data=_payload(req.data),
        positioned=req.positioned,
        recoverable=req.recoverable,
        join_leave=req.join_leave,
        flag=req.flag,
        tags_filter=_tags_filter(req.tf) if req.HasField("tf") else None,
        delta=req.delta,
    )


def _tags_filter(node: pb.FilterNode) -> Filter:
    """The filter in ``node``; BadFilter (107) when it is not well-formed."""
    return tagsfilter.parse(_filter_json(node, 0))


def _filter_json(node: pb.FilterNode, depth: int) -> dict[str, Any]:
    if depth > tagsfilter.MAX_DEPTH:  # (parse says so; this only stops the recursion here)
        raise tagsfilter.BadFilter(f"nested deeper than {tagsfilter.MAX_DEPTH} levels")
    return {
        "op": node.op,
        "key": node.key,
        "cmp": node.cmp,
        "val": node.val,
        "vals": list(node.vals),
        "nodes": [_filter_json(child, depth + 1) for child in node.nodes],
    }


def _connect(req: pb.ConnectRequest) -> m.Connect:
    return m.Connect(
        token=req.token,
        data=_payload(req.data),
        subs=_subs(req.subs),
        name=req.name,
        version=req.version,
        headers=dict(req.headers),
    )


def _subs(subs: Mapping[str, pb.SubscribeRequest]) -> dict[str, m.Subscribe]:
    """A connect's ``subs``; only entries of server-side channels are read, so a bad one is
    left out rather than refusing the connect (as in the JSON codec)."""
    requests = {}
    for channel, sub in subs.items():
        try:
            requests[channel] = _subscribe(sub, channel)
        except tagsfilter.BadFilter:
            continue
    return requests


def _history(req: pb.HistoryRequest) -> m.History:
    since = None
    if req.HasField("since"):
        since = m.Since(req.since.offset, req.since.epoch)
    return m.History(req.channel, req.limit, since, req.reverse)


def _publish(req: pb.PublishRequest) -> m.Publish:
    data = req.data
    return m.Publish(req.channel, m.Payload.of_bytes(data) if data else None)


def _unsubscribe(req: pb.UnsubscribeRequest) -> m.Unsubscribe:
    return m.Unsubscribe(req.channel)


def _presence(req: pb.PresenceRequest) -> m.Presence:
    return m.Presence(req.channel)


def _presence_stats(req: pb.PresenceStatsRequest) -> m.PresenceStats:
    return m.PresenceStats(req.channel)


def _ping(req: pb.PingRequest) -> m.Ping:
    return m.Ping()


def _send(req: pb.SendRequest) -> m.Send:
    return m.Send(_payload(req.data))


def _rpc(req: pb.RPCRequest) -> m.RPC:
    return m.RPC(req.method, _payload(req.data))


def _refresh(req: pb.RefreshRequest) -> m.Refresh:
    return m.Refresh(req.token)


def _sub_refresh(req: pb.SubRefreshRequest) -> m.SubRefresh:
    return m.SubRefresh(req.channel, req.token)


#: Command field number -> (method name, reader of that request message).
_READERS: Final[Mapping[int, tuple[str, Callable[[Any], m.Request]]]] = {
    pb.Command.CONNECT_FIELD_NUMBER: ("connect", _connect),
    pb.Command.SUBSCRIBE_FIELD_NUMBER: ("subscribe", _subscribe),
    pb.Command.UNSUBSCRIBE_FIELD_NUMBER: ("unsubscribe", _unsubscribe),
    pb.Command.PUBLISH_FIELD_NUMBER: ("publish", _publish),
    pb.Command.PRESENCE_FIELD_NUMBER: ("presence", _presence),
    pb.Command.PRESENCE_STATS_FIELD_NUMBER: ("presence_stats", _presence_stats),
    pb.Command.HISTORY_FIELD_NUMBER: ("history", _history),
    pb.Command.PING_FIELD_NUMBER: ("ping", _ping),
    pb.Command.SEND_FIELD_NUMBER: ("send", _send),
    pb.Command.RPC_FIELD_NUMBER: ("rpc", _rpc),
    pb.Command.REFRESH_FIELD_NUMBER: ("refresh", _refresh),
    pb.Command.SUB_REFRESH_FIELD_NUMBER: ("sub_refresh", _sub_refresh),
}

_parse_command: Final = pb.Command.FromString


#: Known request fields by their one-byte tag (length-delimited), for :func:`_frame`.
_BY_TAG: Final[Mapping[int, tuple[str, str, Callable[[Any], m.Request]]]] = {
    (number << 3) | 2: (kind, pb.Command.DESCRIPTOR.fields_by_number[number].name, reader)
    for number, (kind, reader) in _READERS.items()
    if number < 16
}


def _frame(cmd: pb.Command, body: bytes) -> m.Frame:
    """The Frame of a parsed Command. The usual layout (the id, then one request that ends
    the message: what every SDK writes) is recognised from ``body`` itself; anything else
    goes by the parsed fields (ListFields costs as much as the rest of the command)."""
    pos = 0
    end = len(body)
    if end and body[0] == 0x08:  # the id (field 1, varint)
        pos = 1
        while pos < end and body[pos] & 0x80:
            pos += 1
        pos += 1
    if pos + 1 < end:
        known = _BY_TAG.get(body[pos])
        if known is not None:
            size, start = _read_length(body, pos + 1, end)
            if start + size == end:
                kind, name, reader = known
                return _read(cmd.id, kind, reader, getattr(cmd, name))
    return _frame_of_fields(cmd)


def _read(cid: int, kind: str, reader: Callable[[Any], m.Request], request: Any) -> m.Frame:
    try:
        return m.Frame(cid, reader(request), kind)
    except tagsfilter.BadFilter as exc:  # the one field a reader checks (107, see _subscribe)
        return m.Frame(cid, None, kind, f"tf: {exc}")


def _frame_of_fields(cmd: pb.Command) -> m.Frame:
    fields = cmd.ListFields()  # (descriptor, value) of the set fields by number: id first
    cid = cmd.id
    requests = len(fields) - (1 if cid else 0)
    if requests == 1:
        kind, reader = _READERS[fields[-1][0].number]
        return _read(cid, kind, reader, fields[-1][1])
    if requests == 0 and cid == 0:
        return m.Frame(0, None, "pong")
    return m.Frame(cid, None, "unknown")


# -- writing ---------------------------------------------------------------------------------


def _data(data: m.Data) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _info(msg: pb.ClientInfo, info: ClientInfo) -> None:
    msg.SetInParent()
    msg.user = info.user
    msg.client = info.client
    if info.conn_info is not None:
        msg.conn_info = info.conn_info.encode()
    if info.chan_info is not None:
        msg.chan_info = info.chan_info.encode()


def _publication(msg: pb.Publication, pub: Publication) -> None:
    msg.SetInParent()
    msg.data = _data(pub.data)
    if pub.info is not None:
        _info(msg.info, pub.info)
    if pub.offset:
        msg.offset = pub.offset
    if pub.tags:
        msg.tags.update(pub.tags)
    if pub.time_ms:
        msg.time = pub.time_ms


def _subscribe_result(msg: pb.SubscribeResult, r: m.SubscribeResult) -> None:
    msg.SetInParent()
    msg.expires = r.expires
    msg.ttl = r.ttl
    msg.recoverable = r.recoverable
    msg.epoch = r.epoch
    for pub in r.publications:
        _publication(msg.publications.add(), pub)
    msg.recovered = r.recovered
    msg.offset = r.offset
    msg.positioned = r.positioned
    if r.data is not None:
        msg.data = _data(r.data)
    msg.was_recovering = r.was_recovering
    msg.delta = r.delta


def _connect_result(reply: pb.Reply, r: m.ConnectResult) -> None:
    msg = reply.connect
    msg.SetInParent()
    msg.client = r.client
    msg.version = r.version
    msg.expires = r.expires
    msg.ttl = r.ttl
    if r.data is not None:
        msg.data = _data(r.data)
    for channel, sub in r.subs.items():
        _subscribe_result(msg.subs[channel], sub)
    msg.ping = r.ping
    msg.pong = r.pong
    msg.session = r.session
    msg.node = r.node


def _presence_result(reply: pb.Reply, r: m.PresenceResult) -> None:
    msg = reply.presence
    msg.SetInParent()
    for client, info in r.presence.items():
        _info(msg.presence[client], info)


def _presence_stats_result(reply: pb.Reply, r: m.PresenceStatsResult) -> None:
    msg = reply.presence_stats
    msg.SetInParent()
    msg.num_clients = r.num_clients
    msg.num_users = r.num_users


def _history_result(reply: pb.Reply, r: m.HistoryResult) -> None:
    msg = reply.history
    msg.SetInParent()
    for pub in r.publications:
        _publication(msg.publications.add(), pub)
    msg.epoch = r.epoch
    msg.offset = r.offset


def _rpc_result(reply: pb.Reply, r: m.RPCResult) -> None:
    msg = reply.rpc
    msg.SetInParent()
    if r.data is not None:
        msg.data = _data(r.data)


def _refresh_result(reply: pb.Reply, r: m.RefreshResult) -> None:
    msg = reply.refresh
    msg.SetInParent()
    msg.client = r.client
    msg.version = r.version
    msg.expires = r.expires
    msg.ttl = r.ttl


def _sub_refresh_result(reply: pb.Reply, r: m.SubRefreshResult) -> None:
    msg = reply.sub_refresh
    msg.SetInParent()
    msg.expires = r.expires
    msg.ttl = r.ttl


def _result(reply: pb.Reply, result: m.Result) -> None:
    """Fills the field of ``reply`` that holds ``result`` (set even when it is empty)."""
    kind = type(result)
    if kind is m.PublishResult:
        reply.publish.SetInParent()
    elif isinstance(result, m.SubscribeResult):
        _subscribe_result(reply.subscribe, result)
    elif isinstance(result, m.RPCResult):
        _rpc_result(reply, result)
    elif isinstance(result, m.HistoryResult):
        _history_result(reply, result)
    elif isinstance(result, m.ConnectResult):
        _connect_result(reply, result)
    elif isinstance(result, m.PresenceResult):
        _presence_result(reply, result)
    elif isinstance(result, m.PresenceStatsResult):
        _presence_stats_result(reply, result)
    elif kind is m.UnsubscribeResult:
        reply.unsubscribe.SetInParent()
    elif kind is m.PingResult:
        reply.ping.SetInParent()
    elif isinstance(result, m.RefreshResult):
        _refresh_result(reply, result)
    elif isinstance(result, m.SubRefreshResult):
        _sub_refresh_result(reply, result)
    else:
        raise TypeError(f"not a result: {result!r}")


#: Reply.id's tag (varint) and Reply.publish's tag (length-delimited) with length 0.
_ID_TAG: Final = bytes(((pb.Reply.ID_FIELD_NUMBER << 3) | 0,))
_PUBLISH_EMPTY: Final = bytes(((pb.Reply.PUBLISH_FIELD_NUMBER << 3) | 2, 0))
_PUBLISH_REPLY_NO_ID: Final = _SHORT[len(_PUBLISH_EMPTY)] + _PUBLISH_EMPTY


#: Reply.rpc's tag and RPCResult.data's tag (both length-delimited).
_RPC_TAG: Final = bytes(((pb.Reply.RPC_FIELD_NUMBER << 3) | 2,))
_RPC_DATA_TAG: Final = bytes(((pb.RPCResult.DATA_FIELD_NUMBER << 3) | 2,))


def _rpc_reply(cid: int, data: m.Data | None) -> bytes:
    """The hot path of RPC round trips: Reply{id, rpc: {data}}, written by hand in field
    order, as the generated classes write it (a test compares the bytes)."""
    inner = b"" if not data else _RPC_DATA_TAG + _delimited(_data(data))
    body = (_ID_TAG + _varint(cid) if cid else b"") + _RPC_TAG + _delimited(inner)
    return _delimited(body)


def _pub_push(channel: str, pub: Publication, patch: bytes | None = None) -> bytes:
    """The hot path of fan-out (once per publication for all Protobuf members); ``patch``:
    a delta in place of the data (``delta: true``)."""
    reply = pb.Reply()
    push = reply.push
    push.channel = channel
    _publication(push.pub, pub)
    if patch is not None:
        push.pub.data = patch
        push.pub.delta = True
    return _delimited(reply.SerializeToString())


def _info_push(channel: str, info: ClientInfo, join: bool) -> bytes:
    reply = pb.Reply()
    push = reply.push
    push.channel = channel
    _info(push.join.info if join else push.leave.info, info)
    return _delimited(reply.SerializeToString())


class ProtobufCodec:
    """The Protobuf codec; :data:`PROTOBUF` is the one instance (see the module docstring)."""

    __slots__ = ()

    name: Final = "protobuf"
    ping: Final = b"\x00"
    own_messages: Final = True
    #: Any bytes can be written.
    binary: Final = True

    def decode(self, frame: str | bytes) -> list[m.Frame]:
        if isinstance(frame, str):
            raise ProtocolViolation("text frame on the protobuf protocol")
        end = len(frame)
        if not end:
            raise ProtocolViolation("empty frame")
        frames = []
        pos = 0
        while pos < end:
            size = frame[pos]
            if size < 0x80:
                pos += 1
            else:
                size, pos = _read_length(frame, pos, end)
            stop = pos + size
            if stop > end:
                raise ProtocolViolation("truncated command")
            body = frame[pos:stop]
            try:
                cmd = _parse_command(body)
            except DecodeError as exc:
                raise ProtocolViolation(f"command does not parse: {exc}") from None
            frames.append(_frame(cmd, body))
            pos = stop
        return frames

    def reply(self, reply: m.Reply) -> bytes:
        if type(reply.result) is m.PublishResult and reply.error is None:
            # The hot path (pipelined publishes): Reply{id, publish: {}}, written by hand.
            cid = reply.id
            if not cid:
                return _PUBLISH_REPLY_NO_ID
            body = _ID_TAG + _varint(cid) + _PUBLISH_EMPTY
            return _SHORT[len(body)] + body  # at most 1 + 5 + 2 bytes
        if type(reply.result) is m.RPCResult and reply.error is None:
            return _rpc_reply(reply.id, reply.result.data)
        msg = pb.Reply()
        if reply.id:
            msg.id = reply.id
        error = reply.error
        if error is not None:
            err = msg.error
            err.SetInParent()
            err.code = error.code
            err.message = error.message
            err.temporary = error.temporary
        else:
            result = reply.result
            if result is not None:
                _result(msg, result)
            else:
                raise TypeError(f"a reply without result or error: {reply!r}")
        return _delimited(msg.SerializeToString())

    def push(self, push: m.Push) -> bytes:
        if type(push) is m.Pub:
            return _pub_push(push.channel, push.pub)
        if isinstance(push, m.Join | m.Leave):
            return _info_push(push.channel, push.info, isinstance(push, m.Join))
        reply = pb.Reply()
        msg = reply.push
        if isinstance(push, m.Refreshed):
            refresh = msg.refresh
            refresh.SetInParent()
            refresh.expires = push.expires
            refresh.ttl = push.ttl
            return _delimited(reply.SerializeToString())
        if isinstance(push, m.Disconnected):
            disconnect = msg.disconnect
            disconnect.SetInParent()
            disconnect.code = push.code
            disconnect.reason = push.reason
            return _delimited(reply.SerializeToString())
        msg.channel = push.channel
        if isinstance(push, m.Unsubscribed):
            unsub = msg.unsubscribe
            unsub.SetInParent()
            unsub.code = push.code
            unsub.reason = push.reason
        elif isinstance(push, m.Subscribed):
            sub = msg.subscribe
            sub.SetInParent()
            r = push.result
            sub.recoverable = r.recoverable
            sub.epoch = r.epoch
            sub.offset = r.offset
            sub.positioned = r.positioned
            if r.data is not None:
                sub.data = _data(r.data)
        else:
            raise TypeError(f"not a push: {push!r}")
        return _delimited(reply.SerializeToString())

    # -- hubbub.wire.Wire ------------------------------------------------------------------

    def publication(self, channel: str, pub: Publication) -> bytes:
        return _pub_push(channel, pub)

    def delta_publication(self, channel: str, pub: Publication, patch: bytes | None) -> bytes:
        """In full, a publication is the same message as for any member (data as bytes)."""
        return _pub_push(channel, pub, patch)

    def join(self, channel: str, info: ClientInfo) -> bytes:
        return _info_push(channel, info, True)

    def leave(self, channel: str, info: ClientInfo) -> bytes:
        return _info_push(channel, info, False)


#: The Protobuf codec.
PROTOBUF: Final = ProtobufCodec()
