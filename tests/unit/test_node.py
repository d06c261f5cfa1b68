"""The node's channels and fan-out, with in-memory transports and the memory engine."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from hubbub.config import Settings
from hubbub.core.types import FRAME_BINARY, ClientInfo, Publication
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.raw import RAW
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory
from hubbub.errors import StoreError
from hubbub.node import Node
from hubbub.wire import Wire


@dataclass(eq=False)
class MemoryTransport:
    id: str
    inbox: list[str | bytes] = field(default_factory=list)
    closed_with: tuple[int, str] | None = None

    def post(self, message: str | bytes) -> None:
        self.inbox.append(message)

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


@dataclass(eq=False)
class FakeMember:
    client_id: str
    wire: Wire
    transport: MemoryTransport
    join_leave: bool = False

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        return self.join_leave or forced

    def positioned(self, channel: str) -> bool:
        return False


def member(name: str, raw: bool | Wire) -> FakeMember:
    wire = raw if not isinstance(raw, bool) else (RAW if raw else JSON)
    return FakeMember(name, wire, MemoryTransport(name))


def history_settings() -> Settings:
    return Settings(channel={}, namespaces=[{"name": "h", "history_size": 10, "history_ttl": 60}])


async def test_raw_members_get_the_frame_but_not_their_own() -> None:
    """Raw members get the original frame (not the sender); JSON members get one push."""
    node = Node()
    a, b, j = member("a", True), member("b", True), member("j", False)
    for m in (a, b, j):
        await node.add_member("rooms:r", m)
    await node.publish("rooms:r", '{"base64":"aGk="}', info=ClientInfo("a", ""), frame=FRAME_BINARY)
    assert a.transport.inbox == []
    assert b.transport.inbox == [b"hi"]
    (push,) = j.transport.inbox
    assert isinstance(push, str)
    body = json.loads(push)["push"]
    assert body["channel"] == "rooms:r"
    assert body["pub"]["data"] == {"base64": "aGk="}


async def test_one_push_object_for_every_json_member() -> None:
    """Encode once: every JSON member receives the very same string object."""
    node = Node()
    members = [member(str(i), False) for i in range(5)]
    for m in members:
        await node.add_member("c", m)
    await node.publish("c", '{"x":1}')
    first = members[0].transport.inbox[0]
    assert all(m.transport.inbox[0] is first for m in members)
    assert node.deliveries == 5


async def test_history_offsets_increase() -> None:
    node = Node(history_settings())
    offsets = [(await node.publish("h:a", str(i))).offset for i in range(3)]
    assert offsets == [1, 2, 3]
    assert (await node.publish("plain", "1")).offset == 0


async def test_pending_member_gets_buffered_after_its_position() -> None:
    """Publications during a subscribe are buffered; activate delivers those after the
    position the member already has, then it is live."""
    node = Node(history_settings())
    m = member("m", False)
    await node.add_pending("h:a", m)
    for i in range(3):
        await node.publish("h:a", str(i))
    assert m.transport.inbox == []
    node.activate("h:a", m, after_offset=1)  # the reply covered offset 1
    await node.publish("h:a", "3")
    offsets = [json.loads(x)["push"]["pub"]["offset"] for x in m.transport.inbox]
    assert offsets == [2, 3, 4]


async def test_remove_member_and_counts() -> None:
    node = Node()
    a = member("a", False)
    await node.add_member("x", a)
    await node.add_member("y", a)
    assert node.member_channels(a) == {"x", "y"}
    await node.remove_member("x", a)
    assert node.channels() == ["y"]
    assert node.subscriber_count("y") == 1


def test_close_all_uses_each_connections_shutdown_code() -> None:
    node = Node()
    raw, proto = MemoryTransport("raw"), MemoryTransport("proto")
    node.attach(raw)
    node.attach(proto, (3001, "shutdown"))
    node.close_all()
    assert node.closing
    assert raw.closed_with == (1001, "going away")
    assert proto.closed_with == (3001, "shutdown")


class SlowSubscribeBroker(LocalBroker):
    """A broker whose subscribe takes until ``release`` is set, and can fail."""

    def __init__(self) -> None:
        super().__init__(MemoryHistory())
        self.release = asyncio.Event()
        self.fail = False
        self.calls = 0

    async def subscribe(self, channel: str) -> None:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise StoreError("engine down")


async def test_a_second_subscriber_waits_for_the_upstream_subscription() -> None:
    """Nobody reads a stream position before the broker delivers the channel to the node
    (else publications in between are missed), and the broker is asked once."""
    broker = SlowSubscribeBroker()
    node = Node(broker=broker)
    first = asyncio.create_task(node.add_pending("c", member("a", False)))
    second = asyncio.create_task(node.add_pending("c", member("b", False)))
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    broker.release.set()
    await asyncio.gather(first, second)
    assert broker.calls == 1


async def test_a_failed_upstream_subscription_fails_its_waiters_too() -> None:
    broker = SlowSubscribeBroker()
    broker.fail = True
    node = Node(broker=broker)
    first = asyncio.create_task(node.add_pending("c", member("a", False)))
    second = asyncio.create_task(node.add_pending("c", member("b", False)))
    await asyncio.sleep(0.01)
    broker.release.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    broker.fail = False  # the next subscriber asks the broker again
    await node.add_pending("c", member("c", False))
    assert broker.calls == 2


async def test_a_publication_read_from_history_is_not_delivered_again_live() -> None:
    """A store makes a publication readable before the broker hands it to the node: a
    member activated after a position that includes it must not get it again (found by the
    reliability suite's recovery storm)."""
    node = Node(history_settings())
    m = member("m", False)
    await node.add_pending("h:c", m)
    node.activate("h:c", m, 5)  # its subscribe reply covered offsets up to 5
    for offset in (4, 5, 6, 7):
        node.handle_publication("h:c", Publication('"x"', offset=offset))
    got = [json.loads(p)["push"]["pub"]["offset"] for p in m.transport.inbox]  # type: ignore[arg-type]
    assert got == [6, 7]
    assert not node._streams.catching_up("h:c"), "caught up: nothing left to filter"


async def test_a_member_positioned_after_what_it_was_handed_skips_nothing() -> None:
    """Only publications that may still be on their way are skipped: once the node has
    handed over offset N, a member positioned at N skips nothing, so a new epoch's 1, 2, 3
    (history removed) reach it (review finding: they were skipped)."""
    node = Node(history_settings())
    first, late = member("first", False), member("late", False)
    await node.add_member("h:c", first)
    for offset in range(1, 6):
        node.handle_publication("h:c", Publication('"old"', offset=offset))
    await node.add_pending("h:c", late)
    node.activate("h:c", late, 5)
    for offset in (1, 2, 3):  # a new epoch
        node.handle_publication("h:c", Publication('"new"', offset=offset))
    got = [json.loads(p)["push"]["pub"]["offset"] for p in late.transport.inbox]  # type: ignore[arg-type]
    assert got == [1, 2, 3]


class RecordingBroker(LocalBroker):
    """The memory engine, recording what the node sends on the control channel."""

    def __init__(self) -> None:
        super().__init__(MemoryHistory())
        self.controls: list[str] = []

    async def control(self, message: str) -> None:
        self.controls.append(message)


async def test_control_commands_from_other_nodes_apply_in_arrival_order() -> None:
    """A subscribe that waits (engine round trips) is not overtaken by the unsubscribe sent
    after it (review finding: each ran in its own task), nor by a refresh or a survey
    question after them: the question is answered with the state they left."""
    from hubbub.control import Control
    from hubbub.survey import Question

    calls: list[str] = []

    class Slow:
        client_id, user = "c1", "carol"

        async def server_subscribe(
            self, channel: str, info: object = None, data: object = None, override: object = None
        ) -> None:
            calls.append("subscribe start")
            await asyncio.sleep(0.05)
            calls.append("subscribe done")

        async def server_unsubscribe(
            self, channel: str, code: int = 2000, reason: str = ""
        ) -> None:
            calls.append("unsubscribe")

        def disconnect(self, code: int, reason: str) -> None:
            calls.append("disconnect")

        async def server_refresh(self, expired: bool, expire_at: int, info: object = None) -> None:
            calls.append(f"refresh {expired} {expire_at} {info}")

        def connection_info(self) -> dict[str, object]:
            before = list(calls)
            calls.append("described")
            return {"transport": "websocket", "after": before}

    broker = RecordingBroker()
    node = Node(broker=broker)
    node.register_client(Slow())
    other = "another-node"
    node.handle_control(Control("subscribe", "carol", channel="a").encode(other))
    node.handle_control(Control("unsubscribe", "carol", channel="a").encode(other))
    node.handle_control("[" * 100_000)  # garbage from the channel: ignored, nothing breaks
    node.handle_control('{"o": "x", "k": "refresh", "u": "carol", "expired": "yes"}')  # bad
    node.handle_control(Control("refresh", "carol", expire_at=9, info=1).encode(other))
    node.handle_control(Question(5, other, "connections", {"user": "carol"}).encode())
    for _ in range(100):
        if broker.controls:
            break
        await asyncio.sleep(0.01)
    assert calls == [
        "subscribe start",
        "subscribe done",
        "unsubscribe",
        "refresh False 9 1",
        "described",
    ]
    (sent,) = broker.controls
    answer = json.loads(sent)
    assert (answer["k"], answer["id"], answer["to"], answer["o"]) == ("answer", 5, other, node.uid)
    assert answer["r"]["connections"]["c1"]["after"] == calls[:4]
    await node.stop()


class BrokenWire:
    """A wire that cannot write anything."""

    own_messages = True

    def publication(self, channel: str, pub: Publication) -> str | bytes:
        raise ValueError("cannot")

    def join(self, channel: str, info: ClientInfo) -> str | bytes | None:
        raise ValueError("cannot")

    def leave(self, channel: str, info: ClientInfo) -> str | bytes | None:
        raise ValueError("cannot")


async def test_a_wire_that_cannot_encode_keeps_nothing_from_the_others() -> None:
    """One wire failing on a publication (or a join) skips its members only."""
    node = Node()
    broken, good = member("broken", BrokenWire()), member("good", False)
    for m in (broken, good):
        m.join_leave = True
        await node.add_member("c", m)
    await node.publish("c", '{"x":1}')
    node.handle_join("c", ClientInfo("z", ""))
    assert broken.transport.inbox == []
    assert [json.loads(x)["push"].keys() - {"channel"} for x in good.transport.inbox] == [
        {"pub"},
        {"join"},
    ]
    assert node.encode_failures == 1
