"""Keepalive deadlines of many connections on one shared, slotted timer per event loop."""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import weakref
from typing import Final, Protocol

log = logging.getLogger(__name__)


class Timed(Protocol):
    """What the timers need of a connection."""

    @property
    def id(self) -> str: ...

    def on_timer(self, now: float) -> None: ...


#: Seconds: keepalive deadlines are kept to this resolution.
TIMER_RESOLUTION: Final = 0.05


class Timers:
    """Keepalive deadlines of every connection of one event loop, in slots of
    :data:`TIMER_RESOLUTION` seconds: an idle connection costs a dict entry in a slot shared
    with the others due then, instead of a timer object of its own, and one loop timer
    serves them all.

    Guarantees: a connection registered for ``when`` gets ``on_timer(at)`` once, with
    ``at >= slot time >= when`` (up to float rounding), unless discarded first; a
    registration made while a slot is being fired lands in a later slot, so firing always
    ends."""

    __slots__ = ("_armed", "_firing", "_handle", "_heap", "_loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # (this object is the loop's value in a weak dict)
        self._slots: dict[int, dict[Timed, None]] = {}
        self._heap: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed: int | None = None
        self._firing: int | None = None

    def _slot(self, when: float) -> int:
        slot = math.ceil(when / TIMER_RESOLUTION)
        if self._firing is not None and slot <= self._firing:
            slot = self._firing + 1
        return slot

    def add(self, conn: Timed, when: float) -> None:
        slot = self._slot(when)
        bucket = self._slots.get(slot)
        if bucket is None:
            bucket = self._slots[slot] = {}
            heapq.heappush(self._heap, slot)
            if self._armed is None or slot < self._armed:
                self._arm(slot)
        bucket[conn] = None

    def discard(self, conn: Timed, when: float) -> None:
        """Forget the registration made for ``when`` (an empty slot simply fires empty)."""
        bucket = self._slots.get(math.ceil(when / TIMER_RESOLUTION))
        if bucket is not None:
            bucket.pop(conn, None)

    def _arm(self, slot: int) -> None:
        loop = self._loop()
        if loop is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed = slot
        self._handle = loop.call_at(slot * TIMER_RESOLUTION, self._fire)

    def _fire(self) -> None:
        self._handle = self._armed = None
        loop = self._loop()
        if loop is None:
            return
        now = loop.time()
        due = now / TIMER_RESOLUTION + 0.5  # loop timers may fire a hair early
        heap = self._heap
        ready = []
        while heap and heap[0] <= due:  # taken first: what on_timer adds waits a turn
            slot = heapq.heappop(heap)
            ready.append((slot, self._slots.pop(slot)))
        try:
            for slot, bucket in ready:
                self._firing = slot
                at = max(now, slot * TIMER_RESOLUTION)  # never before the slot's time
                for conn in bucket:
                    try:
                        conn.on_timer(at)
                    except Exception:  # one connection must not stop the others' keepalive
                        log.exception("%s: keepalive failed", conn.id)
        finally:
            self._firing = None
        if heap and (self._armed is None or heap[0] < self._armed):
            self._arm(heap[0])


_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Timers] = weakref.WeakKeyDictionary()


def timers_for(loop: asyncio.AbstractEventLoop) -> Timers:
    timers = _timers.get(loop)
    if timers is None:
        timers = _timers[loop] = Timers(loop)
    return timers
