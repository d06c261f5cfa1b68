"""Background loops that outlive their errors: hubbub.periodic and the demo publishers."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from typing import Any

import pytest

from hubbub.demos import monitor
from hubbub.demos.game import Game
from hubbub.demos.monitor import MonitorPublisher
from hubbub.node import Node
from hubbub.periodic import backoff, every
from tests.support.timing import scaled


def test_backoff_doubles_up_to_the_ceiling() -> None:
    assert [backoff(1.0, n, 30.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff(0.05, 1) == 0.1
    assert backoff(60.0, 3, 30.0) == 60.0  # never shorter than the beat itself


async def test_a_failing_step_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    done = asyncio.Event()

    async def step() -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise OSError(errno.EMFILE, "Too many open files")
        if len(calls) == 5:
            done.set()

    caplog.set_level(logging.WARNING, "hubbub.periodic")
    task = asyncio.create_task(every(0.001, step, "test loop", ceiling=0.01))
    await asyncio.wait_for(done.wait(), scaled(5))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    records = [r for r in caplog.records if r.name == "hubbub.periodic"]
    assert len(records) == 3
    assert records[0].exc_info is not None  # the traceback once
    assert all(r.exc_info is None for r in records[1:])
    assert "3 in a row" in records[2].getMessage()


async def test_the_monitor_demo_survives_running_out_of_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the open-file limit psutil raises EMFILE; the publisher goes on once it is over and
    stops cleanly."""
    node = Node()
    published: list[str] = []
    failures = [OSError(errno.EMFILE, "Too many open files")] * 2

    async def publish(channel: str, data: str, **kwargs: Any) -> None:
        published.append(data)

    real = monitor.psutil.net_io_counters

    def net_io_counters() -> Any:
        if failures:
            raise failures.pop()
        return real()

    monkeypatch.setattr(node, "publish", publish)
    monkeypatch.setattr(monitor.psutil, "net_io_counters", net_io_counters)
    publisher = MonitorPublisher(node, interval=0.01)
    publisher.start()
    try:
        async with asyncio.timeout(scaled(10)):
            while not published:  # noqa: ASYNC110 (polls what the publisher did)
                await asyncio.sleep(0.01)
        assert not failures
    finally:
        await publisher.stop()  # no exception: the task did not die


@pytest.mark.parametrize("demo", ["monitor", "game"])
async def test_a_demo_stops_when_its_step_loses_a_cancellation(demo: str) -> None:
    """A step that loses the stop's cancellation (a publish through redis-py on Python 3.11:
    hubbub.bounded) does not keep the demo running: it is cancelled again and ends."""
    node = Node()
    inside = asyncio.Event()
    lost = False

    async def step() -> None:
        nonlocal lost
        if not lost:
            lost = True
            inside.set()
            with contextlib.suppress(asyncio.CancelledError):  # lost: the loop carries on
                await asyncio.sleep(3600)

    publisher: MonitorPublisher | Game
    if demo == "monitor":
        publisher = MonitorPublisher(node, interval=0.01)
        publisher.publish_sample = step  # type: ignore[method-assign]
    else:
        publisher = Game(node)
        publisher.tick_once = step  # type: ignore[method-assign]
    publisher.start()
    await asyncio.wait_for(inside.wait(), scaled(5))
    stopping = asyncio.ensure_future(publisher.stop())
    done, _ = await asyncio.wait({stopping}, timeout=scaled(2))
    try:
        assert stopping in done, "the demo's stop waited on a task that carried on"
    finally:
        stopping.cancel()  # (a wait_for here would lose it too: stop suppresses it)
        await asyncio.wait({stopping})
