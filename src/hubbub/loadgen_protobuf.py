"""The load generator's Protobuf dialect (:mod:`hubbub.loadgen`): the Centrifugo protocol in
subprotocol ``centrifuge-protobuf``, hand-encoded here so that the generator does not share
the codec it measures (``hubbub.dialects.centrifuge.protowire``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from hubbub.loadgen import Client, Dialect, client_frame


def binary_frame(payload: bytes) -> bytes:
    """A final binary frame from a client, masked with the zero key."""
    return client_frame(payload, 2)


#: Field numbers of Centrifugo's client.proto that the generator writes and reads.
CMD_ID: Final = 1
CMD_CONNECT: Final = 4
CMD_SUBSCRIBE: Final = 5
CMD_PUBLISH: Final = 7
CMD_RPC: Final = 13
REPLY_ID: Final = 1
REPLY_PUSH: Final = 4
PING_REPLY: Final = b"\x00"  # the empty Reply (the server's ping) and the empty Command (pong)
_REPLY_ID_KEY: Final = REPLY_ID << 3  # id: varint
_REPLY_PUSH_KEY: Final = REPLY_PUSH << 3 | 2  # push: length-delimited


def varint(n: int) -> bytes:
    """``n`` (>= 0) as a protobuf base-128 varint."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def pb_field(number: int, value: bytes) -> bytes:
    """Field ``number`` of wire type 2 (bytes, string or message)."""
    return varint(number << 3 | 2) + varint(len(value)) + value


def pb_command(cid: int, request_field: int, request: bytes) -> bytes:
    """One length-delimited ``Command``: ``id`` and the request message in ``request_field``."""
    body = varint(CMD_ID << 3) + varint(cid) + pb_field(request_field, request)
    return varint(len(body)) + body


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]  # (IndexError on a truncated varint)
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def walk_replies(payload: bytes) -> tuple[int, int, int]:
    """(replies, pushes, pings) among the length-delimited ``Reply`` messages of one binary
    frame: a Reply with an ``id`` is a reply, one with ``push`` a push, an empty one a ping.
    A Reply's fields are walked until one of the two shows (a writer puts them in field
    order: ``id`` or ``push`` comes first, so that is one key read)."""
    replies = pushes = pings = 0
    pos, end = 0, len(payload)
    while pos < end:
        size = payload[pos]
        if size < 0x80:
            pos += 1
        else:
            size, pos = _read_varint(payload, pos)
        stop = pos + size
        if stop > end:
            raise ValueError("truncated Reply")
        if size == 0:
            pings += 1
            continue
        at = pos
        while at < stop:
            key = payload[at]
            if key < 0x80:
                at += 1
            else:
                key, at = _read_varint(payload, at)
            if key == _REPLY_ID_KEY:
                replies += 1
                break
            if key == _REPLY_PUSH_KEY:
                pushes += 1
                break
            wire = key & 7
            if wire == 0:
                _, at = _read_varint(payload, at)
            elif wire == 2:
                length, at = _read_varint(payload, at)
                at += length
            elif wire == 1:
                at += 8
            elif wire == 5:
                at += 4
            else:
                raise ValueError(f"wire type {wire} in a Reply")
        pos = stop
    return replies, pushes, pings


class ProtobufDialect(Dialect):
    """The Centrifugo Protobuf protocol (subprotocol ``centrifuge-protobuf``), as hubbub
    speaks it: binary frames of length-delimited Commands and Replies. Publication and RPC
    data is JSON text (a JSON string starting with the stamp, as the JSON dialect sends), so
    JSON subscribers of the same channel read it too."""

    name = "hubbub-protobuf"
    path = "/connection/websocket"
    headers = (("Sec-WebSocket-Protocol", "centrifuge-protobuf"),)

    def __init__(self, token: str = "") -> None:
        self._id = 1
        self._token = token

    def _next(self) -> int:
        self._id += 1
        return self._id

    def check_handshake(self, response: bytes) -> str | None:
        for line in response.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if (name.strip().lower(), value.strip()) == (b"sec-websocket-protocol",
                                                          b"centrifuge-protobuf"):  # fmt: skip
                return None
        return "the server did not select the centrifuge-protobuf subprotocol"

    def replies(self, payload: bytes) -> int:
        return walk_replies(payload)[0]

    def hello(self) -> list[bytes]:
        connect = pb_field(1, self._token.encode()) if self._token else b""
        return [binary_frame(pb_command(1, CMD_CONNECT, connect))]

    def hello_replies(self) -> int:
        return 1

    def subscribe(self, channels: Sequence[str]) -> list[bytes]:
        if not channels:
            channels = ["bench"]
        commands = [pb_command(i + 2, CMD_SUBSCRIBE, pb_field(1, c.encode()))
                    for i, c in enumerate(channels)]  # fmt: skip
        return [binary_frame(b"".join(commands))]

    def subscribe_replies(self, channels: Sequence[str]) -> int:
        return max(1, len(channels))

    def publish(self, channel: str | None, bodies: Sequence[bytes]) -> bytes:
        target = pb_field(1, (channel or "bench").encode())
        commands = [pb_command(self._next(), CMD_PUBLISH, target + pb_field(2, b'"%s"' % b))
                    for b in bodies]  # fmt: skip
        return binary_frame(b"".join(commands))

    def echo(self, body: bytes) -> bytes:
        rpc = pb_field(1, b'"%s"' % body) + pb_field(2, b"echo")
        return binary_frame(pb_command(self._next(), CMD_RPC, rpc))

    def deliveries(self, payload: bytes) -> int:
        return walk_replies(payload)[1]

    def control(self, client: Client, payload: bytes) -> bool:
        # Pings are empty Replies (a 0x00 length) and may share a frame with others; a frame
        # without a zero byte has none (the usual case, one C-level scan).
        if payload == PING_REPLY:
            client.send(binary_frame(PING_REPLY))
            return True
        if b"\x00" not in payload:
            return False
        replies, pushes, pings = walk_replies(payload)
        for _ in range(pings):
            client.send(binary_frame(PING_REPLY))
        return pings > 0 and replies == 0 and pushes == 0
