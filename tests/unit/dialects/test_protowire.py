"""The Protobuf codec of the client protocol, checked against an SDK's own schema.

centrifuge-python ships its own gencode of the protocol (``centrifuge.protocol.client_pb2``,
generated from upstream's client.proto, not from ours): commands are written with it as the
SDK writes them and must decode to the typed requests; our replies and pushes are parsed with
it and must carry the typed values. The SDK's own frame codec (``_ProtobufCodec``) is used
too, where it is the path an application's client takes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from centrifuge.codecs import _ProtobufCodec
from centrifuge.protocol import client_pb2 as sdk
from google.protobuf.descriptor import Descriptor
from google.protobuf.internal import api_implementation, encoder
from hypothesis import given
from hypothesis import strategies as st

from hubbub.core import messages as m
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.centrifuge.codec import Codec, ProtocolViolation
from hubbub.dialects.centrifuge.proto import client_pb2 as ours
from hubbub.dialects.centrifuge.protowire import PROTOBUF

# -- framing, written here independently of the codec -----------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def delimit(*bodies: bytes) -> bytes:
    return b"".join(varint(len(body)) + body for body in bodies)


def split(frame: bytes) -> list[bytes]:
    """The messages of a frame; fails unless the frame is exactly whole messages."""
    out = []
    pos = 0
    while pos < len(frame):
        size = shift = 0
        while True:
            byte = frame[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        assert pos + size <= len(frame), "message runs past the frame"
        out.append(frame[pos : pos + size])
        pos += size
    return out


def sdk_reply(frame: bytes) -> sdk.Reply:
    [body] = split(frame)
    return sdk.Reply.FromString(body)


def command(cid: int, method: str, request: Any) -> bytes:
    cmd = sdk.Command(id=cid)
    field = getattr(cmd, method)
    field.SetInParent()
    field.CopyFrom(request)
    return bytes(cmd.SerializeToString())


def payload(raw: bytes) -> m.Payload | None:
    return m.Payload.of_bytes(raw) if raw else None


# -- strategies ---------------------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
B = st.booleans()
TEXT = st.text(max_size=12)
WORD = st.text(min_size=1, max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
JSON_TEXT = st.builds(json.dumps, JSON_VALUES) | st.sampled_from(['{"a": 1}\n', ' [1, "x"] '])
#: A client's data bytes: none, JSON text (as any SDK may format it), or not JSON at all.
DATA_BYTES = st.just(b"") | JSON_TEXT.map(str.encode) | st.binary(max_size=24)


@st.composite
def subscribe_requests(draw: st.DrawFn) -> tuple[Any, m.Subscribe]:
    fields: dict[str, Any] = {
        "channel": draw(TEXT),
        "token": draw(TEXT),
        "recover": draw(B),
        "epoch": draw(TEXT),
        "offset": draw(U64),
        "positioned": draw(B),
        "recoverable": draw(B),
        "join_leave": draw(B),
        "flag": draw(I64),
    }
    data = draw(DATA_BYTES)
    fields["delta"] = draw(st.sampled_from(["", "fossil", "other"]))
    msg = sdk.SubscribeRequest(**fields, data=data)
    tags_filter = None
    if draw(B):
        leaf = Filter(key=draw(WORD), cmp="eq", val=draw(WORD))
        op = draw(st.sampled_from(["", "and", "or", "not"]))
        tags_filter = Filter(op=op, nodes=(leaf,)) if op else leaf
        msg.tf.SetInParent()
        node = msg.tf
        if op:
            msg.tf.op = op
            node = msg.tf.nodes.add()
        node.key, node.cmp, node.val = leaf.key, leaf.cmp, leaf.val
    return msg, m.Subscribe(**fields, data=payload(data), tags_filter=tags_filter)


@st.composite
def connect_requests(draw: st.DrawFn) -> tuple[Any, m.Connect]:
    token, data, name, version = draw(TEXT), draw(DATA_BYTES), draw(TEXT), draw(TEXT)
    subs = draw(st.dictionaries(TEXT, subscribe_requests(), max_size=3))
    headers = draw(st.dictionaries(TEXT, TEXT, max_size=2))
    # flag (7) is the SDK's and not in our schema.
    msg = sdk.ConnectRequest(
        token=token, data=data, name=name, version=version, headers=headers, flag=draw(I64)
    )
    for channel, (sub, _) in subs.items():
        msg.subs[channel].CopyFrom(sub)
    expected = m.Connect(
        token=token,
        data=payload(data),
        subs={channel: replace(sub, channel=channel) for channel, (_, sub) in subs.items()},
        name=name,
        version=version,
        headers=headers,
    )
    return msg, expected


@st.composite
def history_requests(draw: st.DrawFn) -> tuple[Any, m.History]:
    channel, limit, reverse = draw(TEXT), draw(I32), draw(B)
    since = draw(st.none() | st.builds(m.Since, U64, TEXT))
    msg = sdk.HistoryRequest(channel=channel, limit=limit, reverse=reverse)
    if since is not None:
        msg.since.SetInParent()
        msg.since.offset = since.offset
        msg.since.epoch = since.epoch
    return msg, m.History(channel, limit, since, reverse)


def _channel_only(sdk_type: Any, typed: Callable[[str], m.Request]) -> st.SearchStrategy[Any]:
    return TEXT.map(lambda channel: (sdk_type(channel=channel), typed(channel)))


REQUESTS: dict[str, st.SearchStrategy[Any]] = {
    "connect": connect_requests(),
    "subscribe": subscribe_requests(),
    "unsubscribe": _channel_only(sdk.UnsubscribeRequest, m.Unsubscribe),
    "publish": st.tuples(TEXT, DATA_BYTES).map(
        lambda a: (sdk.PublishRequest(channel=a[0], data=a[1]), m.Publish(a[0], payload(a[1])))
    ),
    "presence": _channel_only(sdk.PresenceRequest, m.Presence),
    "presence_stats": _channel_only(sdk.PresenceStatsRequest, m.PresenceStats),
    "history": history_requests(),
    "ping": st.just((sdk.PingRequest(), m.Ping())),
    "send": DATA_BYTES.map(lambda d: (sdk.SendRequest(data=d), m.Send(payload(d)))),
    "rpc": st.tuples(TEXT, DATA_BYTES).map(
        lambda a: (sdk.RPCRequest(method=a[0], data=a[1]), m.RPC(a[0], payload(a[1])))
    ),
    "refresh": TEXT.map(lambda t: (sdk.RefreshRequest(token=t), m.Refresh(t))),
    "sub_refresh": st.tuples(TEXT, TEXT).map(
        lambda a: (sdk.SubRefreshRequest(channel=a[0], token=a[1]), m.SubRefresh(*a))
    ),
}

#: (method, SDK request message, the typed request it must decode to)
ANY_REQUEST = st.sampled_from(sorted(REQUESTS)).flatmap(
    lambda method: REQUESTS[method].map(lambda pair: (method, *pair))
)
METHODS = sorted(REQUESTS)

DATA: st.SearchStrategy[m.Data | None] = st.none() | JSON_TEXT | st.binary(max_size=24)
INFO = st.builds(ClientInfo, TEXT, TEXT, st.none() | JSON_TEXT, st.none() | JSON_TEXT)
PUBLICATION = st.builds(
    Publication,
    data=JSON_TEXT,
    offset=U64,
    info=st.none() | INFO,
    tags=st.none() | st.dictionaries(TEXT, TEXT, max_size=3),
    time_ms=I64,
)
PUBLICATIONS = st.lists(PUBLICATION, max_size=3).map(tuple)
SUBSCRIBE_RESULT = st.builds(
    m.SubscribeResult,
    expires=B,
    ttl=U32,
    recoverable=B,
    epoch=TEXT,
    publications=PUBLICATIONS,
    recovered=B,
    offset=U64,
    positioned=B,
    data=DATA,
    was_recovering=B,
    delta=B,
)
#: Typed results, by the name of the Reply field that holds them.
RESULTS: dict[str, st.SearchStrategy[Any]] = {
    "connect": st.builds(
        m.ConnectResult,
        client=TEXT,
        version=TEXT,
        expires=B,
        ttl=U32,
        data=DATA,
        subs=st.dictionaries(TEXT, SUBSCRIBE_RESULT, max_size=3),
        ping=U32,
        pong=B,
    ),
    "subscribe": SUBSCRIBE_RESULT,
    "unsubscribe": st.just(m.UnsubscribeResult()),
    "publish": st.just(m.PublishResult()),
    "presence": st.builds(m.PresenceResult, st.dictionaries(TEXT, INFO, max_size=3)),
    "presence_stats": st.builds(m.PresenceStatsResult, U32, U32),
    "history": st.builds(m.HistoryResult, PUBLICATIONS, TEXT, U64),
    "ping": st.just(m.PingResult()),
    "rpc": st.builds(m.RPCResult, DATA),
    "refresh": st.builds(m.RefreshResult, TEXT, TEXT, B, U32),
    "sub_refresh": st.builds(m.SubRefreshResult, B, U32),
}


# -- what an SDK must find in our messages ------------------------------------------------


def data_bytes(data: m.Data | None) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else data


def set_fields(msg: Any) -> list[str]:
    return [field.name for field, _ in msg.ListFields()]


def check_info(msg: Any, info: ClientInfo) -> None:
    assert (msg.user, msg.client) == (info.user, info.client)
    assert msg.conn_info == data_bytes(info.conn_info)
    assert msg.chan_info == data_bytes(info.chan_info)


def check_publication(msg: Any, pub: Publication) -> None:
    assert msg.data == pub.data.encode()
    assert msg.offset == pub.offset
    assert dict(msg.tags) == (pub.tags or {})
    assert msg.time == pub.time_ms
    assert msg.HasField("info") == (pub.info is not None)
    if pub.info is not None:
        check_info(msg.info, pub.info)
    assert not msg.delta and not msg.channel


def check_publications(msgs: Any, pubs: tuple[Publication, ...]) -> None:
    assert len(msgs) == len(pubs)
    for msg, pub in zip(msgs, pubs, strict=True):
        check_publication(msg, pub)


def check_subscribe(msg: Any, r: m.SubscribeResult) -> None:
    assert (msg.expires, msg.ttl, msg.recoverable, msg.epoch) == (
        r.expires,
        r.ttl,
        r.recoverable,
        r.epoch,
    )
    assert (msg.recovered, msg.offset, msg.positioned, msg.was_recovering) == (
        r.recovered,
        r.offset,
        r.positioned,
        r.was_recovering,
    )
    assert msg.data == data_bytes(r.data)
    assert msg.delta == r.delta
    check_publications(msg.publications, r.publications)


def check_connect(msg: Any, r: m.ConnectResult) -> None:
    assert (msg.client, msg.version, msg.expires, msg.ttl) == (
        r.client,
        r.version,
        r.expires,
        r.ttl,
    )
    assert (msg.ping, msg.pong, msg.data) == (r.ping, r.pong, data_bytes(r.data))
    assert set(msg.subs) == set(r.subs)
    for channel, sub in r.subs.items():
        check_subscribe(msg.subs[channel], sub)


def check_presence(msg: Any, r: m.PresenceResult) -> None:
    assert set(msg.presence) == set(r.presence)
    for client, info in r.presence.items():
        check_info(msg.presence[client], info)


def check_history(msg: Any, r: m.HistoryResult) -> None:
    assert (msg.epoch, msg.offset) == (r.epoch, r.offset)
    check_publications(msg.publications, r.publications)


def check_empty(msg: Any, r: Any) -> None:
    assert set_fields(msg) == []


def check_presence_stats(msg: Any, r: m.PresenceStatsResult) -> None:
    assert (msg.num_clients, msg.num_users) == (r.num_clients, r.num_users)


def check_rpc(msg: Any, r: m.RPCResult) -> None:
    assert msg.data == data_bytes(r.data)


def check_refresh(msg: Any, r: m.RefreshResult) -> None:
    assert (msg.client, msg.version) == (r.client, r.version)
    assert (msg.expires, msg.ttl) == (r.expires, r.ttl)


def check_sub_refresh(msg: Any, r: m.SubRefreshResult) -> None:
    assert (msg.expires, msg.ttl) == (r.expires, r.ttl)


CHECKS: dict[type, tuple[str, Callable[[Any, Any], None]]] = {
    m.ConnectResult: ("connect", check_connect),
    m.SubscribeResult: ("subscribe", check_subscribe),
    m.UnsubscribeResult: ("unsubscribe", check_empty),
    m.PublishResult: ("publish", check_empty),
    m.PresenceResult: ("presence", check_presence),
    m.PresenceStatsResult: ("presence_stats", check_presence_stats),
    m.HistoryResult: ("history", check_history),
    m.PingResult: ("ping", check_empty),
    m.RPCResult: ("rpc", check_rpc),
    m.RefreshResult: ("refresh", check_refresh),
    m.SubRefreshResult: ("sub_refresh", check_sub_refresh),
}


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@given(cid=U32, data=st.data())
def test_an_sdk_command_decodes_to_its_typed_request(
    method: str, cid: int, data: st.DataObject
) -> None:
    msg, expected = data.draw(REQUESTS[method])
    [frame] = PROTOBUF.decode(delimit(command(cid, method, msg)))
    assert (frame.id, frame.kind, frame.problem) == (cid, method, None)
    assert frame.kind == m.METHOD_OF[type(expected)]
    assert frame.request == expected


@given(st.lists(st.tuples(U32, ANY_REQUEST), min_size=1, max_size=5))
def test_commands_of_one_frame_decode_in_order(commands: list[tuple[int, Any]]) -> None:
    frame = delimit(*(command(cid, method, msg) for cid, (method, msg, _) in commands))
    decoded = PROTOBUF.decode(frame)
    assert [(f.id, f.kind, f.request) for f in decoded] == [
        (cid, method, expected) for cid, (method, _, expected) in commands
    ]


@pytest.mark.parametrize("field", sorted(RESULTS))
@given(cid=U32, data=st.data())
def test_a_reply_parses_with_the_sdk_schema(field: str, cid: int, data: st.DataObject) -> None:
    result = data.draw(RESULTS[field])
    frame = PROTOBUF.reply(m.Reply(cid, result))
    assert isinstance(frame, bytes)
    reply = sdk_reply(frame)
    name, check = CHECKS[type(result)]
    assert name == field == m.RESULT_METHOD[type(result)]
    assert reply.id == cid
    assert set_fields(reply) == (["id", field] if cid else [field])
    check(getattr(reply, field), result)
    # The SDK's own decoder sees which result it is (empty results too).
    [as_dict] = _ProtobufCodec.decode_replies(frame)
    assert field in as_dict


@given(cid=U32, code=U32, message=TEXT, temporary=B)
def test_an_error_reply_parses_with_the_sdk_schema(
    cid: int, code: int, message: str, temporary: bool
) -> None:
    reply = sdk_reply(PROTOBUF.reply(m.Reply(cid, error=m.Error(code, message, temporary))))
    assert set_fields(reply) == (["id", "error"] if cid else ["error"])
    assert (reply.id, reply.error.code, reply.error.message) == (cid, code, message)
    assert reply.error.temporary == temporary


def push_of(frame: bytes, kind: str) -> Any:
    reply = sdk_reply(frame)
    assert set_fields(reply) == ["push"]  # id 0, no result, no error
    fields = set_fields(reply.push)
    assert fields == (["channel", kind] if reply.push.channel else [kind])
    return reply.push


@given(channel=TEXT, pub=PUBLICATION)
def test_a_publication_push_parses_with_the_sdk_schema(channel: str, pub: Publication) -> None:
    frame = PROTOBUF.push(m.Pub(channel, pub))
    assert PROTOBUF.publication(channel, pub) == frame
    push = push_of(frame, "pub")
    assert push.channel == channel and push.id == 0
    check_publication(push.pub, pub)


@given(channel=TEXT, info=INFO, join=B)
def test_join_and_leave_pushes_parse_with_the_sdk_schema(
    channel: str, info: ClientInfo, join: bool
) -> None:
    kind = "join" if join else "leave"
    frame = PROTOBUF.push(m.Join(channel, info) if join else m.Leave(channel, info))
    wire = PROTOBUF.join(channel, info) if join else PROTOBUF.leave(channel, info)
    assert wire == frame
    push = push_of(frame, kind)
    assert push.channel == channel
    assert getattr(push, kind).HasField("info")
    check_info(getattr(push, kind).info, info)


@given(channel=TEXT, code=U32, reason=TEXT)
def test_an_unsubscribe_push_parses_with_the_sdk_schema(
    channel: str, code: int, reason: str
) -> None:
    push = push_of(PROTOBUF.push(m.Unsubscribed(channel, code, reason)), "unsubscribe")
    assert (push.channel, push.unsubscribe.code, push.unsubscribe.reason) == (
        channel,
        code,
        reason,
    )


@given(channel=TEXT, result=SUBSCRIBE_RESULT)
def test_a_subscribe_push_parses_with_the_sdk_schema(
    channel: str, result: m.SubscribeResult
) -> None:
    push = push_of(PROTOBUF.push(m.Subscribed(channel, result)), "subscribe")
    sub = push.subscribe
    assert push.channel == channel
    assert (sub.recoverable, sub.epoch, sub.offset, sub.positioned, sub.data) == (
        result.recoverable,
        result.epoch,
        result.offset,
        result.positioned,
        data_bytes(result.data),
    )


@given(expires=st.booleans(), ttl=U32)
def test_a_refresh_push_parses_with_the_sdk_schema(expires: bool, ttl: int) -> None:
    """The server API's refresh reaches Protobuf clients as the protocol's Refresh push."""
    push = push_of(PROTOBUF.push(m.Refreshed(expires, ttl if expires else 0)), "refresh")
    assert (push.channel, push.refresh.expires, push.refresh.ttl) == (
        "",
        expires,
        ttl if expires else 0,
    )


# -- examples -----------------------------------------------------------------------------


def test_an_empty_command_is_a_pong_as_the_sdks_send_it() -> None:
    assert PROTOBUF.decode(b"\x00") == [m.Frame(0, None, "pong")]
    # centrifuge-python answers a ping with the empty command.
    assert PROTOBUF.decode(_ProtobufCodec.encode_commands([{}])) == [m.Frame(0, None, "pong")]


def test_a_command_without_a_known_request_is_an_unknown_method() -> None:
    # id 5 and field 99 (a method newer than the schema): an unknown field.
    newer = b"\x08\x05" + varint(99 << 3) + b"\x01"
    bare = b"\x08\x06"  # an id and nothing else
    pong_like = varint(99 << 3) + b"\x01"  # no id, unknown field only: the pong
    assert PROTOBUF.decode(delimit(newer, bare, pong_like)) == [
        m.Frame(5, None, "unknown"),
        m.Frame(6, None, "unknown"),
        m.Frame(0, None, "pong"),
    ]


def test_a_command_with_two_requests_is_an_unknown_method() -> None:
    cmd = sdk.Command(id=4, publish=sdk.PublishRequest(channel="a"))
    cmd.ping.SetInParent()
    assert PROTOBUF.decode(delimit(cmd.SerializeToString())) == [m.Frame(4, None, "unknown")]


@pytest.mark.parametrize("frame", ["", "\x00", '{"id":1,"ping":{}}'])
def test_a_text_frame_is_a_protocol_violation(frame: str) -> None:
    with pytest.raises(ProtocolViolation, match="text frame"):
        PROTOBUF.decode(frame)


GOOD = delimit(command(1, "ping", sdk.PingRequest()))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty"),
        (GOOD[:-1], "truncated command"),  # the length says more than there is
        (GOOD + b"\x05\x08", "truncated command"),  # a good command, then a cut one
        (b"\x80", "truncated command length"),  # a varint that never ends
        (GOOD + b"\xff\xff", "truncated command length"),
        (b"\xff\xff\xff\xff\xff\x01" + bytes(40), "too long"),  # a 6-byte length
        (b"\x01\x0f", "does not parse"),  # field 1 of wire type 7: no such wire type
        (b"\x02\x08\xff", "does not parse"),  # a varint cut inside the command
        # publish{channel: b"\xff"}: a string that is not UTF-8
        (delimit(b"\x3a\x03\x0a\x01\xff"), "does not parse"),
    ],
)
def test_a_broken_frame_is_a_protocol_violation(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolViolation, match=reason):
        PROTOBUF.decode(frame)


def test_several_commands_in_one_frame_as_the_sdk_writes_them() -> None:
    frame = _ProtobufCodec.encode_commands(
        [
            {"id": 1, "subscribe": {"channel": "a", "recover": True, "offset": "12"}},
            {"id": 2, "publish": {"channel": "a", "data": base64.b64encode(b'{"x": 1}').decode()}},
            {"id": 3, "history": {"channel": "a", "limit": -1, "since": {}}},
            {"id": 4, "history": {"channel": "a", "limit": 10}},
        ]
    )
    assert PROTOBUF.decode(frame) == [
        m.Frame(1, m.Subscribe(channel="a", recover=True, offset=12), "subscribe"),
        m.Frame(2, m.Publish("a", m.Payload('{"x": 1}')), "publish"),  # verbatim JSON text
        m.Frame(3, m.History("a", -1, m.Since(0, ""), False), "history"),  # since sent, empty
        m.Frame(4, m.History("a", 10, None, False), "history"),  # since not sent
    ]


def test_publish_data_that_is_not_json_is_binary() -> None:
    raw = b"\x00\x01\xfe not json"
    [frame] = PROTOBUF.decode(delimit(command(9, "publish", sdk.PublishRequest(data=raw))))
    assert isinstance(frame.request, m.Publish)
    data = frame.request.data
    assert data is not None
    assert (data.text, data.binary, data.value()) == (None, raw, raw)
    # utf-8 text that is not JSON is binary too
    [frame] = PROTOBUF.decode(delimit(command(9, "publish", sdk.PublishRequest(data=b"hi"))))
    assert isinstance(frame.request, m.Publish)
    assert frame.request.data == m.Payload(None, b"hi")


def test_no_data_is_none_and_json_data_is_parsed() -> None:
    [empty, jsonish] = PROTOBUF.decode(
        delimit(
            command(1, "rpc", sdk.RPCRequest(method="m")),
            command(2, "rpc", sdk.RPCRequest(method="m", data=b'[1, {"a": null}]')),
        )
    )
    assert empty.request == m.RPC("m", None)
    assert isinstance(jsonish.request, m.RPC) and jsonish.request.data is not None
    assert jsonish.request.data.text == '[1, {"a": null}]'
    assert jsonish.request.data.value() == [1, {"a": None}]


def test_a_connect_with_subs_takes_each_channel_from_its_key() -> None:
    data = base64.b64encode(b'{"hello": "world"}').decode()
    frame = _ProtobufCodec.encode_commands(
        [
            {
                "id": 1,
                "connect": {
                    "token": "tok",
                    "data": data,
                    "name": "python",
                    "version": "0.7.0",
                    "subs": {
                        "news": {"recover": True, "epoch": "e1", "offset": "5"},
                        "chat": {"channel": "ignored", "tf": {"key": "k", "cmp": "eq", "val": "v"}},
                        # a bad filter leaves the entry out (only server-side channels read it)
                        "bad": {"tf": {"key": "k", "cmp": "eq"}},
                    },
                },
            }
        ]
    )
    [cmd] = PROTOBUF.decode(frame)
    assert cmd == m.Frame(
        1,
        m.Connect(
            token="tok",
            data=m.Payload('{"hello": "world"}'),
            subs={
                "news": m.Subscribe(channel="news", recover=True, epoch="e1", offset=5),
                "chat": m.Subscribe(channel="chat", tags_filter=Filter(key="k", cmp="eq", val="v")),
            },
            name="python",
            version="0.7.0",
        ),
        "connect",
    )


def test_the_ping_is_the_empty_reply() -> None:
    assert PROTOBUF.ping == b"\x00"
    assert set_fields(sdk_reply(PROTOBUF.ping)) == []
    assert _ProtobufCodec.decode_replies(PROTOBUF.ping) == [{}]


@given(cid=U32)
def test_the_hand_written_publish_reply_is_what_the_gencode_writes(cid: int) -> None:
    reply = ours.Reply(id=cid)
    reply.publish.SetInParent()
    assert PROTOBUF.reply(m.Reply(cid, m.PublishResult())) == delimit(reply.SerializeToString())


@given(cid=U32, data=st.none() | st.binary(max_size=300) | st.text(max_size=50))
def test_the_hand_written_rpc_reply_is_what_the_gencode_writes(
    cid: int, data: bytes | str | None
) -> None:
    reply = ours.Reply(id=cid)
    reply.rpc.SetInParent()
    if data:
        reply.rpc.data = data if isinstance(data, bytes) else data.encode()
    expected = delimit(reply.SerializeToString())
    assert PROTOBUF.reply(m.Reply(cid, m.RPCResult(data))) == expected


def test_empty_results_are_written_as_their_field() -> None:
    # Reply{id: 7, publish: {}}: field 8, length 0.
    assert PROTOBUF.reply(m.Reply(7, m.PublishResult())) == b"\x04\x08\x07\x42\x00"
    assert _ProtobufCodec.decode_replies(PROTOBUF.reply(m.Reply(8, m.UnsubscribeResult()))) == [
        {"id": 8, "unsubscribe": {}}
    ]


def test_a_publication_as_the_sdk_reads_it() -> None:
    info = ClientInfo("c1", "u1", '{"name": "Ann"}', None)
    pub = Publication('{"text": "hi"}', offset=3, info=info, tags={"t": "v"}, time_ms=1700)
    [reply] = _ProtobufCodec.decode_replies(PROTOBUF.publication("room", pub))
    assert reply == {
        "push": {
            "channel": "room",
            "pub": {
                "data": base64.b64encode(b'{"text": "hi"}').decode(),
                "offset": "3",
                "info": {
                    "client": "c1",
                    "user": "u1",
                    "conn_info": base64.b64encode(b'{"name": "Ann"}').decode(),
                },
                "tags": {"t": "v"},
                "time": "1700",
            },
        }
    }


@given(channel=TEXT, pub=PUBLICATION, patch=st.binary(min_size=1, max_size=40))
def test_delta_publications_parse_with_the_sdk_schema(
    channel: str, pub: Publication, patch: bytes
) -> None:
    """In full, a delta member's publication is the one every member gets; a delta carries
    its bytes as the data and ``delta: true``."""
    assert PROTOBUF.delta_publication(channel, pub, None) == PROTOBUF.publication(channel, pub)
    push = push_of(PROTOBUF.delta_publication(channel, pub, patch), "pub")
    assert push.pub.data == patch and push.pub.delta is True
    assert (push.pub.offset, push.pub.time, dict(push.pub.tags)) == (
        pub.offset,
        pub.time_ms,
        pub.tags or {},
    )


def test_an_anonymous_join_still_carries_its_field() -> None:
    push = push_of(PROTOBUF.join("", ClientInfo("", "")), "join")
    assert push.join.HasField("info")


def test_long_messages_get_a_multi_byte_length() -> None:
    pub = Publication(json.dumps("x" * 300))
    frame = PROTOBUF.publication("c", pub)
    assert frame[0] & 0x80  # the length takes more than one byte
    check_publication(push_of(frame, "pub").pub, pub)
    [big] = PROTOBUF.decode(delimit(command(1, "publish", sdk.PublishRequest(data=b"1" * 500))))
    assert isinstance(big.request, m.Publish)
    assert big.request.data == m.Payload("1" * 500)


def test_several_replies_joined_are_split_by_the_sdk() -> None:
    frame = PROTOBUF.reply(m.Reply(1, m.PingResult())) + PROTOBUF.publication("c", Publication("1"))
    assert _ProtobufCodec.decode_replies(frame) == [
        {"id": 1, "ping": {}},
        {"push": {"channel": "c", "pub": {"data": base64.b64encode(b"1").decode()}}},
    ]


# -- the schema ---------------------------------------------------------------------------


def _same_fields(ours_msg: Descriptor, sdk_msg: Descriptor, seen: set[str]) -> None:
    if ours_msg.full_name in seen:  # FilterNode holds FilterNodes
        return
    seen.add(ours_msg.full_name)
    theirs = sdk_msg.fields_by_name
    for field in ours_msg.fields:
        other = theirs.get(field.name)
        assert other is not None, f"{ours_msg.name}.{field.name} is not in the SDK's schema"
        where = f"{ours_msg.name}.{field.name}"
        assert field.number == other.number, where
        assert field.type == other.type, where
        assert field.is_repeated == other.is_repeated, where
        if field.message_type is not None:
            assert field.message_type.name == other.message_type.name, where
            _same_fields(field.message_type, other.message_type, seen)


def test_every_field_of_our_schema_is_the_sdks() -> None:
    names = ours.DESCRIPTOR.message_types_by_name
    assert len(names) >= 35
    seen: set[str] = set()
    for name, descriptor in names.items():
        _same_fields(descriptor, sdk.DESCRIPTOR.message_types_by_name[name], seen)
    assert "hubbub.centrifuge.protocol.ConnectRequest.SubsEntry" in seen  # map entries too


def test_our_schema_lives_beside_the_sdks_in_one_process() -> None:
    assert ours.DESCRIPTOR.package != sdk.DESCRIPTOR.package  # else one of them cannot load
    assert ours.DESCRIPTOR.name == "hubbub/dialects/centrifuge/proto/client.proto"
    assert api_implementation.Type() == "upb"


def test_the_codec_is_a_codec() -> None:
    codec: Codec = PROTOBUF
    assert (codec.name, codec.own_messages) == ("protobuf", True)
    with pytest.raises(AttributeError):
        PROTOBUF.extra = 1  # type: ignore[attr-defined]


def test_commands_in_any_field_order_decode_the_same() -> None:
    """The fast path reads the usual layout (id, then the one request) from the bytes; any
    other layout (id last, two requests, unknown fields) gives what the parsed fields say."""
    publish = ours.PublishRequest(
        channel="c", data=b'{"a":' + b"1" * 200 + b"}"
    ).SerializeToString()
    tag = bytes(((ours.Command.PUBLISH_FIELD_NUMBER << 3) | 2,))
    request = tag + encoder._VarintBytes(len(publish)) + publish
    canonical = b"\x08\x07" + request
    id_last = request + b"\x08\x07"
    unknown_after = canonical + b"\xf8\x07\x01"  # field 127, varint 1: not in the schema
    (a,) = PROTOBUF.decode(delimit(canonical))
    (b,) = PROTOBUF.decode(delimit(id_last))
    (c,) = PROTOBUF.decode(delimit(unknown_after))
    assert a == b == c and a.kind == "publish" and a.id == 7
    ping = bytes(((ours.Command.PING_FIELD_NUMBER << 3) | 2, 0))
    (two,) = PROTOBUF.decode(delimit(canonical + ping))
    assert (two.kind, two.request) == ("unknown", None)
