"""The node's rooms, with an in-memory Transport."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hubbub.errors import InvalidName
from hubbub.node import Node


@dataclass(eq=False)
class MemoryTransport:
    id: str
    inbox: list[str | bytes] = field(default_factory=list)
    closed_with: tuple[int, str] | None = None

    def post(self, message: str | bytes) -> None:
        self.inbox.append(message)

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def test_room_message_reaches_others_not_sender() -> None:
    node = Node()
    a, b, c = (MemoryTransport(x) for x in "abc")
    for t in (a, b, c):
        node.attach(t)
        node.join_room("r", t)
    assert node.room_message("r", "hi", sender=a) == 2
    assert node.room_message("r", b"\x00", sender=b) == 2
    assert (a.inbox, b.inbox, c.inbox) == ([b"\x00"], ["hi"], ["hi", b"\x00"])


def test_detach_leaves_every_room() -> None:
    node = Node()
    a, b = MemoryTransport("a"), MemoryTransport("b")
    for t in (a, b):
        node.attach(t)
    node.join_room("x", a)
    node.join_room("y", a)
    node.join_room("y", b)
    node.detach(a)
    assert node.connection_count == 1
    assert node.room_count() == 1
    assert node.room_message("y", "m", sender=b) == 0


def test_join_refuses_bad_names() -> None:
    node = Node()
    with pytest.raises(InvalidName):
        node.join_room("bad name", MemoryTransport("a"))


def test_close_all_closes_everyone_and_marks_closing() -> None:
    node = Node()
    conns = [MemoryTransport(str(i)) for i in range(3)]
    for t in conns:
        node.attach(t)
    node.close_all(1001, "going away")
    assert node.closing
    assert all(t.closed_with == (1001, "going away") for t in conns)
