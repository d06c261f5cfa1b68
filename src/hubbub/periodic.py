"""Background loops that survive their errors: :func:`every` calls a step on a beat for ever.

A step that raises is logged and retried after a back-off instead of ending the loop (and
with it the task, whose exception would then surface only when the server stops, as a
traceback and exit code 1). Used by the demo publishers and the position check.

:func:`stop` ends such a loop's task for certain, whatever the step was doing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

log = logging.getLogger(__name__)

#: The longest wait between two attempts of a step that keeps failing.
MAX_BACKOFF: Final = 30.0


def backoff(interval: float, failures: int, ceiling: float = MAX_BACKOFF) -> float:
    """The wait before the next attempt after ``failures`` failures in a row: ``interval``
    doubled per failure, at most ``ceiling`` (and never less than ``interval``)."""
    return max(interval, min(ceiling, interval * 2.0**failures))


async def every(
    interval: float,
    step: Callable[[], Awaitable[None]],
    name: str,
    *,
    ceiling: float = MAX_BACKOFF,
) -> None:
    """Await ``step()`` every ``interval`` seconds until cancelled.

    Guarantees: ends only by cancellation (never with the step's exception); a failing step
    is logged (with its traceback the first time in a row, in one line after that) and the
    next attempt waits :func:`backoff`; a step that succeeds brings the beat back.
    """
    failures = 0
    while True:
        await asyncio.sleep(backoff(interval, failures, ceiling) if failures else interval)
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            wait = backoff(interval, failures, ceiling)
            if failures == 1:
                log.warning("%s failed, retrying in %.1fs", name, wait, exc_info=True)
            else:
                log.warning(
                    "%s failed again (%d in a row: %s), retrying in %.1fs",
                    name,
                    failures,
                    exc,
                    wait,
                )
        else:
            failures = 0
