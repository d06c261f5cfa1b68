"""The event outbox's guarantees (hubbub.engines.eventoutbox) against every engine's store."""

from __future__ import annotations

import asyncio
import time

from hubbub.engines.base import Broker
from hubbub.engines.eventoutbox import EventOutbox, MemoryEventOutbox, OutboxEvent
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory
from hubbub.engines.pg_events import PostgresEventOutbox
from hubbub.engines.pgbroker import PostgresBroker
from hubbub.engines.postgres import PostgresHistory
from hubbub.engines.sqlite import SqliteHistory
from hubbub.engines.sqlite_events import SqliteEventOutbox
from tests.contract.conftest import Engine

NOW = 2_000_000_000.0
LEASE = 30.0


async def outbox_of(broker: Broker) -> EventOutbox:
    outbox: EventOutbox
    if isinstance(broker, PostgresBroker):
        outbox = PostgresEventOutbox(broker.store)
    elif isinstance(broker, LocalBroker):
        store = broker.store
        if isinstance(store, MemoryHistory):
            outbox = MemoryEventOutbox()
        elif isinstance(store, SqliteHistory):
            outbox = SqliteEventOutbox(store)
        else:
            assert isinstance(store, PostgresHistory)
            outbox = PostgresEventOutbox(store)
    else:
        from hubbub.engines.redis import RedisBroker
        from hubbub.engines.redis_events import RedisEventOutbox

        assert isinstance(broker, RedisBroker)
        outbox = RedisEventOutbox(broker)
    await outbox.open()
    return outbox


def ev(n: int, target: str = "webhook", created: float = NOW) -> OutboxEvent:
    return OutboxEvent(target, f"id{n:03d}", f'{{"id":"id{n:03d}","n":{n}}}', created + n)


