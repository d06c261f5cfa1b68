"""A channel member as the node and its fan-out see it (:class:`Member`).

Whatever the dialect (a Centrifugo client, a raw room's connection), a member has a client id,
a wire (the format it gets channel events in, :mod:`hubbub.wire`) and a transport
(:mod:`hubbub.transport`); :class:`hubbub.node.Node` keeps members per channel.
"""

from __future__ import annotations

from typing import Protocol

from hubbub.transport import Transport
from hubbub.wire import Wire


class Member(Protocol):
    """A channel member as the fan-out sees it."""

    @property
    def client_id(self) -> str: ...

    @property
    def wire(self) -> Wire:
        """The format it gets channel events in."""
        ...

    @property
    def transport(self) -> Transport: ...

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        """Whether join/leave pushes of ``channel`` go to it: it asked for them, or ``forced``
        (the namespace's ``force_push_join_leave``) unless its subscription says otherwise."""
        ...

    def positioned(self, channel: str) -> bool:
        """Whether its stream position in ``channel`` is watched: a gap in the offsets the
        node is handed makes it resubscribe (:meth:`Node.handle_publication`)."""
        ...
