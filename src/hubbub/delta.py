"""Delta compression on a node: the channel members that negotiated it, the data each of them
holds as its base, and one publication's messages for them.

The rule is Centrifugo's, as its SDKs apply it: a subscription with delta compression gets
every publication of its channel in its wire's delta form (:class:`hubbub.wire.DeltaWire`). A
publication marked delta (``Publication.delta``) goes out as a fossil delta
(:mod:`hubbub.core.fossil`) from the data of the previous publication the subscriber received
to its own data; any other publication, and the first one after subscribing, goes out in full.
The SDK keeps the data it got last and applies the next delta to it.

How the node keeps that exact: per channel, ``prev`` is the data the channel's delta members
hold as their base (the last publication this node handed them); members holding something
else (they subscribed since, were skipped, a message could not be encoded for them) are kept
with their own base in ``stale``. One publication's delta is computed once, from ``prev``, and
sent to every member whose base is ``prev``; the others get the publication in full, and from
then on hold it. The base is never taken from the stream or from another node: a publication
this node never got (Redis pub/sub is at most once) is one none of its members got either, and
a member is never sent a delta from data it does not have, whatever the channel's history.

Guarantees:

- per publication and channel, at most one delta is computed and each message is encoded once
  per wire and form (full or delta), whatever the number of members;
- a member gets a delta only from the data it received last in this subscription, else the
  publication in full; a delta is sent only when it is smaller than the data;
- bounded: the state is a few references per channel with delta members and per such member;
  data over :data:`MAX_DELTA_BYTES` (either side) goes out in full, so a delta costs at most
  tens of milliseconds (fossil's search is bounded too).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from hubbub.core import fossil
from hubbub.core.types import Publication
from hubbub.wire import DeltaWire, Wire

log = logging.getLogger(__name__)

#: Largest data (UTF-8 bytes, the previous or the new one) a delta is computed for.
MAX_DELTA_BYTES: Final = 1024 * 1024
#: The delta compressions a subscribe may ask for (others are a bad request, as Centrifugo's).
DELTA_TYPES: Final = frozenset({"fossil"})


class Member(Protocol):
    """A channel member as delta compression sees it (:class:`hubbub.node.Member`)."""

    @property
    def wire(self) -> Wire: ...


@dataclass(frozen=True, slots=True)
class Negotiated:
    """A subscription that negotiated delta compression, as its subscribe reply left it:
    ``base`` is the data of the reply's last publication (recovered), None without one."""

    base: str | None = None


class _Channel:
    """The delta members of one channel and their bases (see the module docstring)."""

    __slots__ = ("members", "prev", "stale")

    def __init__(self) -> None:
        self.members: dict[Member, DeltaWire] = {}
        self.prev: str | None = None
        self.stale: dict[Member, str | None] = {}


_UNSET: Final = object()


