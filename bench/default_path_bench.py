"""The embedded default's channel (durable SQLite history) against a channel without history,
on one server in one run: fan-out per server CPU-second.

    python bench/default_path_bench.py [--subscribers 2000] [--seconds 3] [--rounds 3]
                                       [--groups 100] [--no-pin]

One ``hubbub serve`` as bench/formats_bench.py starts it (the embedded defaults, a namespace
``nohist`` without history, rate limits lifted), pinned to the last core, the generator to the
first. Every subscriber (JSON) is in a channel of each kind; two shapes:

- one channel: all ``--subscribers`` in ``bench`` / ``nohist:bench``, one 100-byte publication
  in flight (the next once every subscriber has the last): the store's cost per publication
  against 2,000 socket writes;
- groups: the subscribers split into ``--groups`` channels (``g<k>`` / ``nohist:g<k>``), one
  publication in flight per group (``--groups`` in flight in all): a store's cost per
  publication against a few writes, the shape of chat rooms and games.

Every round measures both kinds in both shapes, in reverse order every other round; each
figure is the better of the rounds. The closing lines print durable / no history per server
CPU-second against the target (>= 0.9).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.formats_bench import HUBBUB, pinned  # noqa: E402
from bench.peers_bench import fmt, prepare_machine, running, status, table  # noqa: E402

from hubbub.loadgen import (  # noqa: E402
    HubbubDialect,
    Measure,
    Stats,
    close_all,
    connect_clients,
    drain,
    flood,
    open_client,
    quiesce,
)

TARGET = 0.9
KINDS = {"nohist:": "no history", "": "durable (SQLite)"}


def channels_of(shape: str, groups: int) -> list[str]:
    """The channel names of a shape, without the kind's prefix."""
    return ["bench"] if shape == "one channel" else [f"g{k}" for k in range(groups)]


async def measure(url: str, pid: int, args: argparse.Namespace, rounds: int) -> dict[str, Any]:
    stats = Stats()
    n, groups = args.subscribers, args.groups
    subs, _ = await connect_clients(
        url, HubbubDialect, stats, n,
        lambda i: ["bench", "nohist:bench", f"g{i % groups}", f"nohist:g{i % groups}"],
        samples=0, progress=lambda k: status(f"{k}/{n} connected") if k % 500 == 0 else None,
    )  # fmt: skip
    best: dict[str, Measure] = {}
    try:
        publisher = await open_client(url, HubbubDialect(), Stats())
        subs.append(publisher)
        await quiesce(pid)
        steps = [(shape, kind) for shape in ("one channel", "groups") for kind in KINDS]
        for round_ in range(rounds):
            for shape, kind in steps[::-1] if round_ % 2 else steps:
                names = [kind + name for name in channels_of(shape, groups)]
                per_publication = n // len(names)
                status(f"round {round_ + 1}: {shape}, {KINDS[kind]}")
                base = stats.delivered
                m = await flood(
                    publisher, stats, per_publication, args.seconds, names,
                    batch=1, window=len(names), pid=pid,
                )  # fmt: skip
                await drain(stats, base + m.sent * per_publication)
                key = f"{shape}|{kind}"
                print(f"\r  round {round_ + 1}: {shape}, {KINDS[kind]}: {m.rate:,.0f}/s, "
                      f"{fmt(m.per_cpu)} per CPU-s, gen load {m.own_load:.2f}",
                      file=sys.stderr)  # fmt: skip
                if key not in best or (m.per_cpu or 0) > (best[key].per_cpu or 0):
                    best[key] = m
                await quiesce(pid)
    finally:
        close_all(subs)
    return best


def report(best: dict[str, Measure], args: argparse.Namespace) -> list[tuple[str, float]]:
    rows, ratios = [], []
    for shape in ("one channel", "groups"):
        bare = best.get(f"{shape}|nohist:")
        for kind, what in KINDS.items():
            m = best.get(f"{shape}|{kind}")
            if m is None:
                continue
            x = m.per_cpu / bare.per_cpu if bare and bare.per_cpu and m.per_cpu else None
            rows.append([shape, what, fmt(m.rate), fmt(m.per_cpu),
                         f"{x:.2f}" if x else "-", f"{m.own_load:.2f}"])  # fmt: skip
            if kind == "" and x:  # (the durable kind: no prefix)
                ratios.append((shape, x))
    size = args.subscribers // args.groups
    table(f"fan-out to {args.subscribers:,} subscribers: one channel, or {args.groups} groups "
          f"of {size} (one publication in flight per channel)",
          ["shape", "channel", "deliveries/s", "per CPU-s", "x no history", "gen load"],
          rows)  # fmt: skip
    return ratios


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3, help="Best of this many rounds.")
    parser.add_argument("--no-pin", action="store_true", help="Do not pin server and generator.")
    args = parser.parse_args()
    cpu = prepare_machine(parser, not args.no_pin, args.subscribers)
    server = HUBBUB if cpu is None else pinned(cpu)
    with running(server) as (url, pid):
        best = await measure(url, pid, args, args.rounds)
    status("")
    print(f"(best of {args.rounds} interleaved rounds per figure; one server for all)")
    ratios = report(best, args)
    print(f"\ndurable SQLite / no history per server CPU-second (target >= {TARGET}):")
    for shape, x in ratios:
        print(f"  {shape}: {x:.2f} {'met' if x >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
