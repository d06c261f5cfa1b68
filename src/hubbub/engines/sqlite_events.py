"""The event outbox (:mod:`hubbub.engines.eventoutbox`) in the SQLite history file.

Its own tables (``webhook_outbox``, ``webhook_members``, ``webhook_nodes``, created when
missing) in the database of :class:`hubbub.engines.sqlite.SqliteHistory`, through that store's
one thread and connection: statements never race the history's group commits, and every
change is its own ``BEGIN IMMEDIATE`` transaction, committed and fsynced (WAL,
``synchronous=FULL``) before the call returns, so an added event survives ``kill -9``.
Concurrent ``add`` calls share one transaction (group commit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from hubbub.engines.eventoutbox import OutboxEvent, TransitionEvents, made
from hubbub.engines.groupcommit import GroupCommit
from hubbub.engines.sqlite import SqliteHistory

T = TypeVar("T")

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS webhook_outbox (
        target TEXT NOT NULL,
        id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created REAL NOT NULL,
        due REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (target, id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (target, due)",
    """CREATE TABLE IF NOT EXISTS webhook_members (
        channel TEXT NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (channel, node)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS webhook_members_node ON webhook_members (node)",
    """CREATE TABLE IF NOT EXISTS webhook_nodes (
        node TEXT PRIMARY KEY,
        until REAL NOT NULL
    ) WITHOUT ROWID""",
)
#: Events one transaction of ``add`` takes at most.
MAX_BATCH: Final = 1000


def _transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _put(conn: sqlite3.Connection, events: Sequence[OutboxEvent], due: float) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO webhook_outbox VALUES (?, ?, ?, ?, ?, ?)",
        [(e.target, e.id, e.payload, e.created, due, e.attempts) for e in events],
    )


class SqliteEventOutbox:
    """An :class:`hubbub.engines.eventoutbox.EventOutbox` in the file of ``history``."""

    durable = True

    def __init__(self, history: SqliteHistory) -> None:
        self._history = history
        self._adds: GroupCommit[tuple[Sequence[OutboxEvent], float], None] = GroupCommit(
            self._add_batch, MAX_BATCH
        )

    async def _in_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._history.with_db(lambda conn: _transaction(conn, work))

    async def open(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            for statement in SCHEMA:
                conn.execute(statement)

        await self._in_transaction(create)

    async def add(self, events: Sequence[OutboxEvent], due: float) -> None:
        await self._adds.submit((events, due))

    async def _add_batch(self, batch: list[tuple[Sequence[OutboxEvent], float]]) -> list[None]:
        def work(conn: sqlite3.Connection) -> None:
            for events, due in batch:
                _put(conn, events, due)

        await self._in_transaction(work)
        return [None] * len(batch)

    async def claim(self, target: str, limit: int, now: float, lease: float) -> list[OutboxEvent]:
        def work(conn: sqlite3.Connection) -> list[OutboxEvent]:
            rows = conn.execute(
                "SELECT id, payload, created, attempts FROM webhook_outbox "
                "WHERE target = ? AND due <= ? ORDER BY due, created LIMIT ?",
                (target, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE webhook_outbox SET due = ? WHERE target = ? AND id = ?",
                [(now + lease, target, row[0]) for row in rows],
            )
            return [OutboxEvent(target, row[0], row[1], row[2], row[3]) for row in rows]

        return await self._in_transaction(work)

    async def ack(self, target: str, ids: Sequence[str]) -> None:
        await self._in_transaction(
            lambda conn: conn.executemany(
                "DELETE FROM webhook_outbox WHERE target = ? AND id = ?",
                [(target, eid) for eid in ids],
            )
        )

    async def retry(self, target: str, ids: Sequence[str], due: float) -> None:
        await self._in_transaction(
            lambda conn: conn.executemany(
                "UPDATE webhook_outbox SET due = ?, attempts = attempts + 1 "
                "WHERE target = ? AND id = ?",
                [(due, target, eid) for eid in ids],
            )
        )

    async def depth(self, target: str) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM webhook_outbox WHERE target = ?", (target,)
            ).fetchone()
            return int(row[0])

        return await self._history.with_db(work)

    async def occupy(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            nodes = {
                row[0]
                for row in conn.execute(
                    "SELECT node FROM webhook_members WHERE channel = ?", (channel,)
                )
            }
            if node in nodes:
                return False
            conn.execute("INSERT INTO webhook_members VALUES (?, ?)", (channel, node))
            if nodes:
                return False
            _put(conn, made(events), due)
            return True

        return await self._in_transaction(work)

    async def vacate(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            removed = conn.execute(
                "DELETE FROM webhook_members WHERE channel = ? AND node = ?", (channel, node)
            ).rowcount
            if not removed:
                return False
            left = conn.execute(
                "SELECT 1 FROM webhook_members WHERE channel = ? LIMIT 1", (channel,)
            ).fetchone()
            if left is not None:
                return False
            _put(conn, made(events), due)
            return True

        return await self._in_transaction(work)

    async def alive(self, node: str, until: float) -> None:
        await self._in_transaction(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO webhook_nodes VALUES (?, ?)", (node, until)
            )
        )

    async def dead_nodes(self, now: float) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT node FROM webhook_nodes WHERE until <= ? ORDER BY node", (now,)
            )
            return [row[0] for row in rows]

        return await self._history.with_db(work)

    async def channels_of(self, node: str) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT channel FROM webhook_members WHERE node = ? ORDER BY channel", (node,)
            )
            return [row[0] for row in rows]

        return await self._history.with_db(work)

    async def forget_node(self, node: str) -> None:
        await self._in_transaction(
            lambda conn: conn.execute(
                "DELETE FROM webhook_nodes WHERE node = ? AND NOT EXISTS "
                "(SELECT 1 FROM webhook_members WHERE node = ?)",
                (node, node),
            )
        )
