"""A test client over :class:`tests.support.rawws.RawWebSocket` that speaks permessage-deflate
(RFC 7692) itself, so that tests see the handshake's answer and the compressed frames as sent:
masked frames, RSV1 on compressed ones, context kept both ways."""

from __future__ import annotations

import asyncio
import re
import zlib

from tests.support.rawws import OP_BINARY, OP_CLOSE, OP_TEXT, Frame, RawWebSocket, handshake
from tests.support.timing import scaled

#: What browsers offer.
BROWSER_OFFER = "permessage-deflate; client_max_window_bits"
RSV1 = 0x40
_TAIL = b"\x00\x00\xff\xff"


def accepted_extension(head: str) -> str | None:
    """The ``Sec-WebSocket-Extensions`` value of a handshake response head, if any."""
    found = re.search(r"^sec-websocket-extensions:\s*(.*?)\s*$", head, re.I | re.M)
    return found.group(1) if found else None


class DeflatePeer:
    def __init__(self, ws: RawWebSocket, extension: str | None) -> None:
        self.ws = ws
        #: The server's answer to the offer (None: no compression).
        self.extension = extension
        bits = re.search(r"server_max_window_bits=(\d+)", extension or "")
        #: The window the server announced; frames are inflated with no more than that.
        self.window_bits = int(bits.group(1)) if bits else 15
        self.no_context_takeover = "server_no_context_takeover" in (extension or "")
        self._compressor = zlib.compressobj(wbits=-15)
        #: Whether the last frame received had RSV1 (was compressed), and its payload's size
        #: on the wire.
        self.compressed = False
        self.wire_size = 0
        self._inflater = zlib.decompressobj(-self.window_bits)

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str = "/",
        offer: str | None = BROWSER_OFFER,
        subprotocol: str | None = None,
    ) -> DeflatePeer:
        reader, writer = await asyncio.open_connection(host, port)
        headers = {"Sec-WebSocket-Extensions": offer} if offer is not None else {}
        if subprotocol is not None:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        status, head = await handshake(reader, writer, host, port, path, headers or None)
        assert status == 101, head
        return cls(RawWebSocket(reader, writer), accepted_extension(head))

    @property
    def deflate(self) -> bool:
        return self.extension is not None

    def send_text(self, text: str) -> None:
        """A text message, compressed when the extension was accepted."""
        self.send(OP_TEXT, text.encode())

    def send_binary(self, payload: bytes) -> None:
        """A binary message, compressed when the extension was accepted."""
        self.send(OP_BINARY, payload)

    def send(self, opcode: int, payload: bytes) -> None:
        if not self.deflate:
            self.ws.send_frame(opcode, payload)
            return
        data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        self.ws.send_frame(RSV1 | opcode, data[: -len(_TAIL)])

    async def recv(self) -> Frame:
        """The next frame, inflated when compressed (a fresh inflater for each message when
        the server announced server_no_context_takeover)."""
        reader = self.ws.reader
        b0, b1 = await asyncio.wait_for(reader.readexactly(2), scaled(10))
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(n)
        self.compressed, self.wire_size = bool(b0 & RSV1), n
        if b0 & RSV1:
            assert self.deflate, "a compressed frame without the extension"
            if self.no_context_takeover:
                self._inflater = zlib.decompressobj(-self.window_bits)
            payload = self._inflater.decompress(payload + _TAIL)
        return Frame(b0 & 0x0F, payload, bool(b0 & 0x80))

    async def recv_text(self) -> str:
        frame = await self.recv()
        assert frame.opcode == OP_TEXT, frame
        return frame.payload.decode()

    async def until_closed(self, answer: bool = True) -> int | None:
        """Read up to the server's close frame (answered with its code unless ``answer`` is
        false) and the end of the stream; the close code."""
        while True:
            frame = await self.recv()
            if frame.opcode == OP_CLOSE:
                if answer:
                    self.ws.send_frame(OP_CLOSE, frame.payload[:2])
                await asyncio.wait_for(self.ws.eof(), scaled(10))
                return frame.close_code

    def drop(self) -> None:
        """End the TCP connection without a close frame (an RST)."""
        transport = self.ws.writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.abort()

    def close(self) -> None:
        self.ws.close()
