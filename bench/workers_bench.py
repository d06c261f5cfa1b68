"""Fan-out deliveries per second with the Redis engine: 1 process versus ``--workers 2``.

    python bench/workers_bench.py [--subscribers 500] [--seconds 4]

Starts its own redis-server, then for each setup a ``hubbub serve --engine redis://...``,
connects ``--subscribers`` channel-protocol clients to one channel, publishes 100-byte messages
from one client (up to 64 in flight) for ``--seconds``, and counts what the subscribers
received. The load generator is one Python process on the same 2 cores, so it is printed too:
its ceiling caps both figures. Prints one line per setup and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

PAYLOAD = "x" * 100


async def run(url: str, subscribers: int, seconds: float) -> tuple[float, float]:
    received = 0
    connector = aiohttp.TCPConnector(limit=0)  # the default pool stops at 100 connections
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = []
        for _ in range(subscribers):
            ws = await http.ws_connect(url, max_msg_size=0)
            await ws.send_str('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"bench"}}')
            sockets.append(ws)
        for ws in sockets:  # both replies arrived
            got = 0
            while got < 2:
                msg = await ws.receive()
                got += sum(1 for line in msg.data.split("\n") if '"id"' in line)

        async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal received
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                received += msg.data.count('"pub"')

        readers = [asyncio.create_task(reader(ws)) for ws in sockets]
        pub = await http.ws_connect(url)
        await pub.send_str('{"id":1,"connect":{}}')
        await pub.receive()
        sent = 0
        window = asyncio.Semaphore(64)

        async def replies_reader() -> None:
            async for msg in pub:
                for _ in range(msg.data.count('"publish"')):
                    window.release()

        rr = asyncio.create_task(replies_reader())
        start = time.perf_counter()
        base = received
        cid = 10
        while time.perf_counter() - start < seconds:
            await window.acquire()
            cid += 1
            await pub.send_str(
                json.dumps({"id": cid, "publish": {"channel": "bench", "data": PAYLOAD}})
            )
            sent += 1
        await asyncio.sleep(1.0)  # let the tail arrive
        elapsed = time.perf_counter() - start
        delivered = received - base
        for task in [*readers, rr]:
            task.cancel()
        return delivered / elapsed, sent / elapsed


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    import shutil
    import tempfile

    redis = RedisServer(shutil.which("redis-server") or "redis-server")
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-bench-"))
    config = tmp / "bench.toml"
    config.write_text("client_command_rate = 1e9\nclient_command_burst = 1000000\n"
                      "write_buffer_limit = 67108864\ndemos = false\n[channel]\n")  # fmt: skip
    results = {}
    try:
        for workers in (1, 2):
            redis.flush()
            server = ServerProcess(
                ["--engine", redis.url, "--workers", str(workers), "--config", str(config),
                 "--log-level", "warning"],
                None, tmp / f"server-{workers}.log",
            )  # fmt: skip
            try:
                rate, pubs = await run(
                    server.ws + "/connection/websocket", args.subscribers, args.seconds
                )
            finally:
                server.terminate()
                server.kill()
            results[workers] = rate
            print(
                f"workers={workers}  deliveries/s={rate:>9.0f}  "
                f"publications/s={pubs:>7.0f}  subscribers={args.subscribers}"
            )
        print(f"ratio workers=2 / workers=1: {results[2] / results[1]:.2f}")
    finally:
        redis.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
