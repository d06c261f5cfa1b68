"""Delta compression in the node's fan-out (hubbub/delta.py): who gets a delta and who the
publication in full, one delta per publication and one message per wire and form, and what
each member reconstructs (decoded as the SDKs do, with centrifuge-python's fossil decoder)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from centrifuge.fossil import apply_delta
from centrifuge.protocol import client_pb2 as sdk

from hubbub import delta as delta_module
from hubbub.config import Settings
from hubbub.core import fossil
from hubbub.core.types import Publication
from hubbub.delta import Negotiated
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.dialects.centrifuge.protowire import PROTOBUF
from hubbub.node import Node
from hubbub.wire import Wire
from tests.unit.test_node import MemoryTransport

CHANNEL = "d:doc"


@dataclass(eq=False)
class Subscriber:
    """A member that decodes what it gets as the SDK does: with delta negotiated, a delta is
    applied to the data it got last, anything else replaces it."""

    client_id: str
    wire: Wire
    transport: MemoryTransport
    delta: bool
    base: bytes | None = None
    kinds: list[str] = field(default_factory=list)  # "full", "delta" or "plain" per message

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        return forced

    def positioned(self, channel: str) -> bool:
        return False

    def received(self) -> list[Any]:
        """The data of every message not read yet, as JSON values."""
        out = []
        for message in self.transport.inbox:
            pub = self._pub(message)
            data: Any = pub["data"]
            if not self.delta:
                self.kinds.append("plain")
                out.append(json.loads(data) if isinstance(data, bytes) else data)
                continue
            raw = data if isinstance(data, bytes) else data.encode()
            if pub.get("delta"):
                assert self.base is not None, "a delta without a base"
                raw = bytes(apply_delta(self.base, raw))
                self.kinds.append("delta")
            else:
                self.kinds.append("full")
            self.base = raw
            out.append(json.loads(raw))
        self.transport.inbox.clear()
        return out

    def _pub(self, message: str | bytes) -> dict[str, Any]:
        if isinstance(message, str):
            push = json.loads(message)["push"]
            assert push["channel"] == CHANNEL
            return push["pub"]  # type: ignore[no-any-return]
        reply = sdk.Reply()
        reply.ParseFromString(_unprefixed(message))
        assert reply.push.channel == CHANNEL
        return {"data": reply.push.pub.data, "delta": reply.push.pub.delta}


def _unprefixed(message: bytes) -> bytes:
    """A length-delimited Reply's body."""
    shift = size = pos = 0
    while True:
        byte = message[pos]
        pos += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    assert len(message) - pos == size
    return message[pos:]


def settings(**options: Any) -> Settings:
    namespace = {"name": "d", "history_size": 20, "history_ttl": 60, **options}
    return Settings(channel={}, namespaces=[namespace])


def subscriber(name: str, wire: Wire = JSON, *, delta: bool = True) -> Subscriber:
    return Subscriber(name, wire, MemoryTransport(name), delta)


async def join(node: Node, sub: Subscriber, base: str | None = None) -> None:
    """Subscribe as the client does: pending, then live (delta negotiated or not)."""
    await node.add_pending(CHANNEL, sub)
    node.activate(CHANNEL, sub, 0, delta=Negotiated(base) if sub.delta else None)


def document(n: int) -> dict[str, Any]:
    """Similar documents: a delta of one from another is much smaller than either."""
    return {"n": n, "rows": [{"id": i, "name": f"row {i}", "v": i * n} for i in range(40)]}


def text(n: int) -> str:
    return json.dumps(document(n), separators=(",", ":"))


