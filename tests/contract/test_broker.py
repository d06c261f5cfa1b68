"""Broker guarantees (hubbub.engines.base), for every engine."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.core.types import FRAME_STRING, FRAME_TEXT, ClientInfo, Publication
from hubbub.dialects.raw import RAW, room_publication
from hubbub.engines.base import HistoryOptions
from hubbub.engines.local import LocalBroker
from tests.contract.conftest import Engine, eventually, needs_fake_time
from tests.support.timing import scaled

KEEP = HistoryOptions(size=5, ttl=60)


class Handler:
    def __init__(self) -> None:
        self.pubs: list[tuple[str, Publication]] = []
        self.joins: list[tuple[str, str]] = []
        self.leaves: list[tuple[str, str]] = []
        self.controls: list[str] = []

    def handle_publication(self, channel: str, pub: Publication) -> None:
        self.pubs.append((channel, pub))

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.joins.append((channel, info.client))

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.leaves.append((channel, info.client))

    def handle_control(self, message: str) -> None:
        self.controls.append(message)


async def subscribed(engine: Engine, *channels: str) -> Handler:
    handler = Handler()
    engine.broker.register(handler)
    for channel in channels:
        await engine.broker.subscribe(channel)
    return handler


async def test_offsets_increase_by_one_and_delivery_is_in_order(engine: Engine) -> None:
    handler = await subscribed(engine, "a")
    for i in range(7):
        pub = await engine.broker.publish("a", Publication(str(i)), KEEP)
        assert pub.offset == i + 1
    await eventually(lambda: len(handler.pubs) == 7)
    assert [p.offset for _, p in handler.pubs] == list(range(1, 8))
    assert [p.data for _, p in handler.pubs] == [str(i) for i in range(7)]


async def test_publish_without_history_is_delivered_with_no_offset(engine: Engine) -> None:
    handler = await subscribed(engine, "a")
    pub = await engine.broker.publish("a", Publication('"x"'), None)
    assert pub.offset == 0
    await eventually(lambda: len(handler.pubs) == 1)
    assert handler.pubs == [("a", pub)]
    assert (
        await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    ).publications == []


async def test_history_keeps_the_last_size(engine: Engine) -> None:
    for i in range(8):
        await engine.broker.publish("a", Publication(str(i)), KEEP)
    result = await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    assert [p.offset for p in result.publications] == [4, 5, 6, 7, 8]
    assert result.position.offset == 8


async def test_history_since_limit_reverse(engine: Engine) -> None:
    for i in range(5):
        await engine.broker.publish("a", Publication(str(i)), KEEP)
    h = engine.broker.history
    assert [
        p.offset for p in (await h("a", since_offset=2, limit=-1, reverse=False)).publications
    ] == [3, 4, 5]
    assert [
        p.offset for p in (await h("a", since_offset=2, limit=2, reverse=False)).publications
    ] == [3, 4]
    assert [
        p.offset for p in (await h("a", since_offset=None, limit=2, reverse=True)).publications
    ] == [5, 4]
    assert [
        p.offset for p in (await h("a", since_offset=4, limit=-1, reverse=True)).publications
    ] == [3, 2, 1]
    only_position = await h("a", since_offset=None, limit=0, reverse=False)
    assert (only_position.publications, only_position.position.offset) == ([], 5)


async def test_ttl_drops_publications_but_keeps_the_position(engine: Engine) -> None:
    needs_fake_time(engine)
    for i in range(3):
        await engine.broker.publish("a", Publication(str(i)), KEEP)
    before = await engine.broker.position("a")
    engine.clock.advance(61)
    result = await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    assert result.publications == []
    assert result.position == before
    nxt = await engine.broker.publish("a", Publication("3"), KEEP)
    assert nxt.offset == 4


async def test_remove_history_changes_the_epoch(engine: Engine) -> None:
    await engine.broker.publish("a", Publication("1"), KEEP)
    old = await engine.broker.position("a")
    await engine.broker.remove_history("a")
    new = await engine.broker.position("a")
    assert new.epoch != old.epoch
    assert new.offset == 0


async def test_channels_have_separate_streams(engine: Engine) -> None:
    await engine.broker.publish("a", Publication("1"), KEEP)
    assert (await engine.broker.publish("b", Publication("1"), KEEP)).offset == 1
    assert (await engine.broker.position("a")).epoch != (await engine.broker.position("b")).epoch


async def test_join_and_leave_reach_the_handler(engine: Engine) -> None:
    handler = await subscribed(engine, "a")
    await engine.broker.publish_join("a", ClientInfo("c1", "u1"))
    await engine.broker.publish_leave("a", ClientInfo("c1", "u1"))
    await eventually(lambda: len(handler.leaves) == 1)
    assert (handler.joins, handler.leaves) == ([("a", "c1")], [("a", "c1")])


async def test_raw_frame_kind_is_not_kept_in_history(engine: Engine) -> None:
    await engine.broker.publish("a", Publication('"x"', frame=FRAME_STRING), KEEP)
    (stored,) = (
        await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    ).publications
    assert stored.frame == FRAME_TEXT


async def test_the_delta_mark_reaches_the_handler_but_not_history(engine: Engine) -> None:
    """A publication marked delta is handed over marked, with history and without, on every
    engine (each node computes its deltas itself); history gives it back unmarked."""
    handler = await subscribed(engine, "a")
    for history in (KEEP, None):
        await engine.broker.publish("a", Publication('{"v":1}', delta=True), history)
        await engine.broker.publish("a", Publication('{"v":2}'), history)
    await eventually(lambda: len(handler.pubs) == 4)
    assert [(p.data, p.delta) for _, p in handler.pubs] == [
        ('{"v":1}', True),
        ('{"v":2}', False),
    ] * 2
    result = await engine.broker.history("a", since_offset=None, limit=10, reverse=False)
    assert [(p.data, p.delta) for p in result.publications] == [
        ('{"v":1}', False),
        ('{"v":2}', False),
    ]


@pytest.mark.parametrize("history", [KEEP, None], ids=["history", "no-history"])
async def test_raw_frame_reaches_the_handler_byte_for_byte(
    engine: Engine, history: HistoryOptions | None
) -> None:
    """A raw-room frame is delivered as it was sent, text as text and binary as binary,
    whichever engine carries it between nodes: its data verbatim and its frame kind."""
    handler = await subscribed(engine, "a")
    frames: list[str | bytes] = ["hello", '{"b": 1,  "a":[1,2]}', 'quote " and \\ \n', "ü€𝄞"]
    frames += [b"\x00\xff\n", b""]
    frames += ['{\n  "spaced":  true\n}']
    sent = [room_publication(frame) for frame in frames]
    for data, kind in sent:
        await engine.broker.publish("a", Publication(data, frame=kind), history)
    await eventually(lambda: len(handler.pubs) == len(frames))
    assert [(p.data, p.frame) for _, p in handler.pubs] == sent
    got = [RAW.publication("a", p) for _, p in handler.pubs]
    assert got == frames
    assert [type(r) for r in got] == [type(f) for f in frames]


async def test_idempotent_publish_returns_the_original(engine: Engine) -> None:
    """A repeated key within the window: same offset, nothing delivered twice."""
    handler = await subscribed(engine, "a")
    first = await engine.broker.publish("a", Publication("1"), KEEP, "key-1")
    again = await engine.broker.publish("a", Publication("1"), KEEP, "key-1")
    other = await engine.broker.publish("a", Publication("2"), KEEP, "key-2")
    assert (first.offset, again.offset, other.offset) == (1, 1, 2)
    await eventually(lambda: len(handler.pubs) >= 2)
    assert [p.offset for _, p in handler.pubs] == [1, 2]


async def test_concurrent_retries_store_one_publication(engine: Engine) -> None:
    """100 retries of one keyed publish, many in flight together, yield one publication."""
    import asyncio

    handler = await subscribed(engine, "a")
    results = await asyncio.gather(
        *(engine.broker.publish("a", Publication('"x"'), KEEP, "same") for _ in range(50))
    )
    for _ in range(50):
        results.append(await engine.broker.publish("a", Publication('"x"'), KEEP, "same"))
    assert {p.offset for p in results} == {1}
    await eventually(lambda: len(handler.pubs) >= 1)
    assert len(handler.pubs) == 1
    history = await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    assert [p.offset for p in history.publications] == [1]


async def test_idempotency_window_expires(engine: Engine) -> None:
    needs_fake_time(engine)
    await engine.broker.publish("a", Publication("1"), KEEP, "k")
    engine.clock.advance(KEEP.idempotency_ttl + 1)
    again = await engine.broker.publish("a", Publication("1"), KEEP, "k")
    assert again.offset == 2


async def test_publication_fields_round_trip(engine: Engine) -> None:
    info = ClientInfo("c1", "ada", '{"role":"admin"}', '{"seat":3}')
    sent = Publication('{"x":[1,2]}', info=info, tags={"k": "v"}, time_ms=1234)
    await engine.broker.publish("a", sent, KEEP)
    (got,) = (
        await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    ).publications
    assert (got.data, got.info, got.tags, got.time_ms, got.offset) == (
        sent.data,
        info,
        {"k": "v"},
        1234,
        1,
    )


async def test_position_of_a_new_channel_is_stable(engine: Engine) -> None:
    """A client positioned on an empty channel can recover later: the epoch must not change."""
    first = await engine.broker.position("fresh")
    assert first.offset == 0
    assert await engine.broker.position("fresh") == first
    await engine.broker.publish("fresh", Publication("1"), KEEP)
    assert (await engine.broker.position("fresh")).epoch == first.epoch


async def test_meta_ttl_starts_a_new_epoch(engine: Engine) -> None:
    needs_fake_time(engine)
    await engine.broker.publish("a", Publication("1"), KEEP)
    old = await engine.broker.position("a")
    engine.clock.advance(3601)
    new = await engine.broker.position("a")
    assert new.epoch != old.epoch
    assert new.offset == 0


async def test_durable_engines_keep_streams_across_restarts(engine: Engine) -> None:
    """Durable stores: offsets, epoch and publications survive closing and reopening."""
    if engine.reopen is None:
        pytest.skip("not a durable engine")
    for i in range(3):
        await engine.broker.publish("a", Publication(str(i)), KEEP)
    before = await engine.broker.position("a")
    await engine.broker.close()
    engine.broker = await engine.reopen()
    assert await engine.broker.position("a") == before
    assert (await engine.broker.publish("a", Publication("3"), KEEP)).offset == 4
    history = await engine.broker.history("a", since_offset=None, limit=-1, reverse=False)
    assert [p.data for p in history.publications] == ["0", "1", "2", "3"]


async def test_large_publications_are_delivered_whole_and_in_order(engine: Engine) -> None:
    """Bigger than PostgreSQL's NOTIFY limit (8000 bytes): still one order per channel."""
    handler = await subscribed(engine, "a")
    sizes = [10, 20_000, 10, 9_000, 10]
    for i, size in enumerate(sizes):
        await engine.broker.publish("a", Publication(f'"{str(i) * size}"'), KEEP)
    await engine.broker.publish("a", Publication(f'"{"x" * 30_000}"'), None)
    await eventually(lambda: len(handler.pubs) == 6)
    got = [(p.offset, len(p.data) - 2) for _, p in handler.pubs]
    assert got == [(1, 10), (2, 20_000), (3, 10), (4, 9_000), (5, 10), (0, 30_000)]