class Fan:
    """One publication's messages for the delta members of its channel: :meth:`message` for
    each member the node delivers it to, then :meth:`finish` once."""

    __slots__ = (
        "_channel",
        "_current",
        "_full",
        "_got",
        "_name",
        "_owner",
        "_patch",
        "_pub",
        "members",
    )

    def __init__(self, owner: Deltas, name: str, channel: _Channel, pub: Publication) -> None:
        self._owner = owner
        self._name = name
        self._channel = channel
        #: The channel's delta members (``member in fan.members``: send it :meth:`message`).
        self.members: Mapping[Member, DeltaWire] = channel.members
        self._pub = pub
        self._patch: object = _UNSET
        # Per wire: the message for members holding ``prev``, and the one in full.
        self._current: dict[DeltaWire, str | bytes | None] = {}
        self._full: dict[DeltaWire, str | bytes | None] = {}
        self._got: list[Member] = []

    def message(self, member: Member) -> str | bytes | None:
        """What ``member`` (one of :attr:`members`) is sent; None when its wire could not
        encode the publication (it is then not sent anything)."""
        channel = self._channel
        wire = channel.members[member]
        stale = channel.stale
        if stale and member in stale and stale[member] != channel.prev:
            message = self._in_full(wire)  # it holds other data than the delta's base
        elif wire in self._current:
            message = self._current[wire]
        else:
            patch = self._delta() if self._pub.delta and channel.prev is not None else None
            if patch is None:
                message = self._current[wire] = self._in_full(wire)
            else:
                message = self._current[wire] = self._encode(wire, patch)
        if message is not None:
            self._got.append(member)
        return message

    def _in_full(self, wire: DeltaWire) -> str | bytes | None:
        if wire in self._full:
            return self._full[wire]
        message = self._full[wire] = self._encode(wire, None)
        return message

    def _delta(self) -> bytes | None:
        """The delta from ``prev`` to this publication's data (computed once); None when it
        would not be smaller or the data cannot be a delta's (too big, not UTF-8)."""
        if self._patch is _UNSET:
            self._patch = None
            channel = self._channel
            assert channel.prev is not None
            try:
                source = channel.prev.encode()
                target = self._pub.data.encode()
            except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it
                return None
            if len(source) <= MAX_DELTA_BYTES and len(target) <= MAX_DELTA_BYTES:
                patch = fossil.create(source, target)
                if len(patch) < len(target):
                    self._patch = patch
        return self._patch if isinstance(self._patch, bytes) else None

    def _encode(self, wire: DeltaWire, patch: bytes | None) -> str | bytes | None:
        try:
            return wire.delta_publication(self._name, self._pub, patch)
        except Exception:
            if patch is not None:  # in full, then: the member ends up with the same data
                return self._in_full(wire)
            self._owner.failed(self._name)
            return None

    def finish(self) -> None:
        """The members that were sent the publication now hold its data; the others keep
        what they had."""
        got = self._got
        if not got:
            return
        channel = self._channel
        if len(got) == len(channel.members):
            channel.stale.clear()
        else:
            received = set(got)
            for member in channel.members:
                if member not in received and member not in channel.stale:
                    channel.stale[member] = channel.prev
            for member in got:
                channel.stale.pop(member, None)
        channel.prev = self._pub.data


class Deltas:
    """The node's channels with delta members (see the module docstring)."""

    __slots__ = ("_channels", "encode_failures")

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        #: Publications a wire could not write in full for delta members (never sent them).
        self.encode_failures = 0

    def fan(self, name: str, pub: Publication) -> Fan | None:
        """The messages of ``pub`` for ``name``'s delta members; None without any."""
        channel = self._channels.get(name)
        return Fan(self, name, channel, pub) if channel is not None else None

    def full(self, name: str, wire: Wire, pub: Publication) -> str | bytes | None:
        """``pub`` in full for a delta member of ``name`` (publications buffered while it
        subscribed); None when it cannot be encoded (logged)."""
        try:
            return _delta_wire(wire).delta_publication(name, pub, None)
        except Exception:
            self.failed(name)
            return None

    def failed(self, name: str) -> None:
        """A wire could not write a publication (called in the ``except`` block)."""
        self.encode_failures += 1
        if self.encode_failures % 1000 == 1:  # one log line per thousand, not a flood
            log.exception(
                "%s: a publication could not be encoded for delta members (%d so far)",
                name,
                self.encode_failures,
            )

    def join(self, name: str, member: Member, base: str | None) -> None:
        """``member`` negotiated delta in ``name`` and holds ``base`` (the data of the last
        publication it was sent since it subscribed; None: nothing yet)."""
        wire = _delta_wire(member.wire)
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
            channel.prev = base
        elif base != channel.prev:
            channel.stale[member] = base
        channel.members[member] = wire

    def leave(self, name: str, member: Member) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.members.pop(member, None)
        channel.stale.pop(member, None)
        if not channel.members:
            del self._channels[name]

    def members(self, name: str) -> int:
        """How many members of ``name`` negotiated delta on this node."""
        channel = self._channels.get(name)
        return len(channel.members) if channel is not None else 0


def _delta_wire(wire: Wire) -> DeltaWire:
    if not isinstance(wire, DeltaWire):
        raise TypeError(f"{wire!r} does not carry delta compression")
    return wire