async def test_claims_are_leases_and_acks_delete(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    await outbox.add([ev(1), ev(2), ev(3)], NOW)
    await outbox.add([ev(2)], NOW)  # the same id again: nothing new
    await outbox.add([ev(9, target="other")], NOW)
    assert await outbox.depth("webhook") == 3
    first = await outbox.claim("webhook", 2, NOW, LEASE)
    assert [e.id for e in first] == ["id001", "id002"]
    assert first[0] == ev(1)
    second = await outbox.claim("webhook", 2, NOW, LEASE)
    assert [e.id for e in second] == ["id003"]
    assert await outbox.claim("webhook", 2, NOW + 1, LEASE) == []
    await outbox.ack("webhook", ["id001", "id003"])
    assert await outbox.depth("webhook") == 1
    # the lease ran out: what was not acknowledged comes back
    again = await outbox.claim("webhook", 10, NOW + LEASE + 1, LEASE)
    assert [e.id for e in again] == ["id002"]
    assert [e.id for e in await outbox.claim("other", 10, NOW, LEASE)] == ["id009"]


async def test_retry_makes_due_later_and_counts_attempts(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    await outbox.add([ev(1), ev(2)], NOW)
    claimed = await outbox.claim("webhook", 10, NOW, LEASE)
    await outbox.retry("webhook", [e.id for e in claimed], NOW + 5)
    assert await outbox.claim("webhook", 10, NOW + 4, LEASE) == []
    back = await outbox.claim("webhook", 10, NOW + 5, LEASE)
    assert [(e.id, e.attempts) for e in back] == [("id001", 1), ("id002", 1)]
    await outbox.retry("webhook", ["id001"], NOW + 6)
    (one,) = await outbox.claim("webhook", 10, NOW + 6, LEASE)
    assert (one.id, one.attempts) == ("id001", 2)


async def test_concurrent_claims_never_share_an_event(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    await outbox.add([ev(n) for n in range(20)], NOW)
    batches = await asyncio.gather(*(outbox.claim("webhook", 3, NOW, LEASE) for _ in range(8)))
    ids = [e.id for batch in batches for e in batch]
    assert len(ids) == len(set(ids)) == 20


async def test_occupancy_transitions_write_their_event_once(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    occupied, vacated = [ev(1)], [ev(2)]
    assert await outbox.occupy("news", "A", occupied, NOW)
    assert not await outbox.occupy("news", "A", [ev(3)], NOW)  # already there
    assert not await outbox.occupy("news", "B", [ev(4)], NOW)  # not the first
    assert not await outbox.vacate("news", "A", [ev(5)], NOW)  # not the last
    assert not await outbox.vacate("news", "A", [ev(6)], NOW)  # not there any more
    assert await outbox.vacate("news", "B", vacated, NOW)
    assert not await outbox.vacate("news", "B", [ev(7)], NOW)
    claimed = await outbox.claim("webhook", 10, NOW, LEASE)
    assert [e.id for e in claimed] == ["id001", "id002"]


async def test_concurrent_first_members_make_one_event(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    results = await asyncio.gather(
        *(outbox.occupy("room", f"node{n}", [ev(n)], NOW) for n in range(6))
    )
    assert results.count(True) == 1
    assert await outbox.depth("webhook") == 1


async def test_liveness_and_dead_nodes(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    await outbox.alive("A", NOW + 10)
    await outbox.alive("B", NOW + 20)
    await outbox.occupy("x", "A", [], NOW)
    await outbox.occupy("y", "A", [], NOW)
    await outbox.occupy("y", "B", [], NOW)
    assert await outbox.dead_nodes(NOW + 15) == ["A"]
    assert await outbox.channels_of("A") == ["x", "y"]
    await outbox.forget_node("A")  # still holds channels: kept
    assert await outbox.dead_nodes(NOW + 15) == ["A"]
    assert await outbox.vacate("x", "A", [ev(1)], NOW)
    assert not await outbox.vacate("y", "A", [ev(2)], NOW)  # B still there
    await outbox.forget_node("A")
    assert await outbox.dead_nodes(NOW + 15) == []
    await outbox.alive("B", 0.0)
    assert await outbox.dead_nodes(NOW) == ["B"]


async def test_durable_outboxes_survive_a_reopen(engine: Engine) -> None:
    outbox = await outbox_of(engine.broker)
    if engine.reopen is None:
        assert not outbox.durable
        return
    assert outbox.durable
    await outbox.add([ev(1), ev(2)], NOW)
    await outbox.occupy("news", "A", [], NOW)
    await engine.broker.close()
    broker = await engine.reopen()
    try:
        fresh = await outbox_of(broker)
        assert [e.id for e in await fresh.claim("webhook", 10, NOW, LEASE)] == ["id001", "id002"]
        assert await fresh.channels_of("A") == ["news"]
    finally:
        await broker.close()
        await engine.broker.open()  # (the fixture closes it)


async def test_two_nodes_racing_on_many_channels_neither_double_nor_miss(
    engine: Engine,
) -> None:
    """Two nodes (two outboxes on one store) take and leave many channels at once, as their
    occupancy workers do (the event made, with its time, by a function the store calls): the
    events written are exactly those ``occupy``/``vacate`` reported, and each channel's, in
    the order of their time, alternate occupied, vacated."""
    first = await outbox_of(engine.broker)
    other = None if engine.reopen is None else await engine.reopen()
    second = first if other is None else await outbox_of(other)
    written: set[str] = set()
    made: dict[str, tuple[str, str]] = {}  # event id -> (channel, type)

    async def node(name: str, outbox: EventOutbox, channel: str) -> None:
        for cycle in range(4):
            for kind in ("channel_occupied", "channel_vacated"):
                eid = f"{channel}-{name}-{cycle}-{kind}"
                made[eid] = (channel, kind)

                def stamp(eid: str = eid) -> list[OutboxEvent]:
                    return [OutboxEvent("webhook", eid, f'{{"id":"{eid}"}}', time.time())]

                step = outbox.occupy if kind == "channel_occupied" else outbox.vacate
                if await step(channel, name, stamp, time.time()):
                    written.add(eid)

    try:
        channels = [f"room{n}" for n in range(30)]
        await asyncio.gather(
            *(node(name, box, ch) for ch in channels for name, box in (("A", first), ("B", second)))
        )
        stored = await first.claim("webhook", 10_000, time.time() + 1, LEASE)
    finally:
        if other is not None:
            await other.close()
    assert sorted(e.id for e in stored) == sorted(written)  # nothing doubled, nothing missed
    for channel in channels:
        kinds = [
            made[e.id][1]
            for e in sorted(stored, key=lambda e: e.created)
            if made[e.id][0] == channel
        ]
        half = len(kinds) // 2
        assert kinds == ["channel_occupied", "channel_vacated"] * half and half, (channel, kinds)
