"""The application's startup functions (``@hub.on_startup``): background tasks that live as
long as the server serves.

::

    @hub.on_startup
    async def clock() -> None:
        while True:
            await hub.publish("clock", {"time": time.time()})
            await asyncio.sleep(1)

Guarantees of :class:`StartupTasks`:

- :meth:`~StartupTasks.start` runs each function as its own task, in the order they were
  registered, once the node is started (engines connected, ``hub.publish`` works) and the
  server accepts connections (before the ready line is printed).
- A function may return (its task ends) or run until it is cancelled. One that raises is
  logged once with its traceback; the server keeps serving and nothing restarts it (wrap a
  loop's step in ``try`` to outlive its errors, or see :func:`hubbub.periodic.every`).
- :meth:`~StartupTasks.stop` (at shutdown, after the client connections are closed and
  before the engines stop, so a last ``hub.publish`` still works) cancels every task still
  running and awaits it, at most ``grace`` seconds, cancelling again those that carry on
  (:func:`hubbub.bounded.stop_tasks`: a cancellation can be lost in an engine's command). A
  task that ends by its cancellation leaves no trace in the log; one that is still running
  after ``grace`` (it swallows every cancellation) is named in an error and left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from hubbub.bounded import stop_tasks
from hubbub.hooks import StartupHook

log = logging.getLogger(__name__)


def _name(fn: StartupHook) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


class StartupTasks:
    """The tasks of an application's startup functions (see the module docstring)."""

    def __init__(self, functions: Sequence[StartupHook]) -> None:
        self._functions = tuple(functions)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one task per function (once; a second call does nothing)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        for fn in self._functions:
            task = loop.create_task(self._run(fn), name=f"hubbub startup {_name(fn)}")
            self._tasks.append(task)

    @staticmethod
    async def _run(fn: StartupHook) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("startup function %s failed", _name(fn))

    async def stop(self, grace: float) -> None:
        """Cancel the tasks still running and wait for them, at most ``grace`` seconds."""
        tasks, self._tasks = self._tasks, []
        await stop_tasks(tasks, grace, "startup task")
