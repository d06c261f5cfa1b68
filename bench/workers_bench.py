"""Many cores with the Redis engine: ``--workers N`` processes, what each costs, and what
Redis costs per publication and per delivery node.

    python bench/workers_bench.py [--workers 1,2] [--subscribers 2000] [--seconds 4]
    python bench/workers_bench.py --workers 1,cores     # make bench-scale: os.cpu_count()

Starts its own redis-server (a throw-away one on a free port, never the system's), then for
each worker count a ``hubbub serve --engine redis://... --workers N``, connects
``--subscribers`` clients (SO_REUSEPORT spreads them over the workers), each subscribed to
one channel, and publishes 100-byte messages from one client (up to 8 in flight) for
``--seconds``, first to a channel without history (``bench``: PUBLISH only), then to one with
history and recovery (``hist:bench``: the Lua script with XADD and PUBLISH). Every worker
has subscribers, so each is a delivery node of every publication. Then the shape of
Centrifugo's million-connection run: every subscriber is also in one group channel of 10
(no history), and the publisher goes round the groups with as many publications in flight
as there are groups, so that a connection seldom has two publications to coalesce; a group's
publication reaches only the workers that hold one of its 10 members.

Printed per run: deliveries/s, publications/s, deliveries per worker CPU-second (all workers'
CPU; the supervisor's too), each worker's share of that CPU, server RSS per connection (after
connecting, before publishing), Redis CPU per publication (less what it spends idle with the
nodes connected, measured for a second before), and the generator's load (one
process: above ~0.9 the figure says more about it than about the servers). From the runs
with 1 and N workers, Redis CPU per publication is split into a fixed part and a part per
delivery node: ``redis(W) = fixed + per_node x W``.

On a 2-core machine the generator, Redis and the workers share two cores: a second worker
cannot add a core, so the figures to read are the costs per delivery, per connection and
per publication, not the throughput. ``make bench-scale`` runs the same scenario with as
many workers as the machine has cores, for a bigger machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
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
    own_cpu_seconds,
)

CONFIG = """
client_command_rate = 1e9
client_command_burst = 1000000
write_buffer_limit = 67108864
demos = false

[channel]
history_size = 0

