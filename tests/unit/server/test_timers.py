"""The shared keepalive timer (hubbub.server.keepalive) and frame building (sending)."""

from __future__ import annotations

import asyncio

from hubbub.server import keepalive, sending
from tests.support.timing import scaled


class Recorder:
    id = "rec"

    def __init__(self, name: str, fired: list[tuple[str, float]]) -> None:
        self.name = name
        self.fired = fired

    def on_timer(self, now: float) -> None:
        self.fired.append((self.name, now))


async def test_deadlines_fire_in_order_never_early() -> None:
    loop = asyncio.get_running_loop()
    timers = keepalive.Timers(loop)
    fired: list[tuple[str, float]] = []
    t0 = loop.time()
    wanted = {"b": t0 + 0.2, "a": t0 + 0.1, "c": t0 + 0.2, "d": t0 + 0.02}
    for name, when in wanted.items():
        timers.add(Recorder(name, fired), when)  # type: ignore[arg-type]
    await asyncio.sleep(0.2 + scaled(0.2))
    assert [name for name, _ in fired] == ["d", "a", "b", "c"]
    for name, now in fired:
        assert now >= wanted[name]  # the time handed over is never before the deadline
        assert now - wanted[name] < scaled(0.2)  # and not much after it (coarse, not lost)


async def test_an_earlier_deadline_rearms_the_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    timers = keepalive.Timers(loop)
    fired: list[tuple[str, float]] = []
    t0 = loop.time()
    timers.add(Recorder("late", fired), t0 + 5.0)  # type: ignore[arg-type]
    timers.add(Recorder("soon", fired), t0 + 0.05)  # type: ignore[arg-type]
    await asyncio.sleep(0.05 + scaled(0.15))
    assert [name for name, _ in fired] == ["soon"]


def test_frames_carry_their_length_in_the_right_header_form() -> None:
    short, medium, long = "x" * 125, "y" * 126, b"z" * 65536
    assert sending.build_frame(short)[:2] == bytes((0x81, 125))
    assert sending.build_frame(medium)[:4] == bytes((0x81, 126, 0, 126))
    assert sending.build_frame(long)[:10] == bytes((0x82, 127)) + (65536).to_bytes(8, "big")
    assert sending.build_frame("é").endswith("é".encode())


class FakeLoop:
    """Time stands still; call_at only records."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.calls: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: object) -> FakeHandle:
        self.calls.append(when)
        return FakeHandle()


class FakeHandle:
    def cancel(self) -> None:
        pass


class NotYet:
    """A connection whose deadline is a rounding error past the slot's time: it registers
    again each time it is called (as WebSocketConnection does when nothing is due yet)."""

    id = "not-yet"

    def __init__(self, timers: keepalive.Timers, when: float) -> None:
        self.timers, self.when, self.calls = timers, when, 0

    def on_timer(self, now: float) -> None:
        self.calls += 1
        if now < self.when:
            self.timers.add(self, self.when)  # type: ignore[arg-type]


def test_a_registration_made_while_firing_waits_for_a_later_slot() -> None:
    when = 1.7500000000000002  # ceil(when / 0.05) == 35, but 35 * 0.05 == 1.75 < when
    loop = FakeLoop(now=1.75)
    timers = keepalive.Timers(loop)  # type: ignore[arg-type]
    conn = NotYet(timers, when)
    timers.add(conn, when)  # type: ignore[arg-type]
    timers._fire()  # returns (it used to spin forever here)
    assert conn.calls == 1
    loop.now = 1.8
    timers._fire()
    assert conn.calls == 2  # the later slot's time is past the deadline: done


def test_discarded_registrations_do_not_fire() -> None:
    loop = FakeLoop(now=10.0)
    timers = keepalive.Timers(loop)  # type: ignore[arg-type]
    fired: list[tuple[str, float]] = []
    kept, dropped = Recorder("kept", fired), Recorder("dropped", fired)
    timers.add(kept, 9.0)  # type: ignore[arg-type]
    timers.add(dropped, 9.0)  # type: ignore[arg-type]
    timers.discard(dropped, 9.0)  # type: ignore[arg-type]
    timers._fire()
    assert [name for name, _ in fired] == ["kept"]
