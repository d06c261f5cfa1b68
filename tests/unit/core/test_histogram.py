"""Histogram: ``le`` buckets, cumulative counts, sum and count; publish latency per source."""

from __future__ import annotations

import math

import pytest

from hubbub.core.histogram import Histogram
from hubbub.core.publishlatency import PUBLISH_BUCKETS, PublishLatency, Source


def test_a_value_equal_to_a_bound_counts_in_that_bucket() -> None:
    """Buckets are less-or-equal, as Prometheus' le."""
    h = Histogram([0.1, 1.0])
    h.observe(0.1)
    h.observe(1.0)
    h.observe(1.5)
    h.observe(0.0)
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (math.inf, 4)]
    assert h.count == 4
    assert h.sum == pytest.approx(2.6)


def test_an_empty_histogram_renders_every_bucket_at_zero() -> None:
    """Every bound is there before the first value (the series exist from the first scrape)."""
    h = Histogram(PUBLISH_BUCKETS)
    assert [n for _, n in h.cumulative()] == [0] * (len(PUBLISH_BUCKETS) + 1)
    assert h.count == 0 and h.sum == 0.0


@pytest.mark.parametrize("bounds", [[], [1.0, 1.0], [2.0, 1.0], [1.0, math.inf], [math.nan]])
def test_bad_bounds_are_refused(bounds: list[float]) -> None:
    """Bounds are finite and strictly increasing, at least one."""
    with pytest.raises(ValueError):
        Histogram(bounds)


def test_the_publish_ends_at_the_hand_over_when_the_broker_fanned_out_in_the_call() -> None:
    """The local fan-out loop's time (between hand-over and return) is left out."""
    latency = PublishLatency()
    pub = object()
    latency.handed(pub, now=10.002)
    latency.stored(Source.CLIENT, pub, started=10.0, now=10.5)
    client = latency.histograms[Source.CLIENT]
    assert client.count == 1 and client.sum == pytest.approx(0.002)
    assert latency.histograms[Source.API].count == 0


def test_another_publication_handed_meanwhile_does_not_end_the_publish() -> None:
    """A cluster broker hands publications of other nodes: the publish ends when it returns."""
    latency = PublishLatency()
    latency.handed(object(), now=10.001)
    latency.stored(Source.API, object(), started=10.0, now=10.004)
    assert latency.histograms[Source.API].sum == pytest.approx(0.004)
    pub = object()
    latency.handed(pub, now=11.0)
    latency.stored(Source.HUB, pub, started=10.5, now=11.2)
    latency.stored(Source.HUB, pub, started=12.0, now=12.25)  # the mark was used up
    assert latency.histograms[Source.HUB].sum == pytest.approx(0.5 + 0.25)
