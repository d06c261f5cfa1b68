"""``write_delay`` 0, 1, 5 and 20 ms side by side: fan-out per server CPU-second and
publish-to-receive latency at a high publication rate.

    python bench/writedelay_bench.py [--delays 0,1,5,20] [--subscribers 2000] [--channels 10]
                                     [--rate 1000] [--seconds 3] [--rounds 2] [--no-pin]

One ``hubbub serve`` per delay (memory only: a namespace without history, the bench's lifted
rate limits), ``--subscribers`` JSON connections (hubbub.loadgen) spread evenly over
``--channels`` channels, one channel each, 200 of them sampled for latency. For each delay:

1. paced: ``--rate`` stamped 100-byte publications per second for ``--seconds``, round-robin
   over the channels (each connection gets ``rate / channels`` per second), the same offered
   load for every delay: deliveries per server CPU-second and p50/p99 publish-to-receive
   latency of the sampled connections;
2. flood: as fast as the subscribers take them, at most 4 publications per channel
   outstanding: deliveries per second and per server CPU-second (the ceiling).

The server runs on the last core and the generator on the first (taskset; ``--no-pin``:
wherever the scheduler puts them). Rounds go over the delays in order, then in reverse;
each figure is the best round's (the paced latency from the same round as its CPU figure).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers_bench import Peer, fmt, prepare_machine, running, status, table  # noqa: E402

from hubbub.loadgen import (  # noqa: E402
    Client,
    HubbubDialect,
    Measure,
    Stats,
    Window,
    close_all,
    connect_clients,
    drain,
    flood,
    open_client,
    quiesce,
    stamped,
)

CONFIG = """
demos = false
client_command_rate = 1000000000
client_command_burst = 1000000000
write_buffer_limit = 4194304
write_delay = {delay}

