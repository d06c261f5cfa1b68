"""Shutdown waits that end even when the awaited code swallows its cancellation (as
``asyncio.wait_for`` does on Python 3.11 inside redis-py's commands)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from hubbub.bounded import bounded, stop_tasks
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory
from hubbub.node import Node


async def _swallows_one_cancellation(log: list[str]) -> None:
    """Loops for ever; the first cancellation is lost, as in 3.11's wait_for race."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        log.append("swallowed")
    await asyncio.Event().wait()  # (for ever, until cancelled again)


async def _ignores_cancellation(until: asyncio.Event) -> None:
    """Ignores every cancellation until ``until`` is set (so that the test can end it)."""
    while not until.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


async def test_stop_tasks_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    """A task that lost its first cancellation still ends: it is cancelled again."""
    log: list[str] = []
    task = asyncio.create_task(_swallows_one_cancellation(log))
    await asyncio.sleep(0)
    left = await stop_tasks([task], 5.0)
    assert (left, log, task.cancelled()) == (set(), ["swallowed"], True)


async def test_stop_tasks_leaves_behind_a_task_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task that ignores every cancellation is given up at the deadline, and logged."""
    release = asyncio.Event()
    task = asyncio.create_task(_ignores_cancellation(release))
    await asyncio.sleep(0)
    left = await stop_tasks([task], 0.2, "hung loop")
    assert left == {task}
    assert "hung loop" in caplog.text and "left behind" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task})


async def test_bounded_returns_the_result_or_cuts_off(caplog: pytest.LogCaptureFixture) -> None:
    """In time: the awaitable's result (or its exception); too late: None and an error."""

    async def answer() -> int:
        return 42

    async def fails() -> None:
        raise ValueError("no")

    assert await bounded(answer(), 1.0, "answer") == 42
    with pytest.raises(ValueError, match="no"):
        await bounded(fails(), 1.0, "fails")
    release = asyncio.Event()
    task = asyncio.ensure_future(_ignores_cancellation(release))
    with caplog.at_level(logging.ERROR):
        assert await bounded(task, 0.1, "engine close") is None
    assert "engine close did not finish within 0.1s: cut off" in caplog.text
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task})


class _LosesCancellation(LocalBroker):
    """A broker that announces nodes, whose announce loses a cancellation once (redis-py on
    Python 3.11 does, when the cancellation meets a command's completion)."""

    def __init__(self) -> None:
        super().__init__(MemoryHistory())
        self.announcing = asyncio.Event()
        self.lost = 0

    async def announce(self, uid: str, snapshot: dict[str, Any]) -> None:
        self.announcing.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.lost += 1

    async def withdraw(self, uid: str) -> None:
        return None


async def test_node_stop_ends_when_a_background_loop_lost_its_cancellation() -> None:
    """Node.stop returns although the announce loop swallowed the cancellation (it used to
    await that task for ever: `hubbub serve` on Redis not exiting after SIGTERM)."""
    broker = _LosesCancellation()
    node = Node(broker=broker)
    await node.start()
    await broker.announcing.wait()
    stopping = asyncio.create_task(node.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    if not done:
        stopping.cancel()
        pytest.fail("Node.stop() did not return")
    assert broker.lost == 1
