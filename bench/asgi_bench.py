"""What the ASGI path costs: ``hub.asgi()`` under uvicorn against ``hubbub serve``, same
machine, same run, same load.

    python bench/asgi_bench.py [--subscribers 500] [--seconds 3] [--rounds 2]

For each edge (the memory engine, no history, one process): ``--subscribers`` channel-protocol
clients connect and subscribe to one channel (connect+subscribe per second), then one client
publishes 100-byte messages (up to 8 in flight) for ``--seconds`` and the subscribers'
deliveries are counted (deliveries per second, and per server CPU-second). The edges
alternate for ``--rounds`` rounds and the best of each is kept; the last lines print the
ratios ASGI / hubbub. The load generator (hubbub.loadgen) shares the machine's cores with
the server, so the absolute figures are this machine's; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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

EDGES = {
    "hubbub": None,
    "asgi": [sys.executable, "-m", "tests.support.asgi_serve"],
}


def server_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run(url: str, pid: int, subscribers: int, seconds: float) -> tuple[float, float, float]:
    """(connect+subscribe/s, deliveries/s, deliveries per server CPU-second)."""
    stats = Stats()
    subs, connect_rate = await connect_clients(
        url, HubbubDialect, stats, subscribers, lambda i: ["bench"]
    )
    publisher = await open_client(url, HubbubDialect(), Stats())
    try:
        cpu0 = server_cpu(pid)
        measure = await flood(publisher, stats, subscribers, seconds, ["bench"], window=8)
        cpu = server_cpu(pid) - cpu0
        await drain(stats, stats.delivered + 1, limit=1.0)
    finally:
        close_all([publisher, *subs])
    return connect_rate, measure.rate, measure.count / max(cpu, 1e-9)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-asgi-bench-"))
    config = tmp / "bench.toml"
    config.write_text(
        "client_command_rate = 1e9\nclient_command_burst = 1000000\n"
        'write_buffer_limit = 67108864\ndemos = false\nhistory = "memory"\n'
    )
    best: dict[str, tuple[float, float, float]] = {}
    try:
        for round_ in range(args.rounds):
            for edge, command in EDGES.items():
                log = tmp / f"{edge}-{round_}.log"
                args_ = ["--config", str(config), "--data-dir", str(tmp / f"data-{edge}")]
                server = ServerProcess(args_, None, log, command=command)
                try:
                    result = await run(server.ws, server.proc.pid, args.subscribers, args.seconds)
                finally:
                    server.terminate()
                    server.kill()
                print(
                    f"round {round_ + 1} {edge:>6}: connect+subscribe/s={result[0]:>7.0f}  "
                    f"deliveries/s={result[1]:>9.0f}  per server CPU-s={result[2]:>9.0f}  "
                    f"subscribers={args.subscribers}",
                    flush=True,
                )
                old = best.get(edge)
                if old is not None:
                    result = (
                        max(old[0], result[0]),
                        max(old[1], result[1]),
                        max(old[2], result[2]),
                    )
                best[edge] = result
        own, asgi = best["hubbub"], best["asgi"]
        print(f"ratio asgi/hubbub connect+subscribe/s: {asgi[0] / own[0]:.2f}")
        print(f"ratio asgi/hubbub deliveries/s:        {asgi[1] / own[1]:.2f}")
        print(f"ratio asgi/hubbub per server CPU-s:    {asgi[2] / own[2]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main()))
