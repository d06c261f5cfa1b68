"""A WebSocket load generator lean enough not to be what a benchmark measures.

Each connection is an :class:`asyncio.Protocol` with a hand-written frame parser: no task, no
coroutine and no message object per received frame, only a callback that counts (and, on a
sample of connections, reads publish timestamps). Client frames use the all-zero masking key,
which RFC 6455 allows and which leaves the payload as it is, so sending costs one
concatenation. What a server speaks is a :class:`Dialect`; :class:`HubbubDialect` is the
Centrifugo JSON protocol; :mod:`hubbub.loadgen_protobuf` has its Protobuf one.
``bench/`` adds the baselines' dialects.

Scenarios (:func:`fanout`, :func:`many_channels`, :func:`echo`, :func:`connect_clients`)
measure deliveries or round trips per second and, when given the server's pid, the server's
CPU seconds and memory, read from ``/proc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast
from urllib.parse import urlsplit

TICKS: Final = os.sysconf("SC_CLK_TCK")
_STAMP: Final = re.compile(rb"T(\d+)\|")


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A final frame from a client (text unless ``opcode`` says otherwise: 2 is binary),
    masked with the zero key."""
    first = 0x80 | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def stamped(size: int) -> bytes:
    """A message body of ``size`` bytes that starts with the send time (ns)."""
    head = b"T%d|" % time.perf_counter_ns()
    return head + b"x" * max(0, size - len(head))


class Dialect:
    """How one kind of server is spoken to. Subclasses fill in the frames and markers."""

    name = "?"
    path = "/"
    #: Extra request headers of the WebSocket handshake, e.g. ``Sec-WebSocket-Protocol``.
    headers: Sequence[tuple[str, str]] = ()

    def check_handshake(self, response: bytes) -> str | None:
        """Why the 101 response head ``response`` will not do (None: it will)."""
        return None

    def replies(self, payload: bytes) -> int:
        """Replies to setup commands (hello, subscribe) that ``payload`` carries."""
        return 1 if payload == b"ok" else 0

    def hello(self) -> list[bytes]:
        """Frames sent right after the handshake (before any subscribe)."""
        return []

    def hello_replies(self) -> int:
        return 0

    def subscribe(self, channels: Sequence[str]) -> list[bytes]:
        """Frames that subscribe to ``channels`` (nothing for broadcast-to-all servers when
        ``channels`` is empty)."""
        return []

    def subscribe_replies(self, channels: Sequence[str]) -> int:
        return 0

    def publish(self, channel: str | None, bodies: Sequence[bytes]) -> bytes:
        """One write publishing ``bodies`` in order (to everyone when ``channel`` is None)."""
        raise NotImplementedError

    def echo(self, body: bytes) -> bytes:
        raise NotImplementedError

    def deliveries(self, payload: bytes) -> int:
        """Publications carried by one received frame."""
        return 1

    def control(self, client: Client, payload: bytes) -> bool:
        """Answer keepalives; True when ``payload`` was only that."""
        return False

    def inflate(self, payload: bytes) -> bytes:
        """A compressed (RSV1) message's payload inflated (:mod:`hubbub.loadgen_deflate`)."""
        raise ConnectionError("a compressed frame, but no permessage-deflate was offered")


