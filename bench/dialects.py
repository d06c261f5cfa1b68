"""How the load generator speaks to the baseline servers in bench/peers/ (hubbub's own
dialect lives in hubbub.loadgen).

Plain servers (aiohttp, websockets, Node ws): a text message starting with ``E`` is echoed,
``S<room>`` joins a room (answered ``ok``), ``R<room> <body>`` goes to a room, anything else is
broadcast to every connection. python-socketio: events ``echo``, ``join``, ``room``, ``pub``.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.loadgen import Client, Dialect, client_frame


class PlainDialect(Dialect):
    def __init__(self, name: str) -> None:
        self.name = name

    def subscribe(self, channels: Sequence[str]) -> list[bytes]:
        return [client_frame(b"S" + c.encode()) for c in channels]

    def subscribe_replies(self, channels: Sequence[str]) -> int:
        return len(channels)

    def publish(self, channel: str | None, bodies: Sequence[bytes]) -> bytes:
        if channel is None:
            return b"".join(client_frame(b) for b in bodies)
        return b"".join(client_frame(b"R" + channel.encode() + b" " + b) for b in bodies)

    def echo(self, body: bytes) -> bytes:
        return client_frame(body)  # bodies of the echo scenario start with "E"


class SocketIODialect(Dialect):
    """Engine.IO 4 over WebSocket, Socket.IO 5 packets, default namespace."""

    name = "python-socketio"
    path = "/socket.io/?EIO=4&transport=websocket"

    def replies(self, payload: bytes) -> int:
        return 1 if payload.startswith((b"40", b'42["ok"')) else 0

    def hello_replies(self) -> int:
        return 1  # "40{sid}" once we answered the open packet

    def control(self, client: Client, payload: bytes) -> bool:
        if payload == b"2":  # Engine.IO ping
            client.send(client_frame(b"3"))
            return True
        if payload.startswith(b"0{"):  # Engine.IO open: connect to the namespace
            client.send(client_frame(b"40"))
            return True
        return False

    def subscribe(self, channels: Sequence[str]) -> list[bytes]:
        return [client_frame(b'42["join","%s"]' % c.encode()) for c in channels]

    def subscribe_replies(self, channels: Sequence[str]) -> int:
        return len(channels)

    def publish(self, channel: str | None, bodies: Sequence[bytes]) -> bytes:
        if channel is None:
            return b"".join(client_frame(b'42["pub","%s"]' % b) for b in bodies)
        room = channel.encode()
        return b"".join(client_frame(b'42["room",["%s","%s"]]' % (room, b)) for b in bodies)

    def echo(self, body: bytes) -> bytes:
        return client_frame(b'42["echo","%s"]' % body)

    def deliveries(self, payload: bytes) -> int:
        return 1 if payload.startswith(b"42") else 0
