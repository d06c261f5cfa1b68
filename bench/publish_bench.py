"""What the publish-duration histogram costs a publish, in one process.

    python bench/publish_bench.py [--publishes 50000] [--rounds 5]

``Node.publish`` into the memory history (a channel with history, the embedded default) and
into a channel without history, with no subscriber (so the figure is the publish path alone,
not fan-out), timed per publish; next to it, in the same run, what the histogram adds to each
publish on its own: the two clock reads and ``PublishLatency.handed`` + ``stored`` (one
bisection). Prints the best of ``--rounds`` for each and the share of a publish the
histogram takes. Speed targets belong here, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from hubbub.config import Settings
from hubbub.core.publishlatency import PublishLatency, Source
from hubbub.node import Node

DATA = '{"text":"' + "x" * 80 + '"}'


async def publish_seconds(node: Node, channel: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await node.publish(channel, DATA, source=Source.API)
    return (time.perf_counter() - started) / n


def instrumentation_seconds(n: int) -> float:
    """The histogram's part of one publish, as Node.publish and handle_publication do it."""
    latency = PublishLatency()
    pub = object()
    clock = time.perf_counter
    started = clock()
    for _ in range(n):
        t0 = clock()
        latency.handed(pub, clock())
        latency.stored(Source.API, pub, t0, clock())
    return (clock() - started) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publishes", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    node = Node(Settings(demos=False, namespaces=[{"name": "nohist"}]))
    await node.start()
    try:
        best = {"history": float("inf"), "no history": float("inf"), "histogram": float("inf")}
        for _ in range(args.rounds):
            best["history"] = min(best["history"], await publish_seconds(node, "b", args.publishes))
            best["no history"] = min(
                best["no history"], await publish_seconds(node, "nohist:b", args.publishes)
            )
            best["histogram"] = min(best["histogram"], instrumentation_seconds(args.publishes))
    finally:
        await node.stop()
    for name, seconds in best.items():
        print(f"{name:>12}: {seconds * 1e6:7.2f} us per publish")
    for name in ("history", "no history"):
        share = best["histogram"] / best[name]
        print(f"histogram / publish ({name}): {share:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
