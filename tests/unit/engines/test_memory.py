"""The memory history store's global bound (hubbub.engines.memory): bytes across channels,
oldest first, idle streams dropped, accounting that adds up."""

from __future__ import annotations

import random

from hubbub.core.recovery import decide_recovery
from hubbub.core.types import Publication, StreamPosition
from hubbub.engines.base import HistoryOptions
from hubbub.engines.memory import (
    KEY_OVERHEAD,
    MemoryHistory,
    publication_cost,
    stream_cost,
)

KEEP = HistoryOptions(size=1000, ttl=3600, idempotency_ttl=60)
DATA = '"' + "x" * 998 + '"'  # 1000 bytes of JSON
PUB_COST = publication_cost(Publication(DATA))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def accounted(store: MemoryHistory) -> int:
    """What the store should count, recomputed from what it holds."""
    total = 0
    for channel, stream in store._streams.items():
        total += stream_cost(channel)
        total += sum(publication_cost(pub) for _, pub, _ in stream.items)
        total += sum(
            publication_cost(pub) + KEY_OVERHEAD + len(key)
            for key, (_, pub, _) in stream.keys.items()
        )
    return total


async def test_the_bound_holds_across_channels_evicting_the_oldest() -> None:
    clock = Clock()
    budget = 3 * stream_cost("a") + 10 * PUB_COST
    store = MemoryHistory(clock=clock, max_bytes=budget)
    for channel in ("a", "b", "c"):
        for _ in range(5):
            clock.now += 1
            await store.append(channel, Publication(DATA), KEEP)
            assert store.bytes_held <= budget
    # 15 publications were stored, 10 fit: a's five (the oldest) went first.
    a = await store.read("a", since_offset=None, limit=-1, reverse=False)
    b = await store.read("b", since_offset=None, limit=-1, reverse=False)
    c = await store.read("c", since_offset=None, limit=-1, reverse=False)
    assert [len(r.publications) for r in (a, b, c)] == [0, 5, 5]
    assert a.position.offset == 5  # the position stays: the loss is visible
    assert store.bytes_held == accounted(store)


async def test_recovery_across_an_eviction_is_not_recovered() -> None:
    clock = Clock()
    store = MemoryHistory(clock=clock, max_bytes=2 * stream_cost("a") + 4 * PUB_COST)
    for _ in range(3):
        await store.append("a", Publication(DATA), KEEP)
    position = await store.position("a")  # a client saw offsets 1-3
    for _ in range(3):
        await store.append("a", Publication(DATA), KEEP)
    for _ in range(3):
        clock.now += 1
        await store.append("b", Publication(DATA), KEEP)  # four fit: a keeps only 6
    since = StreamPosition(position.offset, position.epoch)
    history = await store.read("a", since_offset=since.offset, limit=301, reverse=False)
    assert [p.offset for p in history.publications] == [6]
    decision = decide_recovery(since, history, 300)
    assert not decision.recovered


async def test_idle_streams_go_without_being_read_again() -> None:
    clock = Clock()
    store = MemoryHistory(clock=clock, meta_ttl=60)
    for n in range(100):
        await store.position(f"idle-{n}")
        await store.append(f"used-{n}", Publication(DATA), HistoryOptions(size=1, ttl=1))
    assert store.stream_count == 200
    clock.now += 61
    await store.append("fresh", Publication(DATA), KEEP)
    assert store.stream_count == 1
    assert store.bytes_held == stream_cost("fresh") + PUB_COST


async def test_streams_without_publications_are_bounded_too() -> None:
    """A client asking positions of endless new channels fills the budget with streams: the
    longest idle ones go (they get a new epoch when used again), and publications keep at
    least half the budget."""
    clock = Clock()
    budget = 2000 * stream_cost("chan-0000")
    store = MemoryHistory(clock=clock, max_bytes=budget)
    first = await store.position("chan-0000")
    pubs = (budget // 2) // PUB_COST - 1
    for _ in range(pubs):
        await store.append("busy", Publication(DATA), KEEP)
    for n in range(1, 5000):
        clock.now += 0.001
        await store.position(f"chan-{n:04d}")
        if n % 100 == 0:
            await store.append("busy", Publication(DATA), KEEP)  # published to: not idle
    assert store.bytes_held <= budget and 990 <= store.stream_count <= 1000  # half the budget
    busy = await store.read("busy", since_offset=None, limit=-1, reverse=False)
    assert len(busy.publications) >= pubs  # publications keep half the budget
    assert (await store.position("chan-0000")).epoch != first.epoch


async def test_stale_eviction_entries_do_not_pile_up() -> None:
    """Retention (size 1) drops publications the eviction queue still lists: the queue is
    compacted, so it stays proportional to what is held."""
    store = MemoryHistory(clock=Clock())
    for n in range(20_000):
        await store.append(f"c{n % 10}", Publication(DATA), HistoryOptions(size=1, ttl=60))
    assert store.bytes_held == 10 * (stream_cost("c0") + PUB_COST)
    assert len(store._order) <= 2 * 10 + 1024


async def test_idempotency_keys_count_and_still_work() -> None:
    clock = Clock()
    store = MemoryHistory(clock=clock, max_bytes=stream_cost("k") + 10 * PUB_COST)
    one = HistoryOptions(size=1, ttl=3600, idempotency_ttl=60)
    first, new = await store.append("k", Publication(DATA), one, "key-1")
    assert new
    again, new = await store.append("k", Publication(DATA), one, "key-1")
    assert (again, new) == (first, False)
    for n in range(2, 40):  # keys hold their publications: they are bounded too
        await store.append("k", Publication(DATA), one, f"key-{n}")
    assert store.bytes_held <= stream_cost("k") + 10 * PUB_COST
    _, new = await store.append("k", Publication(DATA), one, "key-1")
    assert new  # evicted long ago: a publication again (the store was full)
    clock.now += 61
    await store.append("k", Publication(DATA), one)
    assert store.bytes_held == stream_cost("k") + PUB_COST  # expired keys are gone


async def test_accounting_adds_up_under_random_use() -> None:
    rng = random.Random(12)
    clock = Clock()
    store = MemoryHistory(clock=clock, meta_ttl=50, max_bytes=40 * PUB_COST)
    for _ in range(5000):
        clock.now += rng.random()
        channel = f"ch{rng.randrange(30)}"
        action = rng.random()
        if action < 0.6:
            options = HistoryOptions(size=rng.randint(1, 20), ttl=rng.choice([5, 100]))
            key = f"k{rng.randrange(50)}" if rng.random() < 0.3 else None
            await store.append(channel, Publication(DATA[: rng.randint(2, 1000)]), options, key)
        elif action < 0.8:
            await store.read(channel, since_offset=None, limit=-1, reverse=False)
        elif action < 0.95:
            await store.position(channel)
        else:
            await store.remove(channel)
        assert store.bytes_held == accounted(store)
        assert store.bytes_held <= 40 * PUB_COST
        held = sum(len(s.items) + len(s.keys) for s in store._streams.values())
        assert store._held == held
