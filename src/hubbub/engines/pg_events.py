"""The event outbox (:mod:`hubbub.engines.eventoutbox`) in PostgreSQL, beside the history.

Tables ``hubbub_webhook_outbox``, ``hubbub_webhook_members`` and ``hubbub_webhook_nodes``
(created when missing, under an advisory lock, so nodes starting together do not race),
used through the pool of :class:`hubbub.engines.postgres.PostgresHistory` (the history store
or the PostgreSQL engine's). Every change is one committed transaction. Claims take rows with
``FOR UPDATE SKIP LOCKED``, so nodes claiming at once get different events; an occupancy
transition locks its channel (``pg_advisory_xact_lock``) for the check and the write, so two
nodes never both see the channel empty. Concurrent ``add`` calls share one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import asyncpg

from hubbub.engines.eventoutbox import OutboxEvent, TransitionEvents, made
from hubbub.engines.groupcommit import GroupCommit
from hubbub.engines.postgres import PostgresHistory

T = TypeVar("T")

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS hubbub_webhook_outbox (
        target TEXT NOT NULL,
        id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        due DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (target, id)
    )""",
    "CREATE INDEX IF NOT EXISTS hubbub_webhook_outbox_due ON hubbub_webhook_outbox (target, due)",
    """CREATE TABLE IF NOT EXISTS hubbub_webhook_members (
        channel TEXT NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (channel, node)
    )""",
    "CREATE INDEX IF NOT EXISTS hubbub_webhook_members_node ON hubbub_webhook_members (node)",
    """CREATE TABLE IF NOT EXISTS hubbub_webhook_nodes (
        node TEXT PRIMARY KEY,
        until DOUBLE PRECISION NOT NULL
    )""",
)
MAX_BATCH: Final = 1000
_INSERT: Final = (
    "INSERT INTO hubbub_webhook_outbox VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (target, id) DO NOTHING"
)


async def _put(conn: asyncpg.Connection, events: Sequence[OutboxEvent], due: float) -> None:
    if events:
        await conn.executemany(
            _INSERT, [(e.target, e.id, e.payload, e.created, due, e.attempts) for e in events]
        )


class PostgresEventOutbox:
    """An :class:`hubbub.engines.eventoutbox.EventOutbox` in the database of ``history``."""

    durable = True

    def __init__(self, history: PostgresHistory) -> None:
        self._history = history
        self._adds: GroupCommit[tuple[Sequence[OutboxEvent], float], None] = GroupCommit(
            self._add_batch, MAX_BATCH
        )

    async def _tx(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async def run(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await work(conn)

        return await self._history.run(run)

    async def open(self) -> None:
        async def create(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hubbub_webhook_schema'))")
            for statement in SCHEMA:
                await conn.execute(statement)

        await self._tx(create)

    async def add(self, events: Sequence[OutboxEvent], due: float) -> None:
        await self._adds.submit((events, due))

    async def _add_batch(self, batch: list[tuple[Sequence[OutboxEvent], float]]) -> list[None]:
        async def work(conn: asyncpg.Connection) -> None:
            for events, due in batch:
                await _put(conn, events, due)

        await self._tx(work)
        return [None] * len(batch)

    async def claim(self, target: str, limit: int, now: float, lease: float) -> list[OutboxEvent]:
        async def work(conn: asyncpg.Connection) -> list[OutboxEvent]:
            rows = await conn.fetch(
                "UPDATE hubbub_webhook_outbox o SET due = $4 FROM ("
                "SELECT target, id FROM hubbub_webhook_outbox WHERE target = $1 AND due <= $2 "
                "ORDER BY due, created LIMIT $3 FOR UPDATE SKIP LOCKED) c "
                "WHERE o.target = c.target AND o.id = c.id "
                "RETURNING o.id, o.payload, o.created, o.attempts",
                target,
                now,
                limit,
                now + lease,
            )
            events = [OutboxEvent(target, r[0], r[1], r[2], r[3]) for r in rows]
            return sorted(events, key=lambda e: e.created)

        return await self._tx(work)

    async def ack(self, target: str, ids: Sequence[str]) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM hubbub_webhook_outbox WHERE target = $1 AND id = ANY($2::text[])",
                target,
                list(ids),
            )

        await self._tx(work)

    async def retry(self, target: str, ids: Sequence[str], due: float) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE hubbub_webhook_outbox SET due = $3, attempts = attempts + 1 "
                "WHERE target = $1 AND id = ANY($2::text[])",
                target,
                list(ids),
                due,
            )

        await self._tx(work)

    async def depth(self, target: str) -> int:
        async def work(conn: asyncpg.Connection) -> int:
            n = await conn.fetchval(
                "SELECT count(*) FROM hubbub_webhook_outbox WHERE target = $1", target
            )
            return int(n)

        return await self._history.run(work)

    async def _lock(self, conn: asyncpg.Connection, channel: str) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "hubbub_wh:" + channel)

    async def occupy(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        async def work(conn: asyncpg.Connection) -> bool:
            await self._lock(conn, channel)
            nodes = {
                r[0]
                for r in await conn.fetch(
                    "SELECT node FROM hubbub_webhook_members WHERE channel = $1", channel
                )
            }
            if node in nodes:
                return False
            await conn.execute("INSERT INTO hubbub_webhook_members VALUES ($1, $2)", channel, node)
            if nodes:
                return False
            await _put(conn, made(events), due)
            return True

        return await self._tx(work)

    async def vacate(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        async def work(conn: asyncpg.Connection) -> bool:
            await self._lock(conn, channel)
            status = await conn.execute(
                "DELETE FROM hubbub_webhook_members WHERE channel = $1 AND node = $2",
                channel,
                node,
            )
            if status.split()[-1] == "0":
                return False
            left = await conn.fetchval(
                "SELECT 1 FROM hubbub_webhook_members WHERE channel = $1 LIMIT 1", channel
            )
            if left is not None:
                return False
            await _put(conn, made(events), due)
            return True

        return await self._tx(work)

    async def alive(self, node: str, until: float) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO hubbub_webhook_nodes VALUES ($1, $2) "
                "ON CONFLICT (node) DO UPDATE SET until = excluded.until",
                node,
                until,
            )

        await self._tx(work)

    async def dead_nodes(self, now: float) -> list[str]:
        async def work(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT node FROM hubbub_webhook_nodes WHERE until <= $1 ORDER BY node", now
            )
            return [r[0] for r in rows]

        return await self._history.run(work)

    async def channels_of(self, node: str) -> list[str]:
        async def work(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT channel FROM hubbub_webhook_members WHERE node = $1 ORDER BY channel",
                node,
            )
            return [r[0] for r in rows]

        return await self._history.run(work)

    async def forget_node(self, node: str) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "DELETE FROM hubbub_webhook_nodes WHERE node = $1 AND NOT EXISTS "
                "(SELECT 1 FROM hubbub_webhook_members WHERE node = $1)",
                node,
            )

        await self._tx(work)
