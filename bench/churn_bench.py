"""Server memory under connection churn and per idle connection, with and without
permessage-deflate (issue 12, defect 4).

    python bench/churn_bench.py [--src PATH ...] [--cycles 5000] [--drops 2000] [--idle 1000]

For each source tree (``--src``, repeatable; default: this checkout's ``src``) a ``hubbub
serve`` process (production GC thresholds, uvloop when installed) is driven from here over
loopback, a fresh one for each figure, and its RSS read from /proc once it holds no
connection and its CPU is idle:

1. churn: ``--cycles`` connections on /connection/websocket by a client offering
   permessage-deflate as browsers do and compressing what it sends: connect, subscribe, 40
   ping commands, close frame; in batches of 250 (opened 50 at a time), after 500 of warm-up;
2. drops: the same with ``--drops`` plain connections that end with a TCP reset (no close
   frame) instead;
3. idle:  ``--idle`` connected and subscribed idle connections, plain and
   deflate; RSS growth per connection (after 200 warm-up cycles of the same kind).

Give the trees to compare in one run, e.g. the unfixed one from ``git archive``. Bounded: a
few thousand connections on 127.0.0.1, well under two minutes per tree on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hubbub.loadgen import quiesce, rss_bytes  # noqa: E402

CONFIG = """
demos = false
history = "memory"
client_command_rate = 1000000000
client_command_burst = 1000000000
[channel]
presence = false
join_leave = false
"""
OFFER = "permessage-deflate; client_max_window_bits"
MiB = 1024 * 1024
CONCURRENCY = 50


class Server:
    """``hubbub serve`` from one source tree, on a free port."""

    def __init__(self, src: Path, workdir: Path) -> None:
        config = workdir / "hubbub.toml"
        config.write_text(CONFIG)
        env = dict(os.environ, PYTHONPATH=str(src))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hubbub", "serve", "--port", "0", "--config", str(config)],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    async def rss(self) -> int:
        await quiesce(self.pid)
        return rss_bytes(self.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Conn:
    """A minimal client end: masked frames, optionally compressed (context kept)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.compressor: zlib._Compress | None = None
        self.inflater = zlib.decompressobj(-15)  # any server window fits in 15 bits

    @classmethod
    async def open(cls, port: int, path: str, deflate: bool) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        extension = f"Sec-WebSocket-Extensions: {OFFER}\r\n" if deflate else ""
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extension}\r\n".encode()
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        if not head.startswith("HTTP/1.1 101"):
            raise ConnectionError(head.split("\r\n", 1)[0])
        conn = cls(reader, writer)
        if "permessage-deflate" in head:
            conn.compressor = zlib.compressobj(wbits=-15)
        return conn

    def send(self, text: str, opcode: int = 1) -> None:
        payload, first = text.encode(), 0x80 | opcode
        if self.compressor is not None and opcode < 8:
            data = self.compressor.compress(payload) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
            payload, first = data[:-4], first | 0x40
        size = len(payload)
        if size < 126:
            head = bytes((first, 0x80 | size))
        else:
            head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
        self.writer.write(head + b"\0\0\0\0" + payload)

    async def frame(self) -> int:
        """Read one frame; its opcode."""
        return (await self.message())[0]

    async def message(self) -> tuple[int, bytes]:
        """Read one frame: its opcode and payload (inflated)."""
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n >= 126:
            n = int.from_bytes(await self.reader.readexactly(2 if n == 126 else 8), "big")
        payload = await self.reader.readexactly(n)
        if b0 & 0x40:
            payload = self.inflater.decompress(payload + b"\0\0\xff\xff")
        return b0 & 0x0F, payload

    async def close(self) -> None:
        self.writer.write(b"\x88\x82\0\0\0\0\x03\xe8")  # close 1000, masked with zeros
        while await self.frame() != 8:
            pass
        await self.reader.read()  # the server's FIN
        self.writer.close()

    def drop(self) -> None:
        self.writer.transport.abort()


COMMANDS = '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"bench"}}'
#: Commands each connection of a batch sends (and gets replies to) before it ends, so that its
#: objects live through the server's young GC collections, as real connections do.
PINGS = 40
BATCH = 250


