"""Waiting with a deadline that holds even when the awaited code swallows its cancellation.

Why this exists: on Python 3.11, ``asyncio.wait_for`` loses a cancellation that arrives while
the operation it waits on has just completed (it returns the result instead), and when its own
timeout fires it waits, without a limit, for the cancelled operation to finish. redis-py sends
every command through ``wait_for`` (its ``socket_timeout``), so a background loop cancelled at
shutdown while one of its Redis commands completes carries on as if nothing happened, and
whoever awaits that task waits for ever (a ``hubbub serve`` on Redis that did not exit after
SIGTERM). Plain ``task.cancel(); await task`` and ``wait_for`` are therefore not used on
shutdown paths; these are.

Guarantees:

- :func:`stop_tasks` returns within ``seconds`` (plus one turn of the loop), having
  cancelled every task and cancelled again, every :data:`RECANCEL_EVERY` seconds, those that
  are still running; it returns the ones still running at the deadline, and logs them.
- :func:`bounded` returns within ``seconds`` + :data:`CANCEL_GRACE` seconds. It returns what
  the awaitable returned (re-raising its exception) when it finished in time; otherwise it
  cancels it, logs an error naming ``what``, and returns ``None``: the work is abandoned, not
  awaited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, Final, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between two cancellations of a task that is still running after the first.
RECANCEL_EVERY: Final = 0.05
#: Seconds a cut-off awaitable gets to end after its cancellation before it is abandoned.
CANCEL_GRACE: Final = 0.5


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], seconds: float, what: str = "task"
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait for them, at most ``seconds``; see the module
    docstring. Exceptions of the tasks are retrieved (logged at debug level), not raised."""
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    until = loop.time() + max(0.0, seconds)
    running = {task for task in tasks if not task.done()}
    while running:
        for task in running:
            task.cancel()
        left = until - loop.time()
        if left <= 0:
            break
        _, running = await asyncio.wait(running, timeout=min(RECANCEL_EVERY, left))
    for task in running:
        log.error("%s %s ignored its cancellation for %.1fs: left behind", what, task, seconds)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.debug("%s %s ended with %r", what, task.get_name(), task.exception())
    return running


async def bounded(aw: Awaitable[T], seconds: float, what: str) -> T | None:
    """Await ``aw`` for at most ``seconds``; see the module docstring."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    except asyncio.CancelledError:
        task.cancel()  # (whoever cancelled us bounds the wait for it)
        raise
    if task in done:
        return task.result()
    log.error("%s did not finish within %.1fs: cut off", what, seconds)
    await stop_tasks([task], CANCEL_GRACE, what)
    return None