class HubbubDialect(Dialect):
    """The Centrifugo JSON protocol, as hubbub speaks it."""

    name = "hubbub"
    path = "/connection/websocket"

    def replies(self, payload: bytes) -> int:
        return payload.count(b'"id"')

    def __init__(self, token: str = "") -> None:
        self._id = 1
        self._token = token

    def _next(self) -> int:
        self._id += 1
        return self._id

    def hello(self) -> list[bytes]:
        if self._token:
            return [
                client_frame(b'{"id":1,"connect":{"token":%s}}' % json.dumps(self._token).encode())
            ]
        return [client_frame(b'{"id":1,"connect":{}}')]

    def hello_replies(self) -> int:
        return 1

    def subscribe(self, channels: Sequence[str]) -> list[bytes]:
        if not channels:
            channels = ["bench"]
        lines = [b'{"id":%d,"subscribe":{"channel":"%s"}}' % (i + 2, c.encode()) for i, c in
                 enumerate(channels)]  # fmt: skip
        return [client_frame(b"\n".join(lines))]

    def subscribe_replies(self, channels: Sequence[str]) -> int:
        return max(1, len(channels))

    def publish(self, channel: str | None, bodies: Sequence[bytes]) -> bytes:
        target = (channel or "bench").encode()
        lines = [b'{"id":%d,"publish":{"channel":"%s","data":"%s"}}' % (self._next(), target, b)
                 for b in bodies]  # fmt: skip
        return client_frame(b"\n".join(lines))

    def echo(self, body: bytes) -> bytes:
        return client_frame(b'{"id":%d,"rpc":{"method":"echo","data":"%s"}}' % (self._next(), body))

    def deliveries(self, payload: bytes) -> int:
        return payload.count(b'"pub"')

    def control(self, client: Client, payload: bytes) -> bool:
        # Protocol pings are "{}" and may share a frame with pushes.
        if payload == b"{}" or payload.startswith(b"{}\n") or b"\n{}" in payload:
            client.send(client_frame(b"{}"))
            return payload == b"{}"
        return False


@dataclass
class Stats:
    """What the connections counted."""

    delivered: int = 0
    replies: int = 0
    latencies_ns: list[int] = field(default_factory=list)


