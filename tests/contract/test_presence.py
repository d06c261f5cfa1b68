"""PresenceManager guarantees (hubbub.engines.base), for every engine."""

from __future__ import annotations

from hubbub.core.types import ClientInfo
from tests.contract.conftest import Engine


async def test_add_list_remove(engine: Engine) -> None:
    p = engine.presence
    await p.add("a", ClientInfo("c1", "ada", '{"x":1}'), ttl=60)
    await p.add("a", ClientInfo("c2", "ada"), ttl=60)
    await p.add("a", ClientInfo("c3", ""), ttl=60)
    assert set(await p.presence("a")) == {"c1", "c2", "c3"}
    assert (await p.presence("a"))["c1"].conn_info == '{"x":1}'
    assert await p.stats("a") == (3, 1)  # anonymous counts as a client, not a user
    await p.remove("a", "c1")
    assert set(await p.presence("a")) == {"c2", "c3"}
    assert await p.presence("other") == {}


async def test_entries_expire_unless_refreshed(engine: Engine) -> None:
    p = engine.presence
    await p.add("a", ClientInfo("old", "u1"), ttl=10)
    await p.add("a", ClientInfo("fresh", "u2"), ttl=10)
    engine.clock.advance(8)
    await p.add("a", ClientInfo("fresh", "u2"), ttl=10)  # refresh
    engine.clock.advance(5)
    assert set(await p.presence("a")) == {"fresh"}
    assert await p.stats("a") == (1, 1)
