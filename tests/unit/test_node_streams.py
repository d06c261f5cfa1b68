"""The node's view of each channel's stream: gaps in the offsets it is handed (positioned
members resubscribe), and tags filters on what each member is handed."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from hubbub.core.tagsfilter import Filter
from hubbub.core.types import Publication
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.node import Node
from hubbub.wire import Wire
from tests.unit.test_node import MemoryTransport, history_settings, member


@dataclass(eq=False)
class WatchedClient:
    """A channel-protocol client as the node sees it (member and controlled client)."""

    client_id: str
    watched: bool = True
    wire: Wire = JSON
    user: str = ""
    transport: MemoryTransport = field(default_factory=lambda: MemoryTransport("t"))
    unsubscribed: list[tuple[str, int]] = field(default_factory=list)

    def wants_join_leave(self, channel: str) -> bool:
        return False

    def positioned(self, channel: str) -> bool:
        return self.watched

    async def insufficient_state(self, channel: str) -> None:
        self.unsubscribed.append((channel, 2500))  # (the client's choice: 2500 or 3010)

    async def server_unsubscribe(self, channel: str, code: int = 2000, reason: str = "") -> None:
        raise AssertionError("not used")

    async def server_subscribe(
        self, channel: str, info: object = None, data: object = None, override: object = None
    ) -> None:
        raise AssertionError("not used")

    def disconnect(self, code: int, reason: str) -> None:
        raise AssertionError("not used")


def offsets(transport: MemoryTransport) -> list[int]:
    return [json.loads(p)["push"]["pub"]["offset"] for p in transport.inbox]  # type: ignore[arg-type]


async def joined(node: Node, channel: str, client: WatchedClient, top: int) -> WatchedClient:
    node.register_client(client)
    await node.add_pending(channel, client)
    node.activate(channel, client, top)
    return client


def publish(node: Node, channel: str, *numbers: int, tags: dict[str, str] | None = None) -> None:
    for offset in numbers:
        node.handle_publication(channel, Publication('"x"', offset=offset, tags=tags))


async def settled() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_gap_makes_positioned_members_resubscribe_before_the_next_offset_reaches_them() -> (
    None
):
    node = Node(history_settings())
    watched = await joined(node, "h:c", WatchedClient("w"), 0)
    unwatched = await joined(node, "h:c", WatchedClient("u", watched=False), 0)
    raw = member("raw", True)
    await node.add_member("h:c", raw)
    publish(node, "h:c", 1, 2, 4)  # 3 was lost on its way
    await settled()
    assert offsets(watched.transport) == [1, 2], "4 must not move its position past the gap"
    assert watched.unsubscribed == [("h:c", 2500)]
    assert node.subscriber_count("h:c") == 2, "out of the channel at once"
    assert offsets(unwatched.transport) == [1, 2, 4] and not unwatched.unsubscribed
    assert len(raw.transport.inbox) == 3, "raw members have no position: they stay"
    assert node.gaps == 1


async def test_no_gap_for_consecutive_offsets_repeats_or_a_new_epoch() -> None:
    node = Node(history_settings())
    watched = await joined(node, "h:c", WatchedClient("w"), 0)
    publish(node, "h:c", 1, 2, 3, 3, 1, 2)  # a repeat, then a new epoch (history removed)
    await settled()
    assert not watched.unsubscribed and node.gaps == 0
    assert offsets(watched.transport) == [1, 2, 3, 3, 1, 2]


async def test_a_member_whose_reply_covered_the_missing_offsets_did_not_miss_them() -> None:
    """A member positioned at 7 by its subscribe reply while the node had handed over only 5:
    offsets 6 and 7 are in its reply; 8 after 5 is a gap for the others only."""
    node = Node(history_settings())
    early = await joined(node, "h:c", WatchedClient("early"), 0)
    publish(node, "h:c", 1, 2, 3, 4, 5)
    late = await joined(node, "h:c", WatchedClient("late"), 7)
    publish(node, "h:c", 8)
    await settled()
    assert early.unsubscribed == [("h:c", 2500)]
    assert not late.unsubscribed and offsets(late.transport) == [8]


async def test_the_first_offset_after_subscribing_upstream_is_checked_against_each_position() -> (
    None
):
    node = Node(history_settings())
    at_top = await joined(node, "h:c", WatchedClient("top"), 10)  # the channel stood at 10
    publish(node, "h:c", 11)
    await settled()
    assert not at_top.unsubscribed and node.gaps == 0, "a stream may start anywhere"
    other = Node(history_settings())
    behind = await joined(other, "h:c", WatchedClient("behind"), 10)
    publish(other, "h:c", 12)
    await settled()
    assert behind.unsubscribed == [("h:c", 2500)] and offsets(behind.transport) == []


async def test_a_gap_in_what_was_buffered_while_subscribing() -> None:
    node = Node(history_settings())
    client = WatchedClient("w")
    node.register_client(client)
    await node.add_pending("h:c", client)
    publish(node, "h:c", 5, 6, 8)  # buffered; 7 lost
    node.activate("h:c", client, 4)
    await settled()
    assert offsets(client.transport) == [5, 6]
    assert client.unsubscribed == [("h:c", 2500)] and node.subscriber_count("h:c") == 0
    fine = WatchedClient("fine")
    node.register_client(fine)
    await node.add_pending("h:c", fine)
    publish(node, "h:c", 9, 10)
    node.activate("h:c", fine, 8)
    await settled()
    assert offsets(fine.transport) == [9, 10] and not fine.unsubscribed


async def test_a_tags_filter_decides_per_member_live_and_buffered() -> None:
    node = Node(history_settings())
    wanted = Filter(key="team", cmp="eq", val="eng")
    filtered = WatchedClient("f")
    node.register_client(filtered)
    await node.add_pending("h:c", filtered)
    publish(node, "h:c", 1, tags={"team": "eng"})
    publish(node, "h:c", 2, tags={"team": "ops"})
    node.activate("h:c", filtered, 0, tags_filter=wanted)
    everyone = await joined(node, "h:c", WatchedClient("e"), 2)
    publish(node, "h:c", 3, tags={"team": "ops"})
    publish(node, "h:c", 4)
    publish(node, "h:c", 5, tags={"team": "eng"})
    await settled()
    assert offsets(filtered.transport) == [1, 5]
    assert offsets(everyone.transport) == [3, 4, 5]
    assert not filtered.unsubscribed, "offsets it was not handed are not a gap"
    await node.remove_member("h:c", filtered)
    assert not node._filters, "a member's filter goes with it"


async def test_a_channel_left_keeps_no_record_of_late_publications() -> None:
    """Publications still on their way when the last member left do not bring the channel's
    record back (it would never be dropped again)."""
    node = Node(history_settings())
    client = await joined(node, "h:c", WatchedClient("w"), 0)
    publish(node, "h:c", 1)
    await node.remove_member("h:c", client)
    publish(node, "h:c", 2, 3)
    assert node.last_offset("h:c") == 0 and not node._streams._last
