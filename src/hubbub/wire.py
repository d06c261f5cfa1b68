"""How a channel member's format turns channel events into messages: the node's one view of
wire formats.

Each member of a channel carries its :class:`Wire` (Centrifugo JSON, Centrifugo Protobuf, raw
frames). For every publication, join and leave the node asks each distinct wire among the
channel's members once for its message and posts that same object to every member of that
wire: one encoding per format, not per subscriber. The node imports no wire format.

Guarantees every wire gives: its methods are pure (no I/O, no awaiting) and return the same
message for the same arguments; a wire that does not carry joins and leaves returns None.

A :class:`DeltaWire` (the Centrifugo codecs) also writes publications for members that
negotiated delta compression (:mod:`hubbub.delta`): in full, or as a fossil delta against the
previous publication.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hubbub.core.types import ClientInfo, Publication


class Wire(Protocol):
    """One wire format as the fan-out sees it."""

    @property
    def own_messages(self) -> bool:
        """False: a member never gets the publications it sent itself (raw rooms)."""
        ...

    def publication(self, channel: str, pub: Publication) -> str | bytes:
        """The message a member of ``channel`` gets for ``pub``."""
        ...

    def join(self, channel: str, info: ClientInfo) -> str | bytes | None:
        """The message for a join push in ``channel``; None when this wire has none."""
        ...

    def leave(self, channel: str, info: ClientInfo) -> str | bytes | None:
        """The message for a leave push in ``channel``; None when this wire has none."""
        ...


@runtime_checkable
class DeltaWire(Wire, Protocol):
    """A wire that carries delta compression (``delta: "fossil"`` subscriptions)."""

    def delta_publication(self, channel: str, pub: Publication, patch: bytes | None) -> str | bytes:
        """The message a member that negotiated delta gets for ``pub``: with ``patch`` None,
        ``pub`` in full as such members get it (the JSON protocol sends the data as a JSON
        string); else ``pub`` with ``patch`` (a fossil delta from the previous publication's
        data to ``pub.data``, both as UTF-8) in place of its data and ``delta: true``."""
        ...
