"""One publication handed to the live members of a channel on this node.

Guarantees (DESIGN.md §5): the publication is encoded at most once per wire (``encode``, the
node's, returns None for a wire that cannot write it: its members get nothing) and that one
object is posted to every member of the wire, in the channel's member order; a wire without
``own_messages`` does not get its sender's own publications; posting never awaits.
:func:`usual` is the loop for channels whose members are all alike; :func:`each` the one
where some are special: catching up (``skip``: they got it in their subscribe reply),
filtering by tags, or taking delta forms (:class:`hubbub.delta.Fan`). :func:`join_leave`
hands a join or leave to the members that want it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from hubbub.core.tagsfilter import Filter
from hubbub.core.types import ClientInfo, Publication
from hubbub.delta import Fan
from hubbub.wire import Wire

if TYPE_CHECKING:
    from hubbub.node import Member

log = logging.getLogger(__name__)

Encode = Callable[[Wire, str, Publication], "str | bytes | None"]


def usual(
    members: Collection[Member], channel: str, pub: Publication, encode: Encode, sender: str | None
) -> int:
    """Hand ``pub`` to every member; returns the deliveries."""
    # One message per wire (wires are few: a dict is enough).
    messages: dict[Wire, str | bytes | None] = {}
    delivered = 0
    for member in members:
        wire = member.wire
        if wire in messages:
            message = messages[wire]
        else:
            message = messages[wire] = encode(wire, channel, pub)
        if message is None or (not wire.own_messages and member.client_id == sender):
            continue
        member.transport.post(message)
        delivered += 1
    return delivered


def each(
    members: Collection[Member],
    channel: str,
    pub: Publication,
    encode: Encode,
    sender: str | None,
    skip: Collection[Member] | None,
    filters: Mapping[Member, Filter] | None,
    deltas: Fan | None,
) -> int:
    """As :func:`usual`, but members in ``skip`` get nothing, members with a filter only what
    it lets through, delta members their delta form; returns the deliveries. The members left
    out are found first (from ``skip`` and ``filters``, not per member), so that a
    publication every filter lets through costs what the usual loop does."""
    excluded: set[Member] = set(skip) if skip else set()
    if filters:
        tags = pub.tags
        excluded.update(member for member, flt in filters.items() if not flt.matches(tags))
    if deltas is None:
        if not excluded:
            return usual(members, channel, pub, encode, sender)
        return usual([m for m in members if m not in excluded], channel, pub, encode, sender)
    messages: dict[Wire, str | bytes | None] = {}
    delivered = 0
    in_delta = deltas.members
    for member in members:
        if excluded and member in excluded:
            continue
        wire = member.wire
        if member in in_delta:
            message = deltas.message(member)
        elif wire in messages:
            message = messages[wire]
        else:
            message = messages[wire] = encode(wire, channel, pub)
        if message is None or (not wire.own_messages and member.client_id == sender):
            continue
        member.transport.post(message)
        delivered += 1
    deltas.finish()
    return delivered


def join_leave(
    members: Collection[Member], channel: str, join: bool, info: ClientInfo, force: bool
) -> None:
    """A join (or leave) of ``info`` to the members that asked for them (all of them when the
    namespace forces, ``force``, but for a subscription whose token overrides that), in their
    wire's format, but not to ``info``'s own member where its wire gets no own messages;
    wires without joins and leaves (raw rooms) get nothing. A wire that cannot
    encode it is logged and its members skipped."""
    messages: dict[Wire, str | bytes | None] = {}
    for member in members:
        if member.wants_join_leave(channel, force):
            wire = member.wire
            if not wire.own_messages and member.client_id == info.client:
                continue  # (its own join: a Pusher member has the subscription reply)
            if wire in messages:
                message = messages[wire]
            else:
                try:
                    message = wire.join(channel, info) if join else wire.leave(channel, info)
                except Exception:
                    log.exception("%s: a join/leave could not be encoded", channel)
                    message = None
                messages[wire] = message
            if message is not None:
                member.transport.post(message)
