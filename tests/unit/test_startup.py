"""The application's startup functions as tasks: hubbub.startup.StartupTasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from hubbub import Hub
from hubbub.startup import StartupTasks
from tests.support.timing import scaled


async def test_each_function_runs_in_its_own_task_in_order() -> None:
    started: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        started.append("first")
        await release.wait()

    async def second() -> None:
        started.append("second")

    tasks = StartupTasks([first, second])
    tasks.start()
    tasks.start()  # once only
    await asyncio.sleep(0)
    assert started == ["first", "second"]  # the second runs while the first waits
    release.set()
    await tasks.stop(scaled(1))


async def test_stop_cancels_a_running_loop_without_a_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loop that runs until it is cancelled ends quietly: no log record, and its own
    clean-up (``finally``) runs before ``stop`` returns."""
    cleaned = asyncio.Event()
    ticking = asyncio.Event()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        try:
            while True:
                ticks += 1
                if ticks == 3:
                    ticking.set()
                await asyncio.sleep(0.001)
        finally:
            cleaned.set()

    caplog.set_level(logging.DEBUG)
    tasks = StartupTasks([ticker])
    tasks.start()
    await asyncio.wait_for(ticking.wait(), scaled(5))
    await tasks.stop(scaled(1))
    assert cleaned.is_set()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_failing_function_is_logged_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("no database")

    caplog.set_level(logging.ERROR, "hubbub.startup")
    tasks = StartupTasks([broken])
    tasks.start()
    await asyncio.sleep(0.01)
    await tasks.stop(scaled(1))
    [record] = caplog.records
    assert "broken" in record.getMessage()
    assert record.exc_info is not None and "no database" in str(record.exc_info[1])


async def test_a_function_that_ignores_its_cancellation_is_named_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shutdown is bounded: stop returns after ``grace`` and says which task is still on."""
    finish = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await finish.wait()  # swallows the cancellation

    caplog.set_level(logging.WARNING)
    tasks = StartupTasks([stubborn])
    tasks.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(0.05), scaled(5))
    [record] = caplog.records
    assert "stubborn" in record.getMessage() and "left behind" in record.getMessage()
    finish.set()
    await asyncio.sleep(0.01)


async def test_a_cancellation_lost_once_is_repeated(caplog: pytest.LogCaptureFixture) -> None:
    """A task that loses one cancellation (as redis-py's commands do on Python 3.11, through
    asyncio.wait_for: hubbub.bounded) is cancelled again and ends within ``grace``; nothing
    of it is left running after ``stop``."""
    ended = asyncio.Event()

    async def loses_one() -> None:
        try:
            with contextlib.suppress(asyncio.CancelledError):  # lost: the loop carries on
                await asyncio.sleep(3600)
            await asyncio.sleep(3600)
        finally:
            ended.set()

    tasks = StartupTasks([loses_one])
    tasks.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(tasks.stop(scaled(1)), scaled(5))
    assert ended.is_set()
    assert not caplog.records


async def test_stop_without_start_is_a_no_op() -> None:
    async def never() -> None:
        raise AssertionError("not started")

    await StartupTasks([never]).stop(0.1)


def test_on_startup_registers_functions_in_order() -> None:
    hub = Hub()

    @hub.on_startup
    async def one() -> None:
        pass

    @hub.on_startup
    async def two() -> None:
        pass

    assert hub.hooks.on_startup == [one, two]
