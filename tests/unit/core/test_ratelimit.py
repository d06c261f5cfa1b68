"""The per-connection token bucket (hubbub.core.ratelimit)."""

from __future__ import annotations

from hubbub.core.ratelimit import TokenBucket


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.strikes == 1
    assert bucket.take(0.125) is False  # half a token
    assert bucket.take(0.25) is True  # one token after 0.25 s at 4/s
    assert bucket.strikes == 0


def test_refill_stops_at_burst() -> None:
    bucket = TokenBucket(rate=1000.0, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert [bucket.take(60.0) for _ in range(3)] == [True, True, False]


def test_a_clock_going_back_takes_nothing_away() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=50.0)
    assert bucket.take(40.0) is True
    assert bucket.take(40.0) is True
    assert bucket.take(40.0) is False
