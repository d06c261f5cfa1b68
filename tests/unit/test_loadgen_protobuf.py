"""The load generator's hand-encoded Protobuf commands parse with centrifuge-python's bundled
schema, and its reply walker counts what that schema writes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from centrifuge.protocol import client_pb2 as pb  # type: ignore[import-untyped, unused-ignore]

from hubbub.loadgen import Client, Stats, handshake_request
from hubbub.loadgen_protobuf import PING_REPLY, ProtobufDialect, varint, walk_replies


def unframe(frame: bytes) -> bytes:
    """The payload of one masked client frame (zero key), checking it is binary and final."""
    assert frame[0] == 0x82
    size = frame[1] & 0x7F
    head = 2
    if size == 126:
        size, head = int.from_bytes(frame[2:4], "big"), 4
    elif size == 127:
        size, head = int.from_bytes(frame[2:10], "big"), 10
    assert frame[1] & 0x80 and frame[head : head + 4] == b"\0\0\0\0"
    payload = frame[head + 4 :]
    assert len(payload) == size
    return payload


def commands(payload: bytes) -> Iterator[pb.Command]:
    pos = 0
    while pos < len(payload):
        size, shift = 0, 0
        while True:
            byte = payload[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        yield pb.Command.FromString(payload[pos : pos + size])
        pos += size


def delimited(msg: pb.Reply) -> bytes:
    body: bytes = msg.SerializeToString()
    return varint(len(body)) + body


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**32 + 5])
def test_varint(n: int) -> None:
    msg = pb.Reply(id=n) if n < 2**32 else None
    if msg is not None:
        assert msg.SerializeToString() == (b"\x08" + varint(n) if n else b"")
    value, shift = 0, 0
    for byte in varint(n):
        value |= (byte & 0x7F) << shift
        shift += 7
    assert value == n


def test_commands_parse() -> None:
    dialect = ProtobufDialect()
    (hello,) = dialect.hello()
    (connect,) = commands(unframe(hello))
    assert connect.id == 1 and connect.HasField("connect") and connect.connect.token == ""
    (with_token,) = commands(unframe(ProtobufDialect(token="t0k").hello()[0]))
    assert with_token.connect.token == "t0k"

    (sub_frame,) = dialect.subscribe(["a", "nohist:b"])
    subs = list(commands(unframe(sub_frame)))
    assert [(c.id, c.subscribe.channel) for c in subs] == [(2, "a"), (3, "nohist:b")]
    assert all(c.HasField("subscribe") for c in subs)

    body = b"x" * 200  # a length prefix of two bytes
    pubs = list(commands(unframe(dialect.publish("chan", [b"T1|x", body]))))
    assert [c.publish.channel for c in pubs] == ["chan", "chan"]
    assert [c.publish.data for c in pubs] == [b'"T1|x"', b'"' + body + b'"']
    assert pubs[0].id < pubs[1].id
    (default,) = commands(unframe(dialect.publish(None, [b"y"])))
    assert default.publish.channel == "bench"

    (rpc,) = commands(unframe(dialect.echo(b"Exx")))
    assert rpc.HasField("rpc") and rpc.rpc.method == "echo" and rpc.rpc.data == b'"Exx"'
    assert rpc.id > default.id


def test_handshake_offers_the_subprotocol() -> None:
    dialect = ProtobufDialect()
    _host, _port, request = handshake_request("ws://127.0.0.1:9", dialect.path, dialect.headers)
    assert b"\r\nSec-WebSocket-Protocol: centrifuge-protobuf\r\n" in request
    assert request.endswith(b"\r\n\r\n") and request.count(b"\r\n\r\n") == 1
    ok = b"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-protocol: centrifuge-protobuf"
    assert dialect.check_handshake(ok) is None
    assert dialect.check_handshake(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x") is not None


def push(channel: str, data: bytes) -> pb.Reply:
    reply = pb.Reply()
    reply.push.channel = channel
    reply.push.pub.data = data
    reply.push.pub.info.client = "c1"
    reply.push.pub.offset = 7
    reply.push.pub.time = 1_700_000_000_000
    return reply


def test_walker_counts_a_frame_made_by_client_pb2() -> None:
    publish_reply = pb.Reply(id=5)
    publish_reply.publish.SetInParent()  # "08 05 42 00": a zero byte that is not a ping
    rpc_reply = pb.Reply(id=300)
    rpc_reply.rpc.data = b'"E' + b"x" * 200 + b'"'
    error = pb.Reply(id=9)
    error.error.code = 111
    error.error.message = "too many requests"
    join = pb.Reply()
    join.push.channel = "c"
    join.push.join.info.client = "c2"
    frame = b"".join(
        [
            delimited(push("c", b'"T123|' + b"x" * 150 + b'"')),
            delimited(publish_reply),
            PING_REPLY,
            delimited(rpc_reply),
            delimited(push("c", b'"T456|x"')),
            delimited(error),
            delimited(join),
            PING_REPLY,
        ]
    )
    assert walk_replies(frame) == (3, 3, 2)
    assert walk_replies(delimited(push("c", b"{}"))) == (0, 1, 0)
    assert walk_replies(PING_REPLY) == (0, 0, 1)
    with pytest.raises((ValueError, IndexError)):
        walk_replies(delimited(push("c", b"x" * 50))[:-3])


class Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_client_counts_deliveries_stamps_and_answers_pings() -> None:
    async def run() -> None:
        stats = Stats()
        client = Client(b"", ProtobufDialect(), stats, sample=True)
        client._open = True
        sink = Sink()
        client.transport = sink  # type: ignore[assignment]
        pushes = b"".join(delimited(push("c", b'"T%d|xx"' % n)) for n in (10, 20))
        payload = pushes + PING_REPLY
        client.data_received(bytes((0x82, len(payload))) + payload)
        assert stats.delivered == 2 and len(stats.latencies_ns) == 2
        assert sink.written == [bytes((0x82, 0x81)) + b"\0\0\0\0" + PING_REPLY]
        client.data_received(bytes((0x82, 1)) + PING_REPLY)
        assert stats.delivered == 2 and len(sink.written) == 2

    asyncio.run(run())
