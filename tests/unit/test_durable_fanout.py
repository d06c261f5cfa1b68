"""A group commit's publications reach the channel's members in one loop turn, in offset
order, and every publisher gets its own offset (SQLite history, the embedded default)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hubbub.config import Settings
from hubbub.engines.local import LocalBroker
from hubbub.engines.sqlite import SqliteHistory
from hubbub.node import Node
from tests.unit.test_node import member


class Turns:
    """Counts loop iterations: a callback that reschedules itself runs once per turn."""

    def __init__(self) -> None:
        self.now = 0
        self._handle: asyncio.Handle | None = None
        self._tick()

    def _tick(self) -> None:
        self.now += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def test_a_committed_batch_is_fanned_out_in_one_turn(tmp_path: Path) -> None:
    settings = Settings(
        channel={}, namespaces=[{"name": "h", "history_size": 100, "history_ttl": 60}]
    )
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    node = Node(settings, broker=LocalBroker(store))
    await node.start()
    turns = Turns()
    try:
        seen: list[tuple[int, int]] = []  # (turn, offset) as the member got them
        m = member("m", False)
        m.transport.post = lambda message: seen.append(  # type: ignore[method-assign]
            (turns.now, json.loads(message)["push"]["pub"]["offset"])
        )
        await node.add_member("h:c", m)
        await node.publish("h:c", '"warm-up"')  # (the stream exists: one batch below)
        seen.clear()
        batches = store.commits.batches
        pubs = await asyncio.gather(*(node.publish("h:c", f'"{i}"') for i in range(20)))
        assert store.commits.batches == batches + 1
        assert [p.offset for p in pubs] == list(range(2, 22))
        assert [offset for _, offset in seen] == list(range(2, 22))
        assert len({turn for turn, _ in seen}) == 1, seen
    finally:
        turns.stop()
        await node.stop()
