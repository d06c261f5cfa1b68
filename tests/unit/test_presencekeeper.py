"""This node's presence entries kept alive: a refresh racing a removal or an update never
brings back a client that left, or its old info."""

from __future__ import annotations

import asyncio

from hubbub.core.types import ClientInfo
from hubbub.engines.memory import MemoryPresence
from hubbub.presencekeeper import PresenceKeeper


class SlowPresence(MemoryPresence):
    """Refresh writes wait until released, so that something can happen meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        if self.hold:
            self.hold = False
            self.held.set()
            await self.release.wait()
        await super().add(channel, info, ttl)


async def refreshing(presence: SlowPresence, keeper: PresenceKeeper) -> asyncio.Task[None]:
    presence.hold = True
    task = asyncio.create_task(keeper.refresh_forever())
    await asyncio.wait_for(presence.held.wait(), 5)
    return task


async def test_an_update_during_a_refresh_wins() -> None:
    presence = SlowPresence()
    keeper = PresenceKeeper(presence, ttl=0.03)
    await keeper.add("c", ClientInfo("c1", "ada", '{"v":1}'))
    task = await refreshing(presence, keeper)
    await keeper.add("c", ClientInfo("c1", "ada", '{"v":2}'))  # the new info, written at once
    presence.release.set()
    await asyncio.sleep(0.005)
    task.cancel()
    entries = await presence.presence("c")
    assert entries["c1"].conn_info == '{"v":2}', "the refresh's old info must not stay"


async def test_a_removal_during_a_refresh_wins() -> None:
    presence = SlowPresence()
    keeper = PresenceKeeper(presence, ttl=0.03)
    await keeper.add("c", ClientInfo("c1", "ada"))
    task = await refreshing(presence, keeper)
    await keeper.remove("c", "c1")
    presence.release.set()
    await asyncio.sleep(0.005)
    task.cancel()
    assert await presence.presence("c") == {}
