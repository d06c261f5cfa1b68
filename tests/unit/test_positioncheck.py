"""The periodic position check (positioncheck.py) against a node double."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hubbub.core.types import StreamPosition
from hubbub.positioncheck import check_positions, check_positions_forever
from tests.support.timing import eventually


@dataclass
class Broker:
    top: int = 0
    failure: Exception | None = None
    reads: list[str] = field(default_factory=list)

    async def position(self, channel: str) -> StreamPosition:
        self.reads.append(channel)
        if self.failure is not None:
            raise self.failure
        return StreamPosition(self.top, "e")


@dataclass
class Node:
    """What the check uses of a node: one positioned channel, handed up to ``last``."""

    broker: Broker
    last: int = 0
    lagged: list[tuple[str, int]] = field(default_factory=list)

    def channels(self) -> list[str]:
        return ["h:c"]

    def last_offset(self, channel: str) -> int:
        return self.last

    def has_positioned(self, channel: str) -> bool:
        return True

    def lagging(self, channel: str, top: int) -> None:
        self.lagged.append((channel, top))


async def test_a_quiet_channel_behind_its_stream_top_is_lagging() -> None:
    node = Node(Broker(top=3), last=2)
    before = await check_positions(node, {}, grace=0)  # type: ignore[arg-type]
    assert node.lagged == [] and node.broker.reads == []  # first round: nothing to compare
    await check_positions(node, before, grace=0)  # type: ignore[arg-type]
    assert node.lagged == [("h:c", 3)]


async def test_the_check_outlives_an_unexpected_failure() -> None:
    """A read that fails with something other than StoreError (a driver error nobody
    translated, a bug) is logged and the next round comes: the check never ends by itself."""
    node = Node(Broker(failure=RuntimeError("unexpected")))
    task = asyncio.create_task(check_positions_forever(node, 0.01))  # type: ignore[arg-type]
    try:
        await eventually(lambda: len(node.broker.reads) >= 3 or task.done(), 5)
        assert not task.done(), task.exception()
    finally:
        task.cancel()
