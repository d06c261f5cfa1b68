"""Test time: every timeout in the tests is multiplied by ``TEST_TIME_SCALE`` (default 1).

Tests wait for an observable condition (:func:`eventually`) rather than sleeping for a fixed
time; the deadline of every wait goes through :func:`scaled`, so a slow machine can be given
more time with ``TEST_TIME_SCALE=3`` without editing a test.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

TIME_SCALE = float(os.environ.get("TEST_TIME_SCALE", "1"))

T = TypeVar("T")


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


def deadline(seconds: float) -> float:
    """The ``time.monotonic()`` value ``scaled(seconds)`` from now."""
    return time.monotonic() + scaled(seconds)


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    within: float = 10.0,
    *,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """Poll ``condition`` (a function, sync or async) until it returns something truthy and
    return that; raise AssertionError naming ``what`` after ``scaled(within)`` seconds."""
    until = deadline(within)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= until:
            raise AssertionError(f"{what} did not happen within {scaled(within):g} s")
        await asyncio.sleep(interval)