class Client(asyncio.Protocol):
    """One WebSocket connection of the generator."""

    def __init__(self, request: bytes, dialect: Dialect, stats: Stats, sample: bool) -> None:
        self._request = request
        self.dialect = dialect
        self.stats = stats
        self.sample = sample
        self.transport: asyncio.Transport | None = None
        self._open = False
        self._buf = b""
        self.waiting = 0  # replies still expected for the current setup step
        self.waiter: asyncio.Future[None] | None = None
        self.on_reply: Callable[[Client], None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost during setup"))

    def send(self, frame: bytes) -> None:
        if self.transport is not None:
            self.transport.write(frame)

    def expect(self, replies: int) -> asyncio.Future[None]:
        """A future that completes once ``replies`` more setup replies have come."""
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.waiting = replies
        if replies <= 0:
            waiter.set_result(None)
        return waiter

    def data_received(self, data: bytes) -> None:
        if not self._open:
            data = self._buf + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buf = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_exception(ConnectionError(status.decode(errors="replace")))
                if self.transport is not None:
                    self.transport.close()
                return
            why = self.dialect.check_handshake(data[:end])
            if why is not None:
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_exception(ConnectionError(why))
                if self.transport is not None:
                    self.transport.close()
                return
            self._open = True
            self._buf = b""
            if self.waiter is not None and self.waiting == 0 and not self.waiter.done():
                self.waiter.set_result(None)
            data = data[end + 4 :]
            if not data:
                return
        buf = self._buf + data if self._buf else data
        pos, size = 0, len(buf)
        while size - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            payload = buf[pos + head : end]
            if opcode == 1 or opcode == 2:  # 0x40: RSV1, a compressed message
                self._frame(self.dialect.inflate(payload) if buf[pos] & 0x40 else payload)
            elif opcode == 9 and self.transport is not None:  # ping: pong with its payload
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
            pos = end
        self._buf = buf[pos:] if pos < size else b""

    def _frame(self, payload: bytes) -> None:
        dialect = self.dialect
        if dialect.control(self, payload):
            return
        if self.waiting > 0:
            self.waiting -= dialect.replies(payload)
            if self.waiting <= 0 and self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
            return
        if self.on_reply is not None:
            self.stats.replies += 1
            self.on_reply(self)
            return
        self.stats.delivered += dialect.deliveries(payload)
        if self.sample:
            now = time.perf_counter_ns()
            self.stats.latencies_ns.extend(now - int(t) for t in _STAMP.findall(payload))


def handshake_request(
    url: str, path: str, headers: Sequence[tuple[str, str]] = ()
) -> tuple[str, int, bytes]:
    """Host, port and the upgrade request for ``path``, with ``headers`` added."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: aHViYnViLWxvYWRnZW4tMQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()
    return host, port, request


async def open_client(url: str, dialect: Dialect, stats: Stats, *, sample: bool = False) -> Client:
    """Connect and finish the dialect's hello (connect command, Socket.IO open...)."""
    host, port, request = handshake_request(url, dialect.path, dialect.headers)
    loop = asyncio.get_running_loop()
    client = Client(request, dialect, stats, sample)
    client.waiter = opened = loop.create_future()  # completed by the 101 response
    await loop.create_connection(lambda: client, host, port)
    try:
        await asyncio.wait_for(opened, 30)
        hello = dialect.hello()
        done = client.expect(dialect.hello_replies())
        for frame in hello:
            client.send(frame)
        await asyncio.wait_for(done, 30)
    except BaseException:
        close_all([client])
        raise
    return client


async def subscribe(client: Client, channels: Sequence[str]) -> None:
    done = client.expect(client.dialect.subscribe_replies(channels))
    for frame in client.dialect.subscribe(channels):
        client.send(frame)
    await asyncio.wait_for(done, 30)


async def connect_clients(
    url: str,
    make_dialect: Callable[[], Dialect],
    stats: Stats,
    count: int,
    channels_of: Callable[[int], Sequence[str]],
    *,
    concurrency: int = 100,
    samples: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Client], float]:
    """``count`` subscribed clients, ``concurrency`` being set up at a time, ``samples`` of
    them reading publish timestamps; returns them and the rate (connections with their
    subscribe replied, per second)."""
    clients: list[Client] = []
    next_index = 0
    # Sampled connections are spread evenly: servers write to their connections in some
    # order, and the first ones connected are often the first written to.
    every = max(1, count // samples) if samples else count + 1
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            client = await open_client(url, make_dialect(), stats, sample=index % every == 0)
            clients.append(client)  # (closed with the others if anything fails)
            await subscribe(client, channels_of(index))
            if progress is not None:
                progress(len(clients))

    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the others
            for _ in range(min(concurrency, count)):
                group.create_task(worker())
    except BaseException as exc:
        close_all(clients)
        if isinstance(exc, BaseExceptionGroup):  # the first failure says what went wrong
            raise exc.exceptions[0] from None
        raise
    return clients, count / (time.perf_counter() - start)


def close_all(clients: Sequence[Client]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


# -- measuring the server --------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def quiesce(pid: int, *, idle: float = 0.05, limit: float = 30.0) -> None:
    """Wait until process ``pid`` uses less than ``idle`` of a core over half a second (it
    finished with the previous run: closing connections, draining buffers)."""
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < idle * 0.5:
            return


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Measure:
    """Counts over one timed window."""

    seconds: float
    count: int
    server_cpu: float | None
    own_cpu: float
    #: What was sent in the window (publications), where that differs from ``count``.
    sent: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def per_cpu(self) -> float | None:
        return self.count / self.server_cpu if self.server_cpu else None

    @property
    def own_load(self) -> float:
        """The generator's CPU share of one core during the window (1.0: saturated)."""
        return self.own_cpu / self.seconds


class Window:
    """Start/stop readings of time, server CPU and own CPU around a measurement."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.t0 = time.perf_counter()
        self.cpu0 = cpu_seconds(pid) if pid else None
        self.own0 = own_cpu_seconds()

    def done(self, count: int) -> Measure:
        seconds = time.perf_counter() - self.t0
        server = cpu_seconds(self.pid) - self.cpu0 if self.pid and self.cpu0 is not None else None
        return Measure(seconds, count, server, own_cpu_seconds() - self.own0)


# -- scenarios -------------------------------------------------------------------------


async def flood(
    publisher: Client,
    stats: Stats,
    per_publication: int,
    seconds: float,
    channels: Sequence[str | None],
    *,
    batch: int = 1,
    window: int = 4,
    size: int = 100,
    pid: int | None = None,
    tick: Callable[[float], None] | None = None,
) -> Measure:
    """Publish as fast as the subscribers receive: at most ``window`` publications
    outstanding (sent but not yet received by all ``per_publication`` subscribers), ``batch``
    of them per write, round-robin over ``channels``. Counts deliveries for ``seconds``."""
    dialect = publisher.dialect
    body = b"x" * size
    sent = turn = 0
    base = stats.delivered
    measure = Window(pid)
    deadline = measure.t0 + seconds
    while (now := time.perf_counter()) < deadline:
        outstanding = sent - (stats.delivered - base) / per_publication
        if outstanding + batch <= window:
            channel = channels[turn % len(channels)]
            turn += 1
            publisher.send(dialect.publish(channel, [body] * batch))
            sent += batch
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(0.002)  # (uvloop rounds shorter sleeps to none: a busy loop)
        if tick is not None:
            tick(now - measure.t0)
    result = measure.done(stats.delivered - base)
    result.sent = sent
    return result


async def drain(stats: Stats, expected: int, limit: float = 60.0) -> None:
    """Wait until ``stats.delivered`` reaches ``expected`` (the tail of a run), or until
    deliveries stop for 2 seconds, or ``limit``."""
    end = time.perf_counter() + limit
    last, still = stats.delivered, time.perf_counter()
    while stats.delivered < expected and (now := time.perf_counter()) < end:
        if stats.delivered != last:
            last, still = stats.delivered, now
        elif now - still > 2.0:
            return
        await asyncio.sleep(0.05)


async def paced(
    publisher: Client,
    stats: Stats,
    rate: float,
    seconds: float,
    *,
    size: int = 100,
    channel: str | None = None,
    per_publication: int = 1,
) -> tuple[float, float, int]:
    """Publish ``rate`` stamped publications per second for ``seconds``; return the p50 and
    p99 publish-to-receive latency in ms seen by the sampled connections, and the sample
    count. ``per_publication``: deliveries each publication makes (to wait for the last)."""
    stats.latencies_ns.clear()
    base = stats.delivered
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while True:
        due = start + n * interval
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        publisher.send(publisher.dialect.publish(channel, [stamped(size)]))
        n += 1
    await drain(stats, base + n * per_publication, limit=30.0)  # a slow server's tail
    samples = sorted(stats.latencies_ns)
    if not samples:
        return float("nan"), float("nan"), 0
    p50 = statistics.median(samples) / 1e6
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1e6
    return p50, p99, len(samples)


async def echo(
    clients: Sequence[Client], seconds: float, *, size: int = 100, pid: int | None = None
) -> Measure:
    """Each client in a closed loop: send, wait for the reply, send again."""
    body = b"E" + b"x" * (size - 1)
    stats = clients[0].stats
    running = True

    def again(client: Client) -> None:
        if running:
            client.send(client.dialect.echo(body))

    base = stats.replies
    measure = Window(pid)
    for client in clients:
        client.on_reply = again
        again(client)
    await asyncio.sleep(seconds)
    result = measure.done(stats.replies - base)
    running = False
    await asyncio.sleep(0.2)
    for client in clients:
        client.on_reply = None
    return result


def parser_ceiling(
    dialect: Dialect, frame_payload: bytes, frames: int = 200_000, *, binary: bool = False
) -> float:
    """Frames per second (of this process's CPU) the generator parses and counts, one frame
    per read, fed from memory (a binary frame when ``binary``): an upper bound of what it can
    receive (the event loop and the socket reads come on top)."""

    class Sink:
        def write(self, data: bytes) -> None:
            pass

    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        client = Client(b"", dialect, Stats(), sample=False)
        client._open = True
        client.transport = Sink()  # type: ignore[assignment]
        first = 0x82 if binary else 0x81
        size = len(frame_payload)
        head = bytes((first, size)) if size < 126 else bytes((first, 126)) + size.to_bytes(2, "big")
        frame = head + frame_payload  # one frame per read, as fan-out delivers them
        receive = client.data_received
        start = own_cpu_seconds()
        for _ in range(frames):
            receive(frame)
        used = own_cpu_seconds() - start
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return frames / max(used, 1e-9)
