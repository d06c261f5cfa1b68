"""How long publishes take on a node: from accepted to stored and handed to fan-out.

Pure: the node reads the clock and passes the times in (:meth:`PublishLatency.handed`,
:meth:`PublishLatency.stored`). What is measured, per :class:`Source`:

- it starts when :meth:`hubbub.node.Node.publish` is called (the publish was accepted: the
  client's checks and ``on_publish`` hook, the server API's parameters are behind it);
- it ends when the publication was stored (when the channel keeps history) and handed on for
  fan-out: to this node's own fan-out when the broker delivers locally in the same call (the
  single-node broker), where the time of the fan-out loop itself is left out; to the engine
  (Redis, PostgreSQL) when the broker connects nodes, which hands it back to every node;
- a publish that fails (:class:`hubbub.errors.StoreError`) is not observed; an idempotent
  retry answered from memory is.

One :class:`hubbub.core.histogram.Histogram` per source, all with :data:`PUBLISH_BUCKETS`;
an observation allocates nothing of its own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from hubbub.core.histogram import Histogram


class Source(StrEnum):
    """Who published: the ``source`` label of ``hubbub_publish_duration_seconds``."""

    #: The server API (``/api/publish``, ``/api/broadcast``: one per channel).
    API = "api"
    #: A client: a Centrifugo-protocol publish command, a raw room member's message.
    CLIENT = "client"
    #: Code in the server process: ``Hub.publish`` (hooks, startup tasks), the demos.
    HUB = "hub"


#: Seconds: 25 us (the memory store) to 10 s (a stalled engine); SQLite's fsync and a
#: PostgreSQL or Redis round trip fall in the middle.
PUBLISH_BUCKETS: Final = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class PublishLatency:
    """The publish-duration histograms of one node, and the hand-over mark."""

    __slots__ = ("_handed", "_handed_at", "histograms")

    def __init__(self) -> None:
        self.histograms: dict[Source, Histogram] = {s: Histogram(PUBLISH_BUCKETS) for s in Source}
        self._handed: object = None
        self._handed_at = 0.0

    def handed(self, pub: object, now: float) -> None:
        """``pub`` reaches this node's fan-out at ``now`` (before the fan-out loop runs)."""
        self._handed = pub
        self._handed_at = now

    def stored(self, source: Source, pub: object, started: float, now: float) -> None:
        """The publish of ``source`` begun at ``started`` returned ``pub`` at ``now``: when
        the broker handed that very publication to this node's fan-out within the call (no
        other publication can be handed in between, as nothing awaits there), the duration
        ends at the hand-over; otherwise at ``now``."""
        end = self._handed_at if pub is self._handed else now
        self._handed = None
        self.histograms[source].observe(end - started)
