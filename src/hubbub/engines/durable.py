"""What the durable history stores (SQLite, PostgreSQL) share: group-committed appends and a
retention loop that deletes expired rows in batches.

A subclass implements ``_append_batch`` (one transaction for a batch of appends, results in
order) and ``_expire_batch`` (delete at most :data:`RETENTION_BATCH` expired rows, return how
many went).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Final

from hubbub.bounded import stop_tasks
from hubbub.core.types import Publication
from hubbub.engines.base import HistoryOptions
from hubbub.engines.groupcommit import GroupCommit
from hubbub.engines.memory import Clock
from hubbub.errors import StoreError

log = logging.getLogger(__name__)

#: Rows one retention statement deletes at most, so publishes interleave with clean-up.
RETENTION_BATCH: Final = 1000
#: Appends one transaction takes at most with group commit.
MAX_BATCH: Final = 1000
#: Seconds the retention loop gets to end once cancelled, when the store closes.
RETENTION_STOP_TIMEOUT: Final = 1.0


@dataclass(slots=True)
class Append:
    """One append queued for a group commit (not frozen: its ``__init__`` is twice as
    cheap, and it is made once per durable publish)."""

    channel: str
    pub: Publication
    history: HistoryOptions
    key: str | None


class DurableHistory:
    """Base of the durable :class:`hubbub.engines.base.HistoryStore` implementations."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        meta_ttl: float = 30 * 24 * 3600,
        group_commit: bool = True,
        retention_interval: float = 10.0,
    ) -> None:
        self._clock = clock
        self._meta_ttl = meta_ttl
        self._retention_interval = retention_interval
        self._retention: asyncio.Task[None] | None = None
        self.commits: GroupCommit[Append, tuple[Publication, bool]] = GroupCommit(
            self._append_batch, MAX_BATCH if group_commit else 1
        )

    async def append(
        self,
        channel: str,
        pub: Publication,
        history: HistoryOptions,
        idempotency_key: str | None = None,
    ) -> tuple[Publication, bool]:
        return await self.commits.submit(Append(channel, pub, history, idempotency_key))

    async def _append_batch(self, batch: list[Append]) -> list[tuple[Publication, bool]]:
        raise NotImplementedError

    async def _expire_batch(self) -> int:
        raise NotImplementedError

    async def expire(self) -> int:
        """One retention pass, in batches; returns how many rows went."""
        total = 0
        while True:
            removed = await self._expire_batch()
            total += removed
            if removed < RETENTION_BATCH:
                return total

    def _start_retention(self) -> None:
        if self._retention is None and self._retention_interval > 0:
            self._retention = asyncio.get_running_loop().create_task(self._retain_forever())

    async def _stop_retention(self) -> None:
        """Cancel the retention loop (again while it carries on: an engine call can lose a
        cancellation, :mod:`hubbub.bounded`), at most :data:`RETENTION_STOP_TIMEOUT` seconds."""
        if self._retention is not None:
            await stop_tasks([self._retention], RETENTION_STOP_TIMEOUT, "retention loop")
            self._retention = None

    async def _retain_forever(self) -> None:
        while True:
            await asyncio.sleep(self._retention_interval)
            try:
                removed = await self.expire()
                if removed:
                    log.debug("retention removed %d rows", removed)
            except StoreError as exc:
                log.warning("retention pass failed: %s", exc)
