"""A client's token deadlines: the connection's (closed with 3005 unless a refresh moves it)
and each subscription's (unsubscribed with 2501, so the SDK resubscribes with a fresh token).

:class:`TokenExpiry` holds the loop timers; what happens at a deadline is the caller's
callback. Nothing is allocated per subscription until a token with an expiry arrives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hubbub.core.sparse import EMPTY, drop, put


def ttl_until(expire_at: float) -> int:
    """Whole seconds until ``expire_at`` (a Unix time), at least 1: the protocol's ``ttl``."""
    return max(1, int(expire_at - time.time()))


class TokenExpiry:
    __slots__ = ("_connection", "_subscriptions")

    def __init__(self) -> None:
        self._connection: asyncio.TimerHandle | None = None
        self._subscriptions: dict[str, asyncio.TimerHandle] = EMPTY

    @property
    def connection_expires(self) -> bool:
        return self._connection is not None

    def connection_at(
        self, expire_at: float, on_expiry: Callable[[], object], grace: float = 0.0
    ) -> int:
        """Call ``on_expiry`` ``grace`` seconds after ``expire_at`` (replacing an earlier
        deadline); the TTL (until ``expire_at``: what the client is told)."""
        self.cancel_connection()
        ttl = ttl_until(expire_at)
        self._connection = asyncio.get_running_loop().call_later(ttl + grace, on_expiry)
        return ttl

    def cancel_connection(self) -> None:
        if self._connection is not None:
            self._connection.cancel()
            self._connection = None

    def subscription_at(
        self, channel: str, expire_at: float, on_expiry: Callable[[], object], grace: float = 0.0
    ) -> int:
        """Call ``on_expiry`` for ``channel`` ``grace`` seconds after ``expire_at``
        (replacing an earlier deadline); the TTL (until ``expire_at``)."""
        self.cancel_subscription(channel)
        ttl = ttl_until(expire_at)
        timer = asyncio.get_running_loop().call_later(ttl + grace, on_expiry)
        self._subscriptions = put(self._subscriptions, channel, timer)
        return ttl

    def cancel_subscription(self, channel: str) -> None:
        timer = drop(self._subscriptions, channel)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        self.cancel_connection()
        for timer in self._subscriptions.values():
            timer.cancel()
        self._subscriptions = EMPTY