async def test_equal_publications_without_history_are_each_delivered(engine: Engine) -> None:
    handler = await subscribed(engine, "a")
    await asyncio.gather(
        *(engine.broker.publish("a", Publication('"same"'), None) for _ in range(5))
    )
    await eventually(lambda: len(handler.pubs) == 5)


async def test_unsubscribed_channels_are_not_delivered(engine: Engine) -> None:
    """Only where the engine fans out between nodes; the local broker hands everything to
    the node, which filters by its own subscribers."""
    handler = await subscribed(engine, "a", "b")
    await engine.broker.unsubscribe("b")
    await engine.broker.publish("b", Publication('"gone"'), None)
    await engine.broker.publish("a", Publication('"here"'), None)
    await eventually(lambda: len(handler.pubs) >= 1)
    if isinstance(engine.broker, LocalBroker):
        return
    await asyncio.sleep(scaled(0.2))  # the two channels have no order between them
    assert [(c, p.data) for c, p in handler.pubs] == [("a", '"here"')]


async def test_control_messages_reach_every_other_node_in_order(engine: Engine) -> None:
    """Whatever the other node subscribed to; large ones too (PostgreSQL's NOTIFY limit)."""
    if isinstance(engine.broker, LocalBroker):
        await engine.broker.control('{"k":"x"}')  # one node: nothing to reach, no error
        return
    assert engine.reopen is not None
    other = await engine.reopen()
    try:
        handler = Handler()
        other.register(handler)
        # Connected: its control channel is listened to (Redis confirms it asynchronously).
        await eventually(lambda: bool(getattr(other, "connected", False)))
        messages = ['{"n":1}', '{"n":2,"big":"' + "x" * 9000 + '"}', '{"n":3}']
        for message in messages:
            await engine.broker.control(message)
        await eventually(lambda: len(handler.controls) >= 3)
        assert handler.controls == messages
    finally:
        await other.close()


