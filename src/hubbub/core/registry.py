"""The subscription registry: who is in which channel (or room), nothing else.

Pure bookkeeping with no I/O. Guarantees:

- ``subscribers(channel)`` yields members in the order they joined; the node fans out in that
  order, so every member of a channel sees one order of messages.
- ``subscribe`` says whether the member is the channel's *first* local one and ``unsubscribe``
  / ``remove`` whether a channel became *empty*: the node subscribes upstream (to a broker) only
  on the first and unsubscribes on the last.
- Mutations never happen behind a caller's back: iterating ``subscribers()`` is safe as long as
  the caller itself does not subscribe/unsubscribe while iterating.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Generic, TypeVar

S = TypeVar("S")  # members must be hashable (identity hashing is fine)


class Registry(Generic[S]):
    """Maps channels to their members and members to their channels."""

    __slots__ = ("_by_channel", "_by_member")

    def __init__(self) -> None:
        self._by_channel: dict[str, dict[S, None]] = {}
        # A list, not a set: most members are in one or a few channels, and a one-item list
        # is a quarter of a set's size (it counts per connection).
        self._by_member: dict[S, list[str]] = {}

    def subscribe(self, channel: str, member: S) -> bool:
        """Add ``member`` to ``channel``. True if the channel had no member before.

        Subscribing a member that is already in the channel changes nothing and returns False.
        """
        members = self._by_channel.get(channel)
        first = members is None
        if members is None:
            members = self._by_channel[channel] = {}
        elif member in members:
            return False
        members[member] = None
        self._by_member.setdefault(member, []).append(channel)
        return first

    def unsubscribe(self, channel: str, member: S) -> bool:
        """Remove ``member`` from ``channel``. True if the channel became empty.

        Removing a member that is not in the channel changes nothing and returns False.
        """
        members = self._by_channel.get(channel)
        if members is None or member not in members:
            return False
        del members[member]
        channels = self._by_member[member]
        channels.remove(channel)
        if not channels:
            del self._by_member[member]
        if members:
            return False
        del self._by_channel[channel]
        return True

    def remove(self, member: S) -> list[str]:
        """Remove ``member`` from every channel; return the channels that became empty."""
        emptied = []
        for channel in sorted(self._by_member.get(member, ())):
            if self.unsubscribe(channel, member):
                emptied.append(channel)
        return emptied

    def subscribers(self, channel: str) -> Collection[S]:
        """The members of ``channel`` in join order (empty when there are none)."""
        members = self._by_channel.get(channel)
        return members.keys() if members is not None else ()

    def channels_of(self, member: S) -> frozenset[str]:
        """The channels ``member`` is in."""
        return frozenset(self._by_member.get(member, ()))

    def is_subscribed(self, channel: str, member: S) -> bool:
        members = self._by_channel.get(channel)
        return members is not None and member in members

    def channels(self) -> Iterator[str]:
        """Channels with at least one member."""
        return iter(self._by_channel)

    def channel_count(self) -> int:
        return len(self._by_channel)

    def member_count(self) -> int:
        """Members in at least one channel."""
        return len(self._by_member)

    def subscription_count(self) -> int:
        """(channel, member) pairs."""
        return sum(len(members) for members in self._by_channel.values())
