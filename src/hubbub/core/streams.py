"""Where each channel's stream stands on this node, and where each new member starts in it.

Pure bookkeeping for the node's fan-out (no I/O; times are passed in). Two facts per channel:

- the newest offset the broker handed over (:meth:`Streams.handed`); offsets that skip
  numbers mean publications were lost on the way (Redis pub/sub and PostgreSQL NOTIFY deliver
  at most once): :meth:`Streams.handed` returns the previous offset so that the node can tell;
- the members that are *catching up*: a store makes a publication readable (history,
  recovery) before the broker hands it to the node, so a member positioned at N by its
  subscribe reply may still be handed N or less live. :meth:`Streams.behind` records such a
  member, :meth:`Streams.skipping` says which members skip an offset.

Guarantees: a member skips only offsets in ``(newest handed over when it went live, its
position]``, only until its window ends, and leaves the catching-up set at its position, at
the first offset past it, at an offset not above the newest handed over before it went live
(a new epoch), and when its window has passed; :meth:`Streams.position` is where a member's
stream stands (its catch-up position, or the channel's newest offset if that is further).
"""

from __future__ import annotations

from typing import Generic, TypeVar

M = TypeVar("M")  # members: hashable


class Streams(Generic[M]):
    """Stream positions of the channels of one node; see the module docstring."""

    __slots__ = ("_behind", "_last")

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        # channel -> member -> (low, top, until): skip offsets in (low, top] until ``until``
        self._behind: dict[str, dict[M, tuple[int, int, float]]] = {}

    def last(self, channel: str) -> int:
        """The newest offset handed over in ``channel`` (0: none yet)."""
        return self._last.get(channel, 0)

    def handed(self, channel: str, offset: int) -> int:
        """Record ``offset`` (> 0) as the newest handed over; returns the one before (0:
        none since the channel was last forgotten)."""
        previous = self._last.get(channel, 0)
        self._last[channel] = offset
        return previous

    def behind(self, channel: str, member: M, seen: int, top: int, until: float) -> None:
        """``member`` went live at position ``top`` while the newest offset handed over to it
        was ``seen`` (< top): it skips offsets in ``(seen, top]`` until time ``until``."""
        self._behind.setdefault(channel, {})[member] = (seen, top, until)

    def catching_up(self, channel: str) -> bool:
        return channel in self._behind

    def position(self, channel: str, member: M, newest: int) -> int:
        """The offset ``member``'s stream in ``channel`` has reached on this node when
        ``newest`` was the newest offset handed over: its catch-up position if that is
        further."""
        entry = self._behind.get(channel, {}).get(member)
        return newest if entry is None else max(newest, entry[1])

    def skipping(self, channel: str, offset: int, now: float) -> set[M]:
        """The members that got ``offset`` in their subscribe reply already (they leave the
        catching-up set as the module docstring says)."""
        behind = self._behind.get(channel)
        if not behind:
            return set()
        skip = set()
        done = []
        for member, (low, top, until) in behind.items():
            if now <= until and low < offset <= top:
                skip.add(member)
                if offset == top:
                    done.append(member)
            else:
                done.append(member)
        for member in done:
            del behind[member]
        if not behind:
            del self._behind[channel]
        return skip

    def forget_member(self, channel: str, member: M) -> None:
        behind = self._behind.get(channel)
        if behind is not None and behind.pop(member, None) is not None and not behind:
            del self._behind[channel]

    def forget_channel(self, channel: str) -> None:
        """The node no longer gets ``channel`` (its next offset starts a new record)."""
        self._last.pop(channel, None)
        self._behind.pop(channel, None)
