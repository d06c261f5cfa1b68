"""Fan-out deliveries per second with the Redis engine: 1 process versus ``--workers 2``.

    python bench/workers_bench.py [--subscribers 2000] [--seconds 4]

Starts its own redis-server, then for each setup a ``hubbub serve --engine redis://...``,
connects ``--subscribers`` channel-protocol clients to one channel (SO_REUSEPORT spreads them
over the workers), publishes 100-byte messages from one client (up to 8 in flight) for
``--seconds``, and counts what the subscribers received (hubbub.loadgen, one process). It
also prints the CPU seconds of all server processes, so deliveries per server CPU-second
can be compared. On this 2-core machine the generator, Redis and the workers share two
cores: a second worker cannot add a core here, so the figure to watch is that the two
workers deliver everything, to every subscriber, at the same cost per delivery.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.redis import RedisServer  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

from hubbub.loadgen import (  # noqa: E402
    HubbubDialect,
    Stats,
    close_all,
    connect_clients,
    drain,
    flood,
    open_client,
)


def server_cpu(pid: int) -> float:
    """CPU seconds of the server and its workers."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


async def run(url: str, pid: int, subscribers: int, seconds: float) -> tuple[float, float, float]:
    """(deliveries/s, publications/s, deliveries per server CPU-second)."""
    stats = Stats()
    subs, _ = await connect_clients(url, HubbubDialect, stats, subscribers, lambda i: ["bench"])
    publisher = await open_client(url, HubbubDialect(), Stats())
    try:
        cpu0 = server_cpu(pid)
        measure = await flood(publisher, stats, subscribers, seconds, ["bench"], window=8)
        cpu = server_cpu(pid) - cpu0
        await drain(stats, stats.delivered + 1, limit=1.0)
    finally:
        close_all([publisher, *subs])
    return measure.rate, measure.rate / subscribers, measure.count / max(cpu, 1e-9)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
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
                rate, pubs, per_cpu = await run(
                    server.ws, server.proc.pid, args.subscribers, args.seconds
                )
            finally:
                server.terminate()
                server.kill()
            results[workers] = rate
            print(
                f"workers={workers}  deliveries/s={rate:>9.0f}  publications/s={pubs:>7.0f}  "
                f"per server CPU-s={per_cpu:>9.0f}  subscribers={args.subscribers}"
            )
        print(f"ratio workers=2 / workers=1: {results[2] / results[1]:.2f}")
    finally:
        redis.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main()))
