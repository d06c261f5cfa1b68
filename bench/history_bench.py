"""Acknowledged publishes per second into the durable history stores.

    python bench/history_bench.py [--publishers 32] [--seconds 3]

For SQLite (synchronous=FULL, WAL) and PostgreSQL (a throw-away server started here, fsync on),
``--publishers`` coroutines each publish one message at a time and wait for its acknowledgement
(the commit), for ``--seconds``. Every store runs twice in the same process: with group commit
(publishes that arrive together share a transaction) and with one transaction per message.
Prints one line per run and the ratio group/single per store.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import PostgresServer, find_pg_bin  # noqa: E402

from hubbub.core.types import ClientInfo, Publication  # noqa: E402
from hubbub.engines.base import HistoryOptions, HistoryStore  # noqa: E402
from hubbub.engines.postgres import PostgresHistory  # noqa: E402
from hubbub.engines.sqlite import SqliteHistory  # noqa: E402

KEEP = HistoryOptions(size=100_000, ttl=3600)
PAYLOAD = '{"text":"' + "x" * 80 + '"}'


async def run(store: HistoryStore, publishers: int, seconds: float) -> tuple[float, int]:
    await store.open()
    info = ClientInfo("bench", "bench")
    done = 0
    deadline = time.perf_counter() + seconds

    async def publisher(i: int) -> None:
        nonlocal done
        channel = f"bench:{i % 8}"
        while time.perf_counter() < deadline:
            await store.append(channel, Publication(PAYLOAD, info=info), KEEP)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(publisher(i) for i in range(publishers)))
    elapsed = time.perf_counter() - started
    batches = store.commits.batches  # type: ignore[attr-defined]
    await store.close()
    return done / elapsed, batches


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publishers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-bench-"))
    pg_bin = find_pg_bin()
    pg = PostgresServer(pg_bin) if pg_bin else None
    try:
        print(f"{args.publishers} publishers, {args.seconds:.0f} s per run, 100-byte messages")
        print(f"{'store':<12}{'commit':<8}{'acked/s':>10}{'transactions':>14}")
        for name in ("sqlite", "postgresql"):
            if name == "postgresql" and pg is None:
                print("postgresql  skipped: initdb/pg_ctl not found")
                continue
            rates = {}
            for group in (True, False):
                n = len(rates)
                if name == "sqlite":
                    store: HistoryStore = SqliteHistory(
                        tmp / f"h{n}.db", group_commit=group, retention_interval=0
                    )
                else:
                    assert pg is not None
                    url = pg.create_database(f"bench{n}")
                    store = PostgresHistory(url, group_commit=group, retention_interval=0)
                rate, batches = await run(store, args.publishers, args.seconds)
                rates[group] = rate
                label = "group" if group else "single"
                print(f"{name:<12}{label:<8}{rate:>10.0f}{batches:>14}")
            print(f"{name:<12}{'ratio':<8}{rates[True] / rates[False]:>10.1f}x group/single")
    finally:
        if pg is not None:
            pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