async def channel_client(port: int, deflate: bool) -> Conn:
    conn = await Conn.open(port, "/connection/websocket", deflate)
    conn.send(COMMANDS)
    await conn.frame()  # the two replies, in one frame (one loop turn)
    return conn


async def busy(conn: Conn) -> None:
    conn.send("\n".join(f'{{"id":{n},"ping":{{}}}}' for n in range(3, 3 + PINGS)))
    replies = 0
    while replies < PINGS:
        _, payload = await conn.message()
        replies += payload.count(b'"id"')


async def cycles(port: int, n: int, deflate: bool, drop: bool) -> None:
    """``n`` connections in batches of :data:`BATCH`: connect, subscribe, :data:`PINGS`
    commands each, then a close frame (or a TCP reset when ``drop``)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> Conn:
        async with gate:
            return await channel_client(port, deflate)

    for start in range(0, n, BATCH):
        batch = await asyncio.gather(*(one() for _ in range(min(BATCH, n - start))))
        await asyncio.gather(*(busy(conn) for conn in batch))
        for conn in batch:
            if drop:
                conn.drop()
        if not drop:
            await asyncio.gather(*(conn.close() for conn in batch))


async def connections(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = (await reader.read()).split(b"\r\n\r\n", 1)[1]
    writer.close()
    return int(json.loads(body)["connections"])


async def settled(server: Server) -> int:
    """RSS once the server holds no connection (waits at most a minute) and its CPU is idle."""
    for _ in range(600):
        if not await connections(server.port):
            break
        await asyncio.sleep(0.1)
    return await server.rss()


@dataclass
class Result:
    churn: tuple[int, int] = (0, 0)
    drops: tuple[int, int] = (0, 0)
    idle_plain: float = 0.0
    idle_deflate: float = 0.0


async def rss_growth(src: Path, n: int, deflate: bool, drop: bool) -> tuple[int, int]:
    """RSS of a fresh server after 500 :func:`cycles` of warm-up and after ``n`` more."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(src, Path(tmp))
        try:
            await cycles(server.port, 500, deflate, drop)
            before = await settled(server)
            await cycles(server.port, n, deflate, drop)
            return before, await settled(server)
        finally:
            server.stop()


async def idle_memory(src: Path, n: int, deflate: bool) -> float:
    """Server RSS growth per subscribed idle connection, in bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(src, Path(tmp))
        try:
            await cycles(server.port, 200, deflate, drop=False)
            before = await settled(server)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one() -> Conn:
                async with gate:
                    return await channel_client(server.port, deflate)

            idle = await asyncio.gather(*(one() for _ in range(n)))
            await asyncio.sleep(1.0)
            grown = (await server.rss() - before) / n
            for conn in idle:
                conn.drop()
            return grown
        finally:
            server.stop()


async def measure(src: Path, args: argparse.Namespace) -> Result:
    result = Result()
    result.churn = await rss_growth(src, args.cycles, deflate=True, drop=False)
    result.drops = await rss_growth(src, args.drops, deflate=False, drop=True)
    result.idle_plain = await idle_memory(src, args.idle, deflate=False)
    result.idle_deflate = await idle_memory(src, args.idle, deflate=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, action="append", help="a tree's src directory")
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--drops", type=int, default=2000)
    parser.add_argument("--idle", type=int, default=1000)
    args = parser.parse_args()
    trees = args.src or [ROOT / "src"]
    cycles, drops = f"({args.cycles} cycles)", f"({args.drops})"
    print(f"{'tree':40} {'deflate churn MiB':>18} {'TCP drops MiB':>16} {'idle KiB/conn':>20}")
    print(f"{'':40} {cycles:>18} {drops:>16} {'plain / deflate':>20}")
    for src in trees:
        r = asyncio.run(measure(src.resolve(), args))
        churn = f"{r.churn[0] / MiB:.0f} -> {r.churn[1] / MiB:.0f}"
        drops = f"{r.drops[0] / MiB:.0f} -> {r.drops[1] / MiB:.0f}"
        idle = f"{r.idle_plain / 1024:.1f} / {r.idle_deflate / 1024:.1f}"
        print(f"{str(src)[-40:]:40} {churn:>18} {drops:>16} {idle:>20}", flush=True)


if __name__ == "__main__":
    main()
