"""The delivery checker: what was published (and acknowledged) against what each subscriber
received. Pure: no I/O, no clock.

A publication is ``(publisher, seq)``: each publisher numbers its publications 0, 1, 2, ...
and publishes them in that order. For every subscriber the checker counts

- **lost**: acknowledged publications it was owed and never received;
- **duplicated**: receptions beyond the first of one publication;
- **reordered**: receptions whose ``seq`` is not above the last one received from the same
  publisher (a publisher's order must hold for everyone);
- **gaps** in offsets (history channels): a received offset that is not the previous + 1,
  where the checker is told offsets must be contiguous;
- **unacked**: publications never acknowledged (the publisher saw an error or was cut off):
  they may or may not arrive, and count as neither lost nor extra.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

Pub = tuple[str, int]  # (publisher, seq)


@dataclass(frozen=True, slots=True)
class Report:
    subscribers: int
    acked: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    gaps: int
    unacked_delivered: int

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.reordered or self.gaps)

    def __str__(self) -> str:
        return (
            f"{self.subscribers} subscribers, {self.acked} acknowledged, {self.delivered} "
            f"deliveries: lost={self.lost} duplicated={self.duplicated} "
            f"reordered={self.reordered} gaps={self.gaps} (unacknowledged delivered: "
            f"{self.unacked_delivered})"
        )


@dataclass
class _Received:
    pubs: list[Pub] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    #: Owed from this publisher's seq on (the subscriber joined later); None: everything.
    owed_from: dict[str, int] | None = None


class DeliveryChecker:
    """Record with :meth:`published` and :meth:`received`, then read :meth:`report`."""

    def __init__(self) -> None:
        self._acked: set[Pub] = set()
        self._sent: set[Pub] = set()
        self._subs: dict[str, _Received] = {}

    def published(self, publisher: str, seq: int, *, acked: bool) -> None:
        self._sent.add((publisher, seq))
        if acked:
            self._acked.add((publisher, seq))

    def subscriber(self, name: str, owed_from: dict[str, int] | None = None) -> None:
        """Declare a subscriber; ``owed_from``: per publisher, the first seq it is owed
        (publications before it joined are not owed)."""
        self._subs[name] = _Received(owed_from=owed_from)

    def owed_from(self, subscriber: str, publisher: str, seq: int) -> None:
        """``subscriber`` is owed ``publisher``'s publications from ``seq`` on (it joined
        after the earlier ones), whatever it received so far."""
        got = self._subs.setdefault(subscriber, _Received())
        got.owed_from = {**(got.owed_from or {}), publisher: seq}

    def received(self, subscriber: str, publisher: str, seq: int, offset: int = 0) -> None:
        got = self._subs.setdefault(subscriber, _Received())
        got.pubs.append((publisher, seq))
        if offset:
            got.offsets.append(offset)

    def received_all(self, subscriber: str, items: Iterable[tuple[str, int, int]]) -> None:
        for publisher, seq, offset in items:
            self.received(subscriber, publisher, seq, offset)

    def report(self, *, contiguous_offsets: bool = False) -> Report:
        lost = duplicated = reordered = gaps = delivered = unacked = 0
        for got in self._subs.values():
            counts = Counter(got.pubs)
            delivered += len(got.pubs)
            duplicated += sum(n - 1 for n in counts.values())
            unacked += sum(1 for pub in counts if pub not in self._acked)
            owed = self._acked
            if got.owed_from is not None:
                start = got.owed_from
                owed = {(p, s) for p, s in self._acked if p in start and s >= start[p]}
            lost += len(owed - counts.keys())
            last: dict[str, int] = {}
            for publisher, seq in got.pubs:
                if publisher in last and seq <= last[publisher]:
                    reordered += 1
                last[publisher] = max(seq, last.get(publisher, seq))
            if contiguous_offsets:
                gaps += sum(
                    1 for a, b in zip(got.offsets, got.offsets[1:], strict=False) if b != a + 1
                )
        return Report(
            len(self._subs), len(self._acked), delivered, lost, duplicated, reordered, gaps,
            unacked,
        )  # fmt: skip
