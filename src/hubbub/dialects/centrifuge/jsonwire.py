"""The JSON wire format of the Centrifugo client protocol (subprotocol none or
``centrifuge-json``): text frames of newline-separated JSON objects.

- A command is ``{"id": N, "<method>": {...}}``; a command with no method at all (``{}``) is
  the client's pong. Fields are read with their JSON types; 64-bit integers may also come as
  strings of digits (Protobuf's JSON mapping writes them so).
- A frame that is not UTF-8 JSON objects, or a bad id, is a :class:`ProtocolViolation`; a
  field of the wrong type, NaN, Infinity, a number out of range or a lone surrogate escape make
  the command's ``problem`` (107; the connection stays).
- Replies and pushes are compact, single-line JSON text: payload text is pasted in as it is
  (a Protobuf client's JSON with raw newlines is re-encoded on one line first), so a
  publication is serialised once for every JSON subscriber.
- Subscriptions with delta compression get publication data as a JSON string instead (of the
  JSON text, or of the fossil delta), as Centrifugo sends it: the subscribe result's
  publications too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from hubbub.core import messages as m
from hubbub.core import tagsfilter
from hubbub.core.jsontext import NotJSON, dumps, loads, parse
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.centrifuge.codec import ProtocolViolation

MAX_COMMAND_ID: Final = 2**32 - 1


class _Bad(Exception):
    """A field of the wrong type (the command's ``problem``)."""


# -- reading fields --------------------------------------------------------------------------


def _str(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise _Bad(f"{key} must be a string")
    return value


def _int(params: Mapping[str, Any], key: str) -> int:
    value = params.get(key)
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return int(value)
    if type(value) is not int:
        raise _Bad(f"{key} must be an integer")
    return value


def _bool(params: Mapping[str, Any], key: str) -> bool:
    value = params.get(key)
    if value is None:
        return False
    if type(value) is not bool:
        raise _Bad(f"{key} must be a boolean")
    return value


def _payload(params: Mapping[str, Any], key: str = "data") -> m.Payload | None:
    """The value as a payload whose text is written when first asked for (an RPC's data never
    is): the line it came in is too shallow for ``dumps`` to fail on (see :func:`_frame`)."""
    value = params.get(key)
    if value is None:
        return None
    return m.Payload.of_value(value)


def _written_payload(params: Mapping[str, Any], key: str = "data") -> m.Payload | None:
    """The value as a payload with its text written now (a line that may be deep)."""
    value = params.get(key)
    if value is None:
        return None
    try:
        return m.Payload(dumps(value), None, value)
    except ValueError as exc:  # nested too deeply (what else is not JSON was refused before)
        raise _Bad(f"{key} is not usable JSON: {exc}") from None


_PayloadReader = Callable[[Mapping[str, Any]], m.Payload | None]


def _subscribe(
    params: Mapping[str, Any], payload: _PayloadReader, channel: str | None = None
) -> m.Subscribe:
    return m.Subscribe(
        channel=_str(params, "channel") if channel is None else channel,
        token=_str(params, "token"),
        recover=_bool(params, "recover"),
        epoch=_str(params, "epoch"),
        offset=_int(params, "offset"),
        data=payload(params),
        positioned=_bool(params, "positioned"),
        recoverable=_bool(params, "recoverable"),
        join_leave=_bool(params, "join_leave"),
        flag=_int(params, "flag"),
        tags_filter=_tags_filter(params.get("tf")),
        delta=_str(params, "delta"),
    )


def _tags_filter(value: Any) -> Filter | None:
    if value is None:
        return None
    try:
        return tagsfilter.parse(value)
    except tagsfilter.BadFilter as exc:
        raise _Bad(f"tf: {exc}") from None


def _connect(params: Mapping[str, Any], payload: _PayloadReader) -> m.Connect:
    subs = params.get("subs")
    requests = {}
    if isinstance(subs, dict):
        for channel, request in subs.items():
            if isinstance(request, dict):
                try:
                    requests[channel] = _subscribe(request, payload, channel)
                except _Bad:  # only entries of server-side channels are read: not a reason
                    continue  # to refuse the connect
    return m.Connect(
        token=_str(params, "token"),
        data=payload(params),
        subs=requests,
        name=_str(params, "name"),
        version=_str(params, "version"),
        headers=_headers(params),
    )


def _headers(params: Mapping[str, Any]) -> dict[str, str]:
    """A connect's ``headers``: an object of strings (anything else is the command's
    problem, as Centrifugo's decoder refuses it)."""
    value = params.get("headers")
    if value is None:
        return {}
    if type(value) is not dict or not all(type(v) is str for v in value.values()):
        raise _Bad("headers must be an object of strings")
    return value


def _history(params: Mapping[str, Any], payload: _PayloadReader) -> m.History:
    since_raw = params.get("since")
    since = None
    if since_raw is not None:
        if not isinstance(since_raw, dict):
            raise _Bad("since must be an object")
        since = m.Since(_int(since_raw, "offset"), _str(since_raw, "epoch"))
    return m.History(
        channel=_str(params, "channel"),
        limit=_int(params, "limit"),
        since=since,
        reverse=_bool(params, "reverse"),
    )


_READERS: Final[dict[str, Callable[[Mapping[str, Any], _PayloadReader], m.Request]]] = {
    "connect": _connect,
    "subscribe": _subscribe,
    "unsubscribe": lambda p, _: m.Unsubscribe(_str(p, "channel")),
    "publish": lambda p, d: m.Publish(_str(p, "channel"), d(p)),
    "presence": lambda p, _: m.Presence(_str(p, "channel")),
    "presence_stats": lambda p, _: m.PresenceStats(_str(p, "channel")),
    "history": _history,
    "ping": lambda p, _: m.Ping(),
    "send": lambda p, d: m.Send(d(p)),
    "rpc": lambda p, d: m.RPC(_str(p, "method"), d(p)),
    "refresh": lambda p, _: m.Refresh(_str(p, "token")),
    "sub_refresh": lambda p, _: m.SubRefresh(_str(p, "channel"), _str(p, "token")),
}
#: Lines shorter than this cannot nest deeper than ``dumps`` follows (it needs two characters
#: per level); longer ones are counted (:func:`_shallow`).
_SHORT: Final = 512


def _shallow(line: str) -> bool:
    """Whether ``line`` opens too few arrays and objects for ``dumps`` to fail on its data."""
    return len(line) < _SHORT or line.count("[") + line.count("{") < _SHORT // 2


def _frame(obj: Any, problem: str | None, shallow: bool = True) -> m.Frame:
    """The command in ``obj``; its payloads' text is written when first asked for when the
    line was ``shallow``, else now (a value ``dumps`` cannot write is the command's problem,
    as it always was)."""
    if not isinstance(obj, dict):
        raise ProtocolViolation("command is not a JSON object")
    cid = obj.get("id", 0)
    if type(cid) is not int or not 0 <= cid <= MAX_COMMAND_ID:
        raise ProtocolViolation("command id must be an unsigned 32-bit integer")
    if len(obj) - ("id" in obj) == 1:  # the usual shape: one method beside the id
        for method in obj:
            if method != "id":
                break
        if method not in _READERS:
            return m.Frame(cid, None, "unknown")
    else:
        methods = [key for key in obj if key != "id"]
        if not methods:
            return m.Frame(cid, None, "pong")
        known = [key for key in methods if key in _READERS]
        if len(known) != 1:
            return m.Frame(cid, None, "unknown")
        method = known[0]
    if problem is not None:
        return m.Frame(cid, None, method, f"not RFC 8259 JSON: {problem}")
    params = obj[method]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return m.Frame(cid, None, method, f"{method} must be an object")
    try:
        payload = _payload if shallow else _written_payload
        return m.Frame(cid, _READERS[method](params, payload), method)
    except _Bad as exc:
        return m.Frame(cid, None, method, str(exc))


# -- writing ---------------------------------------------------------------------------------


def value_text(text: str) -> str:
    """JSON text as it may be pasted into a line of the protocol: a Protobuf client's or a raw
    member's JSON may hold raw newlines, which in JSON can only be whitespace between tokens
    (strings hold them escaped), so each becomes a space: the same value, on one line, with no
    parsing."""
    return text if "\n" not in text else text.replace("\n", " ")


def data_text(data: m.Data) -> str:
    """Outgoing data as JSON text; bytes only when they are UTF-8 JSON (NotEncodable else)."""
    if isinstance(data, str):
        return value_text(data)
    try:
        text = data.decode()
        loads(text)
    except (UnicodeDecodeError, NotJSON):
        raise m.NotEncodable("binary data cannot be sent to a JSON client") from None
    return value_text(text)


def info_json(info: ClientInfo) -> str:
    """The protocol's ClientInfo: its stored JSON form on one line (the ids are escaped, so a
    raw newline can only be whitespace in the info texts)."""
    return value_text(info.to_json())


def publication_json(pub: Publication, data: str | None = None, delta: bool = False) -> str:
    """The protocol's Publication object; ``data`` (JSON text) in place of the publication's
    own, ``delta``: the data is a delta."""
    parts = [f'"data":{value_text(pub.data) if data is None else data}']
    if pub.offset:
        parts.append(f'"offset":{pub.offset}')
    if pub.info is not None:
        parts.append(f'"info":{info_json(pub.info)}')
    if pub.tags:
        parts.append(f'"tags":{dumps(pub.tags)}')
    if pub.time_ms:
        parts.append(f'"time":{pub.time_ms}')
    if delta:
        parts.append('"delta":true')
    return "{" + ",".join(parts) + "}"


def delta_publication_json(pub: Publication, patch: bytes | None) -> str:
    """The Publication of a subscription with delta compression: the data as a JSON string,
    of the data's JSON text (``patch`` None: the publication in full) or of ``patch``, the
    delta (UTF-8 text: see :mod:`hubbub.core.fossil`), with ``delta: true``. The SDKs encode
    the string to UTF-8, apply the delta to the previous data, and parse the result."""
    if patch is None:
        return publication_json(pub, dumps(pub.data))
    return publication_json(pub, dumps(patch.decode()), delta=True)


def _publications(pubs: tuple[Publication, ...], delta: bool = False) -> str:
    if delta:
        return "[" + ",".join(delta_publication_json(pub, None) for pub in pubs) + "]"
    return "[" + ",".join(publication_json(pub) for pub in pubs) + "]"


def subscribe_json(r: m.SubscribeResult) -> str:
    parts = []
    if r.was_recovering:
        parts.append(f'"was_recovering":true,"recovered":{_bool_text(r.recovered)}')
    if r.positioned:
        parts.append(
            f'"recoverable":{_bool_text(r.recoverable)},"positioned":true,"epoch":{dumps(r.epoch)}'
        )
    elif r.recoverable:
        parts.append('"recoverable":true')
    if r.offset:
        parts.append(f'"offset":{r.offset}')
    if r.data is not None:
        parts.append(f'"data":{data_text(r.data)}')
    if r.publications:
        parts.append(f'"publications":{_publications(r.publications, r.delta)}')
    if r.expires:
        parts.append(f'"expires":true,"ttl":{r.ttl}')
    if r.delta:
        parts.append('"delta":true')
    return "{" + ",".join(parts) + "}"


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _connect_json(r: m.ConnectResult) -> str:
    parts = [f'"client":{dumps(r.client)}', f'"version":{dumps(r.version)}']
    if r.ping:
        parts.append(f'"ping":{r.ping}')
    if r.pong:
        parts.append('"pong":true')
    if r.expires:
        parts.append(f'"expires":true,"ttl":{r.ttl}')
    if r.subs:
        body = ",".join(f"{dumps(c)}:{subscribe_json(s)}" for c, s in r.subs.items())
        parts.append(f'"subs":{{{body}}}')
    if r.data is not None:
        parts.append(f'"data":{data_text(r.data)}')
    if r.session:
        parts.append(f'"session":{dumps(r.session)},"node":{dumps(r.node)}')
    return "{" + ",".join(parts) + "}"


def disconnect_json(d: m.Disconnected) -> str:
    return f'{{"code":{d.code},"reason":{dumps(d.reason)}}}'


def presence_json(r: m.PresenceResult) -> str:
    body = ",".join(f"{dumps(cid)}:{info_json(info)}" for cid, info in r.presence.items())
    return f'{{"presence":{{{body}}}}}'


def presence_stats_json(r: m.PresenceStatsResult) -> str:
    return f'{{"num_clients":{r.num_clients},"num_users":{r.num_users}}}'


def history_json(r: m.HistoryResult) -> str:
    return (
        f'{{"publications":{_publications(r.publications)},'
        f'"epoch":{dumps(r.epoch)},"offset":{r.offset}}}'
    )


def _rpc_json(r: m.RPCResult) -> str:
    return "{}" if r.data is None else f'{{"data":{data_text(r.data)}}}'


def _refresh_json(r: m.RefreshResult) -> str:
    head = f'{{"client":{dumps(r.client)},"version":{dumps(r.version)},'
    return head + (f'"expires":true,"ttl":{r.ttl}}}' if r.expires else '"expires":false}')


def _sub_refresh_json(r: m.SubRefreshResult) -> str:
    return f'{{"expires":true,"ttl":{r.ttl}}}' if r.expires else '{"expires":false}'


def _empty(r: object) -> str:
    return "{}"


_RESULT_WRITERS: Final[dict[type, Callable[[Any], str]]] = {
    m.ConnectResult: _connect_json,
    m.SubscribeResult: subscribe_json,
    m.UnsubscribeResult: _empty,
    m.PublishResult: _empty,
    m.PresenceResult: presence_json,
    m.PresenceStatsResult: presence_stats_json,
    m.HistoryResult: history_json,
    m.PingResult: _empty,
    m.RPCResult: _rpc_json,
    m.RefreshResult: _refresh_json,
    m.SubRefreshResult: _sub_refresh_json,
}


def error_json(error: m.Error) -> str:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.temporary:
        body["temporary"] = True
    return dumps(body)


def _push(channel: str, kind: str, body: str) -> str:
    if channel:
        return f'{{"push":{{"channel":{dumps(channel)},"{kind}":{body}}}}}'
    return f'{{"push":{{"{kind}":{body}}}}}'


class JsonCodec:
    """The JSON codec; :data:`JSON` is the one instance (see the module docstring)."""

    __slots__ = ()

    name: Final = "json"
    ping: Final = "{}"
    own_messages: Final = True
    #: Bytes that are not JSON text cannot be written.
    binary: Final = False

    def decode(self, frame: str | bytes) -> list[m.Frame]:
        if isinstance(frame, bytes):
            try:
                frame = frame.decode()
            except UnicodeDecodeError:
                raise ProtocolViolation("frame is not UTF-8") from None
        frames = []
        for line in frame.split("\n") if "\n" in frame else (frame,):
            if not line or line.isspace():
                continue
            try:
                obj, problem = parse(line)
            except ValueError:
                raise ProtocolViolation("command is not JSON") from None
            frames.append(_frame(obj, problem, _shallow(line)))
        if not frames:
            raise ProtocolViolation("empty frame")
        return frames

    def reply(self, reply: m.Reply) -> str:
        if reply.error is not None:
            return f'{{"id":{reply.id},"error":{error_json(reply.error)}}}'
        result = reply.result
        if type(result) is m.PublishResult:  # the hot path: pipelined publishes
            return f'{{"id":{reply.id},"publish":{{}}}}'
        if type(result) is m.RPCResult:  # the other one: RPCs
            return f'{{"id":{reply.id},"rpc":{_rpc_json(result)}}}'
        assert result is not None
        method = m.RESULT_METHOD[type(result)]
        return f'{{"id":{reply.id},"{method}":{_RESULT_WRITERS[type(result)](result)}}}'

    def push(self, push: m.Push) -> str:
        if type(push) is m.Pub:
            return _push(push.channel, "pub", publication_json(push.pub))
        if isinstance(push, m.Join | m.Leave):
            kind = "join" if isinstance(push, m.Join) else "leave"
            return _push(push.channel, kind, f'{{"info":{info_json(push.info)}}}')
        if isinstance(push, m.Unsubscribed):
            body = f'{{"code":{push.code},"reason":{dumps(push.reason)}}}'
            return _push(push.channel, "unsubscribe", body)
        if isinstance(push, m.Subscribed):
            return _push(push.channel, "subscribe", subscribe_json(push.result))
        if isinstance(push, m.Refreshed):
            body = f'{{"expires":true,"ttl":{push.ttl}}}' if push.expires else "{}"
            return _push("", "refresh", body)
        if isinstance(push, m.Disconnected):
            return _push("", "disconnect", disconnect_json(push))
        raise TypeError(f"not a push: {push!r}")

    def publication(self, channel: str, pub: Publication) -> str:
        return _push(channel, "pub", publication_json(pub))

    def delta_publication(self, channel: str, pub: Publication, patch: bytes | None) -> str:
        return _push(channel, "pub", delta_publication_json(pub, patch))

    def join(self, channel: str, info: ClientInfo) -> str:
        return _push(channel, "join", f'{{"info":{info_json(info)}}}')

    def leave(self, channel: str, info: ClientInfo) -> str:
        return _push(channel, "leave", f'{{"info":{info_json(info)}}}')


#: The JSON codec.
JSON: Final = JsonCodec()
