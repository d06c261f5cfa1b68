"""The store thread's hand-off (:mod:`hubbub.engines.worker`)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

import pytest

from hubbub.engines.worker import Worker
from tests.support.timing import scaled


async def test_calls_run_in_order_in_one_thread() -> None:
    worker = Worker("test-worker")
    seen: list[tuple[int, int]] = []
    try:
        results = await asyncio.gather(
            *(
                worker.run(lambda i=i: seen.append((i, threading.get_ident())) or i)
                for i in range(50)
            )
        )
        assert results == list(range(50))
        assert [i for i, _ in seen] == list(range(50))
        assert len({ident for _, ident in seen}) == 1
        assert seen[0][1] != threading.get_ident()
    finally:
        await worker.close()


async def test_an_exception_reaches_the_caller_and_the_worker_goes_on() -> None:
    worker = Worker("test-worker")

    def fail() -> None:
        raise ValueError("broken")

    try:
        with pytest.raises(ValueError, match="broken"):
            await worker.run(fail)
        assert await worker.run(lambda: 7) == 7
    finally:
        await worker.close()


async def test_a_cancelled_caller_drops_the_result_and_the_call_still_runs() -> None:
    worker = Worker("test-worker")
    ran = threading.Event()

    def slow() -> int:
        time.sleep(0.05)
        ran.set()
        return 1

    try:
        task = asyncio.ensure_future(worker.run(slow))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await worker.run(lambda: 2) == 2  # (after slow: the order holds)
        assert ran.is_set()
    finally:
        await worker.close()


async def test_close_finishes_what_is_queued_then_refuses() -> None:
    worker = Worker("test-worker")
    done: list[int] = []
    pending = [asyncio.ensure_future(worker.run(done.append, i)) for i in range(5)]
    await asyncio.sleep(0)  # (the calls are queued)
    await worker.close()
    await asyncio.gather(*pending)
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        await worker.run(lambda: None)
    await worker.close()  # idempotent


async def test_a_call_raising_stop_iteration_reaches_the_caller() -> None:
    """StopIteration cannot be set on a Future: it comes back as a RuntimeError from it."""
    worker = Worker("test-worker")
    try:
        async with asyncio.timeout(scaled(5.0)):  # (a safety net: the awaiter used to hang)
            with pytest.raises(RuntimeError) as caught:
                await worker.run(next, iter(()))
        assert isinstance(caught.value.__cause__, StopIteration)
        assert await worker.run(lambda: 3) == 3
    finally:
        await worker.close()


async def test_a_failed_call_leaves_no_cycle_through_its_exception() -> None:
    """The exception a call raised, once its caller drops it, is freed without the cyclic GC,
    and with it the call's arguments (a batch): no cycle exception -> traceback -> frame ->
    future -> exception."""

    class Batch:
        pass

    class Broken(Exception):
        pass

    def fail(batch: Batch) -> None:
        raise Broken("broken")

    worker = Worker("test-worker")
    gc.disable()
    try:
        batch = Batch()
        kept = weakref.ref(batch)
        try:
            await worker.run(fail, batch)
        except Broken as exc:
            raised = weakref.ref(exc)
        del batch
        await worker.run(int)  # (the thread is past the failed call: it let go of it)
        assert raised() is None
        assert kept() is None
    finally:
        gc.enable()
        await worker.close()