@pytest.fixture
def creates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fossil.create call the fan-out makes (the target's size)."""
    calls: list[int] = []
    real = fossil.create

    def counting(source: bytes, target: bytes, **kw: Any) -> bytes:
        calls.append(len(target))
        return real(source, target, **kw)

    monkeypatch.setattr(delta_module.fossil, "create", counting)
    return calls


@pytest.mark.parametrize("wire", [JSON, PROTOBUF], ids=["json", "protobuf"])
async def test_first_in_full_then_deltas_and_unmarked_ones_in_full(wire: Wire) -> None:
    """A delta member reconstructs every publication exactly; the first after subscribing and
    one not marked delta go in full, the others as deltas."""
    node = Node(settings(allowed_delta_types=["fossil"]))
    sub = subscriber("s", wire)
    await join(node, sub)
    for n in range(3):
        await node.publish(CHANNEL, text(n), delta=True)
    await node.publish(CHANNEL, text(3))  # not marked
    await node.publish(CHANNEL, text(4), delta=True)
    assert sub.received() == [document(n) for n in range(5)]
    assert sub.kinds == ["full", "delta", "delta", "full", "delta"]


async def test_delta_publish_marks_every_publication_of_the_namespace() -> None:
    node = Node(settings(allowed_delta_types=["fossil"], delta_publish=True))
    sub = subscriber("s")
    await join(node, sub)
    for n in range(3):
        await node.publish(CHANNEL, text(n))
    assert sub.received() == [document(n) for n in range(3)]
    assert sub.kinds == ["full", "delta", "delta"]


async def test_one_delta_per_publication_and_one_message_per_wire_and_form(
    creates: list[int],
) -> None:
    """JSON and Protobuf delta members, and plain members of both: one fossil.create per
    publication, and members of one wire and form share the very same message object."""
    node = Node(settings(delta_publish=True))
    json_deltas = [subscriber(f"j{i}") for i in range(3)]
    pb_deltas = [subscriber(f"p{i}", PROTOBUF) for i in range(3)]
    plain = [subscriber(f"x{i}", delta=False) for i in range(2)]
    for sub in (*json_deltas, *pb_deltas, *plain):
        await join(node, sub)
    for n in range(3):
        await node.publish(CHANNEL, text(n))
    assert len(creates) == 2  # the first publication had no previous one
    for group in (json_deltas, pb_deltas, plain):
        for i in range(3):
            assert all(s.transport.inbox[i] is group[0].transport.inbox[i] for s in group)
    assert isinstance(json_deltas[0].transport.inbox[0], str)
    assert json.loads(json_deltas[0].transport.inbox[0])["push"]["pub"]["data"] == text(0)
    # Protobuf in full is the plain message: nothing differs but for deltas.
    for sub in (*json_deltas, *pb_deltas, *plain):
        assert sub.received() == [document(n) for n in range(3)]
    assert plain[0].kinds == ["plain"] * 3
    assert pb_deltas[0].kinds == ["full", "delta", "delta"]


async def test_a_member_without_delta_gets_the_data_as_always() -> None:
    """On a channel with delta members, plain JSON members still get the data as a JSON
    value, never a string or a delta."""
    node = Node(settings(delta_publish=True))
    with_delta, without = subscriber("d"), subscriber("p", delta=False)
    await join(node, with_delta)
    await join(node, without)
    await node.publish(CHANNEL, text(0))
    await node.publish(CHANNEL, text(1))
    pubs = [json.loads(m)["push"]["pub"] for m in without.transport.inbox]
    assert [p["data"] for p in pubs] == [document(0), document(1)]
    assert not any("delta" in p for p in pubs)


async def test_a_late_subscriber_starts_in_full(creates: list[int]) -> None:
    node = Node(settings(delta_publish=True))
    early, late = subscriber("early"), subscriber("late")
    await join(node, early)
    await node.publish(CHANNEL, text(0))
    await join(node, late)
    await node.publish(CHANNEL, text(1))
    await node.publish(CHANNEL, text(2))
    assert early.received() == [document(0), document(1), document(2)]
    assert late.received() == [document(1), document(2)]
    assert early.kinds == ["full", "delta", "delta"]
    assert late.kinds == ["full", "delta"]
    assert len(creates) == 2


async def test_recovered_data_is_the_first_base() -> None:
    """After a recovery, the reply's last publication (its data given as ``base``) is what
    the next delta is made from."""
    node = Node(settings(delta_publish=True))
    sub = subscriber("s")
    sub.base = text(7).encode()  # what the SDK took from the subscribe reply
    await join(node, sub, base=text(7))
    await node.publish(CHANNEL, text(8))
    assert sub.received() == [document(8)]
    assert sub.kinds == ["delta"]


async def test_publications_buffered_while_subscribing_go_in_full_and_become_the_base() -> None:
    node = Node(settings(delta_publish=True))
    sub = subscriber("s")
    await node.add_pending(CHANNEL, sub)
    for n in range(3):
        await node.publish(CHANNEL, text(n))
    node.activate(CHANNEL, sub, 1, delta=Negotiated(text(0)))  # the reply carried offset 1
    await node.publish(CHANNEL, text(3))
    assert sub.received() == [document(1), document(2), document(3)]
    assert sub.kinds == ["full", "full", "delta"]


async def test_a_member_that_missed_a_publication_gets_the_next_in_full() -> None:
    """A member skipped for a publication (here: it got it in its subscribe reply already)
    keeps its base; the next delta is not made for it, so it gets that one in full."""
    node = Node(settings(delta_publish=True))
    a, b = subscriber("a"), subscriber("b")
    await join(node, a)
    node.handle_publication(CHANNEL, Publication(text(1), 1, delta=True))
    # b's reply covered offsets 1..2 (it holds 2's data); 2 then arrives live and is skipped.
    await node.add_pending(CHANNEL, b)
    node.activate(CHANNEL, b, 2, delta=Negotiated(text(2)))
    b.base = text(2).encode()
    node.handle_publication(CHANNEL, Publication(text(2), 2, delta=True))
    node.handle_publication(CHANNEL, Publication(text(3), 3, delta=True))
    assert a.received() == [document(1), document(2), document(3)]
    assert a.kinds == ["full", "delta", "delta"]
    assert b.received() == [document(3)]
    assert b.kinds == ["delta"]  # its base (2) is the node's previous one again


async def test_a_skipped_member_with_another_base_gets_the_next_in_full() -> None:
    node = Node(settings(delta_publish=True))
    a, b = subscriber("a"), subscriber("b")
    await join(node, a)
    node.handle_publication(CHANNEL, Publication(text(1), 1, delta=True))
    await node.add_pending(CHANNEL, b)
    node.activate(CHANNEL, b, 3, delta=Negotiated(text(3)))  # b holds 3 from its reply
    b.base = text(3).encode()
    node.handle_publication(CHANNEL, Publication(text(2), 2, delta=True))  # skipped for b
    node.handle_publication(CHANNEL, Publication(text(3), 3, delta=True))  # skipped for b
    node.handle_publication(CHANNEL, Publication(text(4), 4, delta=True))
    assert [d["n"] for d in a.received()] == [1, 2, 3, 4]
    assert b.received() == [document(4)]
    assert b.kinds == ["delta"]  # 3 is the node's previous data again: b holds it


async def test_a_delta_that_is_not_smaller_goes_in_full() -> None:
    node = Node(settings(delta_publish=True))
    sub = subscriber("s")
    await join(node, sub)
    await node.publish(CHANNEL, '{"a":1}')
    await node.publish(CHANNEL, "[true]")
    assert sub.received() == [{"a": 1}, [True]]
    assert sub.kinds == ["full", "full"]


async def test_data_over_the_bound_goes_in_full(
    monkeypatch: pytest.MonkeyPatch, creates: list[int]
) -> None:
    monkeypatch.setattr(delta_module, "MAX_DELTA_BYTES", 500)
    node = Node(settings(delta_publish=True))
    sub = subscriber("s")
    await join(node, sub)
    await node.publish(CHANNEL, text(0))  # ~1.5 KB
    await node.publish(CHANNEL, text(1))
    assert sub.received() == [document(0), document(1)]
    assert sub.kinds == ["full", "full"] and creates == []


class FailingWire:
    """The JSON codec, except that it cannot write deltas (unless ``deltas``), or anything at
    all while ``always``."""

    own_messages = True

    def __init__(self, *, deltas: bool = False) -> None:
        self.deltas = deltas
        self.always = False

    def publication(self, channel: str, pub: Publication) -> str:
        return JSON.publication(channel, pub)

    def delta_publication(self, channel: str, pub: Publication, patch: bytes | None) -> str:
        if (patch is not None and not self.deltas) or self.always:
            raise ValueError("cannot")
        return JSON.delta_publication(channel, pub, patch)

    def join(self, channel: str, info: object) -> None:
        return None

    def leave(self, channel: str, info: object) -> None:
        return None


async def test_a_wire_that_cannot_write_the_delta_sends_it_in_full() -> None:
    node = Node(settings(delta_publish=True))
    broken, fine = subscriber("broken", FailingWire()), subscriber("fine")
    await join(node, broken)
    await join(node, fine)
    for n in range(3):
        await node.publish(CHANNEL, text(n))
    assert broken.received() == fine.received() == [document(n) for n in range(3)]
    assert broken.kinds == ["full"] * 3
    assert fine.kinds == ["full", "delta", "delta"]


async def test_a_member_sent_nothing_is_not_sent_a_delta_of_it() -> None:
    """A publication its wire could not encode at all never reached the member: the next
    one goes to it in full, not as a delta from data it does not have."""
    node = Node(settings(delta_publish=True))
    wire = FailingWire(deltas=True)
    sub, other = subscriber("s", wire), subscriber("o")
    await join(node, sub)
    await join(node, other)
    await node.publish(CHANNEL, text(0))
    await node.publish(CHANNEL, text(1))
    wire.always = True
    await node.publish(CHANNEL, text(2))
    wire.always = False
    await node.publish(CHANNEL, text(3))
    await node.publish(CHANNEL, text(4))
    assert sub.received() == [document(n) for n in (0, 1, 3, 4)]
    assert sub.kinds == ["full", "delta", "full", "delta"]
    assert [d["n"] for d in other.received()] == [0, 1, 2, 3, 4]
    assert other.kinds == ["full", "delta", "delta", "delta", "delta"]


async def test_leaving_frees_the_channels_delta_state() -> None:
    node = Node(settings(delta_publish=True))
    a, b = subscriber("a"), subscriber("b")
    await join(node, a)
    await join(node, b)
    assert node._deltas.members(CHANNEL) == 2
    await node.remove_member(CHANNEL, a)
    assert node._deltas.members(CHANNEL) == 1
    await node.remove_member(CHANNEL, b)
    assert node._deltas.members(CHANNEL) == 0
    assert node._deltas.fan(CHANNEL, Publication("1")) is None


def test_a_wire_without_delta_forms_cannot_join() -> None:
    from hubbub.dialects.raw import RAW

    deltas = delta_module.Deltas()
    with pytest.raises(TypeError):
        deltas.join(CHANNEL, subscriber("raw", RAW), None)
