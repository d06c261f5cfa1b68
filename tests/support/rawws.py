"""A deliberately minimal WebSocket client over asyncio streams, for tests that need to do
what well-behaved clients refuse to: send invalid close codes, ignore pings, stop reading."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import dataclass

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str = "/", headers: dict[str, str] | None = None
    ) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port)
        status, _ = await handshake(reader, writer, host, port, path, headers)
        if status != 101:
            writer.close()
            raise ConnectionError(f"handshake refused with HTTP {status}")
        return cls(reader, writer)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> None:
        """Send one frame; ``mask=False`` sends it unmasked, as no client may (RFC 6455 §5.1)."""
        self.writer.write(client_frame(opcode, payload, fin, mask))

    def send_close(self, code: int, reason: bytes = b"") -> None:
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason)

    async def recv_frame(self) -> Frame:
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(n)
        return Frame(b0 & 0x0F, payload, bool(b0 & 0x80))

    async def eof(self) -> bool:
        """True when the server closed the TCP connection (reads what is left)."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()

    async def __aenter__(self) -> RawWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    """A client frame: masked with a random key unless ``mask`` is false."""
    bit = 0x80 if mask else 0
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Send an upgrade request; return (HTTP status, response head and body start)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status = int(head.split(" ", 2)[1])
    return status, head


async def non_reader(host: str, port: int, path: str) -> RawWebSocket:
    """A WebSocket with a tiny receive buffer, for a client that will stop reading (a slow
    consumer): its server's unsent data piles up after a few KB."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    status, _ = await handshake(reader, writer, host, port, path)
    assert status == 101
    return RawWebSocket(reader, writer)
