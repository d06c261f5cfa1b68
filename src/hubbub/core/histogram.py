"""A Prometheus-style histogram of fixed buckets: pure, values are passed in.

What is guaranteed:

- :meth:`Histogram.observe` costs one bisection into the bounds, one list item increment and
  one float addition; it builds no object of its own (no list, tuple or dict per call), so
  it may sit on a hot path.
- Buckets are *less or equal* (Prometheus ``le``): a value equal to a bound counts in that
  bound's bucket; a value above the last bound counts only in ``+Inf``.
- :meth:`Histogram.cumulative` gives each bound with the number of values ``<=`` it, then
  ``+Inf`` with the total, as Prometheus' text format wants them; ``count`` is that total and
  ``sum`` the sum of every value observed. Nothing is ever forgotten or reset.
- The bounds are fixed at construction: sorted, strictly increasing, finite.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import pairwise


class Histogram:
    """Counts of values per bucket, their sum and number (see the module docstring)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in bounds)
        if not bounds:
            raise ValueError("a histogram needs at least one bucket bound")
        if any(not math.isfinite(b) for b in bounds):
            raise ValueError("bucket bounds must be finite (+Inf is always added)")
        if any(a >= b for a, b in pairwise(bounds)):
            raise ValueError("bucket bounds must be strictly increasing")
        self.bounds = bounds
        #: Values per bucket (not cumulative): one per bound, then the one above the last.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` (seconds, bytes: the unit of the bounds)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """How many values were observed."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(bound, values <= bound)`` for every bound, then ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
