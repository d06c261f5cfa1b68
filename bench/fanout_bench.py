"""The node's fan-out loop alone, in one process: what each kind of channel member costs.

    python bench/fanout_bench.py [--members 2000] [--publications 400] [--rounds 5]

No sockets: members post into a counter, so the figure is the node's own work per delivery
(encoding once per wire, the member loop) and nothing of the kernel's or aiohttp's. Cases,
each a channel of ``--members`` members:

- plain: every member alike (the usual loop);
- protobuf-half: half JSON, half Protobuf members (two encodings per publication);
- filtered-10%: a tenth of the members with a tags filter (the special loop; a filter
  evaluated per filtered member);
- delta-all: every member negotiated fossil delta and every publication is marked delta
  (one delta per publication, its message per wire);
- catching-up-1%: a hundredth of the members still skipping offsets their subscribe reply
  covered (the special loop with a skip set).

Per case: deliveries (messages posted) per CPU second (process time, the best of
``--rounds``), and the ratio to plain measured in the same run. Speed targets belong here,
never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from hubbub.config import Settings
from hubbub.core.tagsfilter import parse
from hubbub.core.types import Publication
from hubbub.delta import Negotiated
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.node import Node

CHANNEL = "b:c"


@dataclass(eq=False)
class Sink:
    id: str
    posted: int = 0

    def post(self, message: str | bytes) -> None:
        self.posted += 1

    def close(self, code: int, reason: str) -> None:
        pass


@dataclass(eq=False)
class Member:
    client_id: str
    transport: Sink
    wire: Any

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        return forced

    def positioned(self, channel: str) -> bool:
        return False


def document(n: int) -> str:
    """A 1 KiB JSON document whose one field changes per publication (delta's best case)."""
    return json.dumps({"n": n, "rows": [{"id": i, "v": "x" * 20} for i in range(30)]})


async def case(name: str, members: int, count: int, rounds: int) -> float:
    settings = Settings(
        channel={},
        namespaces=[
            {"name": "b", "history_size": 10, "history_ttl": 60, "allowed_delta_types": ["fossil"]}
        ],
    )
    node = Node(settings)
    flt = parse({"key": "team", "cmp": "eq", "val": "eng"})
    pubs = [
        Publication(
            document(i) if name == "delta-all" else '{"price":101.5,"sym":"ABC"}',
            offset=i + 1,
            tags={"team": "eng" if i % 2 else "ops"},
            delta=name == "delta-all",
        )
        for i in range(count * rounds + 1)
    ]
    for i in range(members):
        wire = PROTOBUF if name == "protobuf-half" and i % 2 else JSON
        member = Member(f"c{i}", Sink(f"t{i}"), wire)
        await node.add_pending(CHANNEL, member)
        behind = name == "catching-up-1%" and i % 100 == 0
        node.activate(
            CHANNEL,
            member,
            len(pubs) + 1 if behind else 0,
            tags_filter=flt if name == "filtered-10%" and i % 10 == 0 else None,
            delta=Negotiated(None) if name == "delta-all" else None,
        )
    best = float("inf")
    for r in range(rounds):
        batch = pubs[r * count : (r + 1) * count]
        delivered = node.deliveries
        started = time.process_time()
        for pub in batch:
            node.handle_publication(CHANNEL, pub)
        spent = time.process_time() - started
        best = min(best, spent / max(1, node.deliveries - delivered))
    return 1 / best


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--publications", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = ["plain", "protobuf-half", "filtered-10%", "delta-all", "catching-up-1%"]
    results = {n: await case(n, args.members, args.publications, args.rounds) for n in names}
    print(f"fan-out in the node, {args.members} members, deliveries per CPU-second:")
    for name in names:
        ratio = results[name] / results["plain"]
        print(f"  {name:14s} {results[name] / 1e6:6.2f} M   {ratio:4.2f}x plain")


if __name__ == "__main__":
    asyncio.run(main())