[[namespaces]]
name = "nohist"
"""


class Counting(HubbubDialect):
    """The JSON dialect, counting the frames that carried publications (all connections)."""

    frames = 0

    def deliveries(self, payload: bytes) -> int:
        count = super().deliveries(payload)
        if count:
            Counting.frames += 1
        return count


def server(delay_ms: float, cpu: int | None) -> Peer:
    def command(port: int, tmp: Path) -> list[str]:
        config = tmp / "hubbub.toml"
        config.write_text(CONFIG.format(delay=delay_ms / 1000))
        serve = [sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--config",
                 str(config), "--data-dir", str(tmp), "--log-level", "warning"]  # fmt: skip
        return serve if cpu is None else ["taskset", "-c", str(cpu), *serve]

    return Peer(f"hubbub write_delay={delay_ms:g}ms", command, HubbubDialect, lambda: None)


async def paced_round_robin(
    publisher: Client, stats: Stats, channels: list[str], rate: float, seconds: float,
    per_publication: int, pid: int,
) -> tuple[Measure, float, float]:  # fmt: skip
    """``rate`` stamped publications per second over ``channels``; the window's deliveries
    per server CPU-second and the sampled p50/p99 latency in ms."""
    stats.latencies_ns.clear()
    base, frames = stats.delivered, Counting.frames
    window = Window(pid)
    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate) + 1
        while n < due:  # what is due since the last tick (sleeps are ~1 ms at best)
            publisher.send(publisher.dialect.publish(channels[n % len(channels)], [stamped(100)]))
            n += 1
        await asyncio.sleep(0.001)
    await drain(stats, base + n * per_publication, limit=30.0)
    measure = window.done(stats.delivered - base)
    measure.sent = Counting.frames - frames  # (frames received, for messages per frame)
    samples = sorted(stats.latencies_ns)
    if not samples:
        return measure, float("nan"), float("nan")
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1e6
    return measure, statistics.median(samples) / 1e6, p99


async def one_delay(peer: Peer, args: argparse.Namespace, out: dict[str, Any]) -> None:
    channels = [f"nohist:c{i}" for i in range(args.channels)]
    per_channel = args.subscribers // args.channels
    with running(peer) as (url, pid):
        stats = Stats()
        subs, _ = await connect_clients(
            url, Counting, stats, per_channel * args.channels,
            lambda i: [channels[i % len(channels)]], samples=200,
            progress=lambda n: status(f"{peer.name}: {n} connected") if n % 500 == 1 else None,
        )  # fmt: skip
        try:
            publisher = await open_client(url, HubbubDialect(), Stats())
            subs.append(publisher)
            await quiesce(pid)
            status(f"{peer.name}: paced {args.rate:g}/s")
            out["paced"] = await paced_round_robin(
                publisher, stats, channels, args.rate, args.seconds, per_channel, pid
            )
            await quiesce(pid)
            status(f"{peer.name}: flood")
            base = stats.delivered
            measure = await flood(
                publisher, stats, per_channel, args.seconds, list(channels),
                window=4 * len(channels), pid=pid,
            )  # fmt: skip
            await drain(stats, base + measure.sent * per_channel)
            out["flood"] = measure
        finally:
            close_all(subs)


def better(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if old is None:
        return new
    out = dict(old)
    for key in ("paced", "flood"):
        if key not in new:
            continue
        mine, theirs = out.get(key), new[key]
        m_new = theirs[0] if key == "paced" else theirs
        m_old = None if mine is None else (mine[0] if key == "paced" else mine)
        if m_old is None or (m_new.per_cpu or 0) > (m_old.per_cpu or 0):
            out[key] = theirs
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", default="0,1,5,20", help="Milliseconds, comma-separated.")
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="Publications/s of the paced run, over all channels.")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="Best of this many rounds.")
    parser.add_argument("--no-pin", action="store_true",
                        help="Do not pin the server and the generator to a core each.")  # fmt: skip
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    cpu = prepare_machine(parser, not args.no_pin, args.subscribers)
    results: dict[float, dict[str, Any]] = {}
    errors: list[str] = []
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = delays[::-1] if round_ % 2 else delays  # against drift
        for delay in order:
            got: dict[str, Any] = {}
            try:
                await one_delay(server(delay, cpu), args, got)
            except Exception as exc:  # reported; the other delays still run
                errors.append(f"round {round_ + 1}, {delay:g} ms: {exc!r}")
            results[delay] = better(results.get(delay), got)
        status("")
        print(f"\rround {round_ + 1} done at {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
    report(results, delays, args)
    for error in errors:
        print(f"  failed: {error}")


def report(results: dict[float, dict[str, Any]], delays: list[float], ns: Any) -> None:
    base: Callable[[str], float | None] = lambda key: _cpu(results.get(delays[0], {}), key)  # noqa: E731
    rows = []
    for delay in delays:
        got = results.get(delay, {})
        paced, flooded = got.get("paced"), got.get("flood")
        p_cpu, f_cpu = _cpu(got, "paced"), _cpu(got, "flood")
        rows.append([
            f"{delay:g} ms",
            fmt(p_cpu), _x(p_cpu, base("paced")),
            f"{paced[0].count / paced[0].sent:.2f}" if paced and paced[0].sent else "-",
            f"{paced[1]:.1f}" if paced else "-", f"{paced[2]:.1f}" if paced else "-",
            f"{paced[0].own_load:.2f}" if paced else "-",
            fmt(flooded.rate) if flooded else "-", fmt(f_cpu), _x(f_cpu, base("flood")),
        ])  # fmt: skip
    per_conn = ns.rate / ns.channels
    table(f"write_delay: {ns.subscribers:,} subscribers over {ns.channels} channels; paced at "
          f"{ns.rate:g} publications/s ({per_conn:g}/s per connection, "
          f"{ns.rate * ns.subscribers / ns.channels:,.0f} deliveries/s); flood: at most 4 "
          "publications per channel outstanding",
          ["write_delay", "paced per CPU-s", "x 0", "msgs/frame", "p50 ms", "p99 ms", "gen load",
           "flood deliveries/s", "flood per CPU-s", "x 0"], rows)  # fmt: skip
    print(f"(best of {ns.rounds} rounds per figure, latency from the paced figure's round)")


def _cpu(got: dict[str, Any], key: str) -> float | None:
    value = got.get(key)
    if value is None:
        return None
    measure: Measure = value[0] if key == "paced" else value
    return measure.per_cpu


def _x(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value and base else "-"


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