[[namespaces]]
name = "hist"
history_size = 1000
history_ttl = 86400
force_recovery = true
"""
CHANNELS = {"bench": "no history", "hist:bench": "history + recovery"}
GROUP = 10  # subscribers per group channel (Centrifugo's million-connection run: 10)


@dataclass
class Run:
    workers: int
    channel: str
    deliveries: float  # per second
    publications: float  # per second
    per_cpu: float  # deliveries per worker CPU-second
    shares: list[float]  # each worker's part of the workers' CPU
    rss_per_conn: float  # bytes
    redis_per_pub: float  # Redis CPU seconds per publication
    gen_load: float


def precise_cpu(pid: int) -> float:
    """CPU seconds of every thread of ``pid``, to the nanosecond (/proc schedstat; the
    10 ms ticks of /proc stat are too coarse for Redis's few ms per second)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def workers_of(pid: int) -> list[psutil.Process]:
    """The processes serving: the workers (the supervisor's children), or the server."""
    proc = psutil.Process(pid)
    return proc.children(recursive=True) or [proc]


def cpu_of(procs: list[psutil.Process]) -> list[float]:
    return [precise_cpu(p.pid) for p in procs]


async def run(
    url: str, pid: int, redis_pid: int, workers: int, subscribers: int, seconds: float
) -> list[Run]:
    procs = workers_of(pid)
    everyone = [psutil.Process(pid), *procs] if procs[0].pid != pid else procs
    rss0 = sum(p.memory_info().rss for p in procs)
    stats = Stats()
    subs, _ = await connect_clients(
        url, HubbubDialect, stats, subscribers, lambda i: [*CHANNELS, f"g{i // GROUP}"]
    )
    groups = [f"g{k}" for k in range((subscribers + GROUP - 1) // GROUP)]
    publisher = await open_client(url, HubbubDialect(), Stats())
    out = []
    try:
        await asyncio.sleep(1.0)
        idle0, t0 = precise_cpu(redis_pid), time.perf_counter()
        await asyncio.sleep(1.0)  # Redis's own background work and the nodes' refreshes
        idle = (precise_cpu(redis_pid) - idle0) / (time.perf_counter() - t0)
        rss = (sum(p.memory_info().rss for p in procs) - rss0) / subscribers
        for channel in [*CHANNELS, "groups"]:
            cpu0, mine0 = cpu_of(everyone), cpu_of(procs)
            redis0, own0 = precise_cpu(redis_pid), own_cpu_seconds()
            if channel == "groups":
                measure = await flood(publisher, stats, GROUP, seconds, groups, window=len(groups))
            else:
                measure = await flood(publisher, stats, subscribers, seconds, [channel], window=8)
            mine = [b - a for a, b in zip(mine0, cpu_of(procs), strict=True)]
            cpu = sum(cpu_of(everyone)) - sum(cpu0)
            redis = precise_cpu(redis_pid) - redis0 - idle * measure.seconds
            own = own_cpu_seconds() - own0
            await drain(stats, stats.delivered + 1, limit=1.0)
            total = max(sum(mine), 1e-9)
            out.append(Run(
                workers, channel, measure.rate, measure.sent / measure.seconds,
                measure.count / max(cpu, 1e-9), [m / total for m in mine], rss,
                redis / max(measure.sent, 1), own / measure.seconds,
            ))  # fmt: skip
    finally:
        close_all([publisher, *subs])
    return out


def label(channel: str) -> str:
    return CHANNELS.get(channel, f"groups of {GROUP}")


def nodes(workers: int) -> float:
    """Workers a group's publication reaches when its members are spread at random."""
    return workers * (1 - (1 - 1 / workers) ** GROUP)


def report(runs: list[Run], subscribers: int) -> None:
    print(f"\n{subscribers:,} subscribers, each in both channels and a group of {GROUP}; one "
          "publisher, 8 in flight (groups: one per group)")  # fmt: skip
    print(f"  {'workers':>7}  {'channel':<20} {'deliveries/s':>12} {'pubs/s':>7} "
          f"{'per worker CPU-s':>16} {'KiB/conn':>8} {'Redis us/pub':>12} {'gen load':>8}  "
          "CPU share per worker")  # fmt: skip
    for r in runs:
        shares = " ".join(f"{s:.2f}" for s in r.shares)
        print(f"  {r.workers:>7}  {label(r.channel):<20} {r.deliveries:>12,.0f} "
              f"{r.publications:>7,.0f} {r.per_cpu:>16,.0f} {r.rss_per_conn / 1024:>8.1f} "
              f"{r.redis_per_pub * 1e6:>12.1f} {r.gen_load:>8.2f}  {shares}")  # fmt: skip
    counts = sorted({r.workers for r in runs})
    if len(counts) < 2:
        return
    low, high = counts[0], counts[-1]
    print(f"\nRedis CPU per publication = fixed + per delivery node x nodes "
          f"(from {low} and {high} workers):")  # fmt: skip
    for channel in [*CHANNELS, "groups"]:
        what = label(channel)
        at = {r.workers: r for r in runs if r.channel == channel}
        if low not in at or high not in at:
            continue
        reach = nodes if channel == "groups" else float
        per_node = (at[high].redis_per_pub - at[low].redis_per_pub) / (reach(high) - reach(low))
        fixed = at[low].redis_per_pub - per_node * reach(low)
        print(f"  {what}: fixed {fixed * 1e6:.1f} us + {per_node * 1e6:.1f} us per node; "
              f"deliveries/s {high} / {low} workers: "
              f"{at[high].deliveries / at[low].deliveries:.2f}")  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2",
                        help="Worker counts, comma-separated ('cores': cpu_count).")  # fmt: skip
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = sorted({cores if w == "cores" else int(w) for w in args.workers.split(",")})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = os.getloadavg()
    print(f"machine: {cores} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"workers {', '.join(map(str, counts))}")  # fmt: skip
    redis = RedisServer(shutil.which("redis-server") or "redis-server")
    assert redis.proc is not None
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-bench-"))
    config = tmp / "bench.toml"
    config.write_text(CONFIG)
    runs: list[Run] = []
    try:
        for workers in counts:
            redis.flush()
            server = ServerProcess(
                ["--engine", redis.url, "--workers", str(workers), "--config", str(config),
                 "--log-level", "warning"],
                None, tmp / f"server-{workers}.log",
            )  # fmt: skip
            try:
                runs += await run(server.ws, server.proc.pid, redis.proc.pid, workers,
                                  args.subscribers, args.seconds)  # fmt: skip
            finally:
                server.terminate()
                server.kill()
            print(f"  {workers} workers done", file=sys.stderr)
        report(runs, args.subscribers)
    finally:
        redis.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main()))