async def test_a_channel_subscribed_again_while_it_is_being_left_gets_what_follows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``subscribe`` returns once publications reach the node, also when the broker was still
    leaving the channel (a node's last subscriber left, a new one came): what is published
    after it returns is delivered. Redis: its listener is held just after its UNSUBSCRIBE went
    out, the moment a resubscribe once took the channel for still subscribed."""
    handler = await subscribed(engine, "c")
    left = asyncio.Event()
    from hubbub.engines.redis import RedisBroker

    if isinstance(engine.broker, RedisBroker):
        from redis.asyncio.client import PubSub

        unsubscribe = PubSub.unsubscribe

        async def slow_unsubscribe(self: PubSub, *args: object) -> object:
            done = await unsubscribe(self, *args)
            left.set()
            await asyncio.sleep(scaled(0.5))  # UNSUBSCRIBE sent: Redis no longer sends "c"
            return done

        monkeypatch.setattr(PubSub, "unsubscribe", slow_unsubscribe)
    else:
        left.set()
    await engine.broker.unsubscribe("c")
    await asyncio.wait_for(left.wait(), scaled(5))
    await engine.broker.subscribe("c")
    await engine.broker.publish("c", Publication('"after"'), None)
    await eventually(lambda: len(handler.pubs) == 1)
