"""HTTP streaming clients of the load generator: lean enough not to be what a benchmark
measures, strict enough to fail a stream whose framing is wrong.

Each connection is an :class:`asyncio.Protocol` (:class:`StreamClient`): the response head
is checked (200, ``Transfer-Encoding: chunked``), the chunked body decoded strictly
(:class:`Dechunker`: a malformed chunk fails the connection), cut into messages at the
transport's separator (SSE events, lines), and the publications among them counted; no task,
coroutine or message object per message. What a transport is, to these clients, is a
:class:`Stream`: method, path, where the connect request goes, the separator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import quote, urlsplit

from hubbub.loadgen import Client, Stats, own_cpu_seconds


@dataclass(frozen=True)
class Stream:
    """An HTTP streaming transport: ``method`` on ``path``; the connect request (the JSON of
    ``connect(token)``) goes in ``param`` of the query, or else in the body; the body is cut
    into messages at ``separator``."""

    path: str
    method: str
    connect: Callable[[str], dict[str, Any]]
    separator: bytes
    param: str | None = None

    def request(self, host: str, port: int, token: str) -> bytes:
        text = json.dumps(self.connect(token), separators=(",", ":"))
        head = f"{self.method} {self.path}"
        body = b""
        headers = ""
        if self.param is not None:
            head += f"?{self.param}={quote(text)}"
        else:
            body = text.encode()
            headers = "Content-Type: application/json\r\n"
        return (
            f"{head} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


class BadStream(Exception):
    """The server's response broke HTTP/1.1 framing (or was not the 200 stream expected)."""


_HEX: Final = b"0123456789abcdefABCDEF"


class Dechunker:
    """Decodes a chunked HTTP/1.1 body (RFC 9112 §7.1) strictly: hex sizes without
    extensions, CRLF after each chunk's data, the last chunk and an empty trailer. Raises
    :class:`BadStream` at the first byte that breaks it."""

    __slots__ = ("_crlf", "_data", "_raw", "done")

    def __init__(self) -> None:
        self._raw = b""  # an incomplete size line
        self._data = 0  # data bytes of the current chunk still to come
        self._crlf = 0  # bytes of the CRLF after them still to come
        self.done = False  # the last chunk and its CRLF came

    def feed(self, data: bytes) -> list[bytes]:
        """The body bytes ``data`` carries, in pieces."""
        buf = self._raw + data if self._raw else data
        self._raw = b""
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while pos < size:
            if self._data:
                take = min(self._data, size - pos)
                out.append(buf[pos : pos + take] if take < size else buf)
                pos += take
                self._data -= take
                if not self._data:
                    self._crlf = 2
                continue
            if self._crlf:
                expected = b"\r\n"[2 - self._crlf :]
                take = min(len(expected), size - pos)
                if buf[pos : pos + take] != expected[:take]:
                    raise BadStream(f"no CRLF after a chunk: {buf[pos : pos + 8]!r}")
                pos += take
                self._crlf -= take
                continue
            if self.done:
                raise BadStream(f"bytes after the last chunk: {buf[pos : pos + 8]!r}")
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if size - pos > 16:
                    raise BadStream(f"chunk size line too long: {buf[pos : pos + 16]!r}")
                self._raw = buf[pos:]
                break
            line = buf[pos:eol]
            if not line or line.strip(_HEX) or len(line) > 15:
                raise BadStream(f"bad chunk size line: {line!r}")
            pos = eol + 2
            length = int(line, 16)
            if length:
                self._data = length
            else:  # the last chunk: an empty trailer section follows
                self.done = True
                self._crlf = 2
        return out


class StreamClient(asyncio.Protocol):
    """One HTTP streaming connection of the generator: counts the publications in the
    messages of its body; ``ready`` completes at the first message (the connect push or
    reply), or fails when the response is not a 200 chunked stream."""

    def __init__(self, request: bytes, separator: bytes, stats: Stats) -> None:
        self._request = request
        self._separator = separator
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._body: Dechunker | None = None
        self._rest = b""  # an incomplete message
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError("connection lost before the first message"))

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            body = self._body
            if body is None:
                data = self._head + data
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    self._head = data
                    return
                self._head = b""
                self._check_head(data[:end])
                body = self._body = Dechunker()
                data = data[end + 4 :]
            pieces = body.feed(data)
        except BadStream as exc:
            self._fail(exc)
            return
        for piece in pieces:
            self._message_bytes(piece)

    def _check_head(self, head: bytes) -> None:
        status = head[: head.find(b"\r\n")]
        if not status.startswith(b"HTTP/1.1 200 "):
            raise BadStream(status.decode(errors="replace"))
        if b"\r\ntransfer-encoding: chunked" not in head.lower():
            raise BadStream("the stream is not chunked")

    def _message_bytes(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        cut = buf.rfind(self._separator)
        if cut < 0:
            self._rest = buf
            return
        end = cut + len(self._separator)
        self._rest = buf[end:]
        complete = buf if end == len(buf) else buf[:end]
        if not self.ready.done():
            if b'"connect"' not in complete:  # (the uni_sse preamble, an empty line)
                return
            self.ready.set_result(None)
        self.stats.delivered += complete.count(b'"pub"')


def http_parts(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def open_stream(url: str, stream: Stream, token: str, stats: Stats) -> StreamClient:
    host, port = http_parts(url)
    client = StreamClient(stream.request(host, port, token), stream.separator, stats)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: client, host, port)
    try:
        await asyncio.wait_for(client.ready, 30)
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    return client


async def connect_streams(
    url: str, stream: Stream, stats: Stats, count: int, tokens: Sequence[str]
) -> tuple[list[StreamClient], float]:
    """``count`` connected streams, 100 being set up at a time; and connections per second."""
    clients: list[StreamClient] = []
    next_index = 0
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            clients.append(await open_stream(url, stream, tokens[index % len(tokens)], stats))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(100, count)):
                group.create_task(worker())
    except BaseException as exc:
        abort_all(clients)
        if isinstance(exc, BaseExceptionGroup):  # the first failure says what went wrong
            raise exc.exceptions[0] from None
        raise
    return clients, count / (time.perf_counter() - start)


def abort_all(clients: Sequence[StreamClient | Client]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


def stream_ceiling(separator: bytes, frames: int = 100_000) -> float:
    """Messages per CPU-second the generator decodes and counts (one chunk per read, from
    memory): an upper bound of what it receives over an HTTP stream."""

    class Sink:
        def write(self, data: bytes) -> None:
            pass

    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        client = StreamClient(b"", separator, Stats())
        client.transport = Sink()  # type: ignore[assignment]
        client.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        connect = b'data: {"connect":{}}' + separator
        client.data_received(b"%x\r\n%s\r\n" % (len(connect), connect))
        event = b'data: {"channel":"bench","pub":{"data":"' + b"x" * 100 + b'"}}' + separator
        chunk = b"%x\r\n%s\r\n" % (len(event), event)
        receive = client.data_received
        start = own_cpu_seconds()
        for _ in range(frames):
            receive(chunk)
        used = own_cpu_seconds() - start
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return frames / max(used, 1e-9)
