"""Dicts that are usually empty, per connection: they share one read-only empty mapping until
their first entry (an empty dict is 64 bytes, and a connection has several).

Write only through :func:`put` (a direct write to :data:`EMPTY` raises, so a missed one shows
at once); :func:`drop` works on both.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")

#: The shared empty value; type it as the dict it stands for.
EMPTY: Any = MappingProxyType({})


def put(d: dict[str, T], key: str, value: T) -> dict[str, T]:
    """``d`` with ``key`` set: ``d`` itself, or a new dict in place of :data:`EMPTY`."""
    if d is EMPTY:
        d = {}
    d[key] = value
    return d


def drop(d: dict[str, T], key: str) -> T | None:
    """Remove ``key`` from ``d`` if there; its value, or None."""
    if key in d:
        return d.pop(key)
    return None
