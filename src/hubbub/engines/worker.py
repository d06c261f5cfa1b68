"""One thread that runs blocking calls in order for the event loop (a store's disk work).

:class:`Worker` is what a ``ThreadPoolExecutor(1)`` with ``run_in_executor`` gives, with a
lighter hand-off: a call crosses to the thread through a ``queue.SimpleQueue`` and its result
comes back with one ``call_soon_threadsafe``, without ``concurrent.futures``' locks,
conditions and chained futures. On this project's 2-core VM a round trip of a no-op call
costs ~30 us of CPU against ~60 us through the executor (docs/performance.md), and durable
publishes pay one per group commit.

Guarantees:

- Calls run one at a time, in the order :meth:`Worker.run` was called, all in the same
  thread (a ``sqlite3`` connection made there may be used there only).
- :meth:`Worker.run` returns the call's result or raises its exception (a ``StopIteration``,
  which an asyncio future cannot hold, as a ``RuntimeError`` raised from it). Once called,
  the call runs even when the awaiting coroutine is cancelled (its result is then dropped),
  like a queued executor job that has started.
- :meth:`Worker.close` lets the calls already queued finish, then ends the thread and waits
  for it (in a thread of the default executor, not blocking the loop); later calls raise
  ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the loop: hand a call's outcome to its future (unless the awaiter gave up)."""
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    elif isinstance(value, StopIteration):  # a Future refuses it (TypeError, no one told)
        error = RuntimeError(f"the call raised StopIteration: {value!r}")
        error.__cause__ = value
        future.set_exception(error)
    else:
        future.set_exception(value)


class Worker:
    """A thread running calls in order; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker's thread; its result (or exception)."""
        if self._closed:
            raise RuntimeError("the worker is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, loop, future))
        try:
            return await future
        finally:
            # A raised exception's traceback holds this frame: without its future (which
            # holds the exception) and the call's arguments, that is no reference cycle.
            del future, fn, args

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, loop, future = job
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiter, whatever it is
                outcome = (False, exc)
            del job, fn, args  # (no reference to the call's data while waiting for the next)
            with contextlib.suppress(RuntimeError):  # a closed loop: no one is waiting
                loop.call_soon_threadsafe(_settle, future, *outcome)
            del future, outcome

    async def close(self) -> None:
        """Finish what is queued, then end the thread (idempotent)."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
