"""A token bucket per connection: pure, time is passed in."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` says whether one was there.

    ``strikes`` counts refusals in a row; the caller disconnects a client that keeps going.
    """

    __slots__ = ("burst", "rate", "strikes", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now
        self.strikes = 0

    def take(self, now: float) -> bool:
        elapsed = now - self.updated
        tokens = self.tokens
        if elapsed > 0.0:
            self.updated = now
            tokens += elapsed * self.rate
            if tokens > self.burst:
                tokens = float(self.burst)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            self.strikes = 0
            return True
        self.tokens = tokens
        self.strikes += 1
        return False
