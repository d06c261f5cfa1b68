"""Channel history in PostgreSQL (``--history postgresql://...``), with asyncpg.

Appends are group-committed like SQLite's: everything queued while the previous transaction
ran shares one transaction. Offsets come from a per-channel row (``UPDATE ... RETURNING``), so
concurrent writers (several nodes, later) are serialised per channel by the row lock and
offsets stay gap-free. Every asyncpg or network error becomes :class:`StoreError`; the pool
opens fresh connections on later calls, so the store recovers by itself when the database is
back.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final, TypeVar

import asyncpg

from hubbub.bounded import bounded
from hubbub.core.types import HistoryResult, Publication, StreamPosition
from hubbub.engines.durable import RETENTION_BATCH, Append, DurableHistory
from hubbub.engines.memory import new_epoch
from hubbub.engines.sqlite import info_to_text, pub_from_row
from hubbub.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2
MIGRATIONS: Final[dict[int, list[str]]] = {
    1: [
        """CREATE TABLE hubbub_streams (
            channel TEXT PRIMARY KEY,
            epoch TEXT NOT NULL,
            top BIGINT NOT NULL,
            touched DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE hubbub_publications (
            channel TEXT NOT NULL,
            seq BIGINT NOT NULL,
            data TEXT NOT NULL,
            info TEXT,
            tags TEXT,
            time_ms BIGINT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (channel, seq)
        )""",
        "CREATE INDEX hubbub_publications_expiry ON hubbub_publications (expires_at)",
        """CREATE TABLE hubbub_idempotency (
            channel TEXT NOT NULL,
            key TEXT NOT NULL,
            seq BIGINT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (channel, key)
        )""",
        "CREATE INDEX hubbub_idempotency_expiry ON hubbub_idempotency (expires_at)",
    ],
    # The PostgreSQL engine (hubbub.engines.pgbroker): presence, the node list, and payloads
    # too large for NOTIFY.
    2: [
        """CREATE TABLE hubbub_presence (
            channel TEXT NOT NULL,
            client TEXT NOT NULL,
            info TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (channel, client)
        )""",
        "CREATE INDEX hubbub_presence_expiry ON hubbub_presence (expires_at)",
        """CREATE TABLE hubbub_nodes (
            uid TEXT PRIMARY KEY,
            snapshot TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE hubbub_notify_refs (
            id BIGSERIAL PRIMARY KEY,
            payload TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
    ],
}
#: Seconds to wait for a connection or a statement before calling the store unavailable.
TIMEOUT: Final = 5.0

T = TypeVar("T")

#: Take $5 offsets in channel $1 (a new stream with epoch $2 when there is none, or its meta
#: expired before $4); returns the last offset taken and the epoch.
_NEXT_OFFSETS = """
INSERT INTO hubbub_streams AS s (channel, epoch, top, touched) VALUES ($1, $2, $5, $3)
ON CONFLICT (channel) DO UPDATE SET
    epoch = CASE WHEN s.touched < $4 THEN excluded.epoch ELSE s.epoch END,
    top = CASE WHEN s.touched < $4 THEN $5 ELSE s.top + $5 END,
    touched = excluded.touched
RETURNING top, epoch
"""


class PostgresHistory(DurableHistory):
    """A :class:`hubbub.engines.base.HistoryStore` in PostgreSQL."""

    def __init__(self, url: str, **options: Any) -> None:
        """``options``: clock, meta_ttl, group_commit, retention_interval (DurableHistory)."""
        super().__init__(**options)
        self.url = url
        self._pool: asyncpg.Pool | None = None

    @property
    def _where(self) -> str:
        """The URL without credentials, for messages."""
        return self.url.split("@")[-1]

    async def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``fn`` with a pooled connection; database and network errors become StoreError."""
        if self._pool is None:
            raise StoreError(f"postgresql {self._where}: store is not open")
        try:
            async with self._pool.acquire(timeout=TIMEOUT) as conn:
                return await fn(conn)
        except StoreError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StoreError(f"postgresql {self._where}: {exc}") from exc

    async def open(self) -> None:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=1, max_size=4, command_timeout=TIMEOUT, timeout=TIMEOUT
                )
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                raise StoreError(f"postgresql {self._where}: {exc}") from exc
        await self.run(self._migrate)
        self._start_retention()

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hubbub_schema'))")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS hubbub_schema (version INTEGER NOT NULL)"
            )
            current = await conn.fetchval("SELECT max(version) FROM hubbub_schema") or 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"postgresql {self._where} has schema version {current}, written by a newer "
                    f"hubbub; this one knows versions up to {SCHEMA_VERSION}"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO hubbub_schema (version) VALUES ($1)", version)
                log.info("postgresql %s: schema upgraded to version %d", self._where, version)

    async def close(self) -> None:
        await self._stop_retention()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await bounded(self._pool.close(), TIMEOUT, "postgresql: closing the pool")
            self._pool = None

    # -- appends -------------------------------------------------------------------------

    async def _append_batch(self, batch: list[Append]) -> list[tuple[Publication, bool]]:
        async def work(conn: asyncpg.Connection) -> list[tuple[Publication, bool]]:
            async with conn.transaction():
                return await self._append_in(conn, batch)

        return await self.run(work)

    async def _append_in(
        self, conn: asyncpg.Connection, batch: list[Append]
    ) -> list[tuple[Publication, bool]]:
        """One batch in a handful of statements: offsets are taken per channel in one
        ``UPDATE`` each, rows go in with one ``INSERT ... unnest``."""
        now = self._clock()
        seen_keys: dict[tuple[str, str], int] = {}
        keyed = [(item.channel, item.key) for item in batch if item.key is not None]
        if keyed:
            rows = await conn.fetch(
                "SELECT channel, key, seq FROM hubbub_idempotency WHERE (channel, key) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[])) AND expires_at > $3",
                [c for c, _ in keyed],
                [k for _, k in keyed],
                now,
            )
            seen_keys = {(r["channel"], r["key"]): r["seq"] for r in rows}
        # Which items are new; a key repeated inside the batch counts once.
        new_items: list[Append] = []
        batch_keys: set[tuple[str, str]] = set()
        for item in batch:
            if item.key is not None:
                ident = (item.channel, item.key)
                if ident in seen_keys or ident in batch_keys:
                    continue
                batch_keys.add(ident)
            new_items.append(item)
        counts: dict[str, int] = {}
        for item in new_items:
            counts[item.channel] = counts.get(item.channel, 0) + 1
        next_offset: dict[str, int] = {}
        for channel, count in sorted(counts.items()):  # one lock order: no deadlocks
            candidate = new_epoch()
            row = await conn.fetchrow(
                _NEXT_OFFSETS, channel, candidate, now, now - self._meta_ttl, count
            )
            if row["epoch"] == candidate:  # a new stream: nothing of an old one stays
                await conn.execute("DELETE FROM hubbub_publications WHERE channel = $1", channel)
            next_offset[channel] = row["top"] - count + 1
        rows_out: list[tuple[Any, ...]] = []
        assigned: dict[int, Publication] = {}
        key_rows: list[tuple[str, str, int, float]] = []
        for item in new_items:
            offset = next_offset[item.channel]
            next_offset[item.channel] = offset + 1
            pub = item.pub
            rows_out.append(
                (
                    item.channel,
                    offset,
                    pub.data,
                    info_to_text(pub.info),
                    json.dumps(pub.tags) if pub.tags else None,
                    pub.time_ms,
                    now + item.history.ttl,
                )
            )
            assigned[id(item)] = Publication(pub.data, offset, pub.info, pub.tags, pub.time_ms)
            if item.key is not None:
                seen_keys[(item.channel, item.key)] = offset
                key_rows.append(
                    (item.channel, item.key, offset, now + item.history.idempotency_ttl)
                )
        if rows_out:
            await conn.execute(
                "INSERT INTO hubbub_publications SELECT * FROM unnest($1::text[], "
                "$2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], "
                "$7::float8[])",
                *(list(column) for column in zip(*rows_out, strict=True)),
            )
        if key_rows:
            await conn.execute(
                "INSERT INTO hubbub_idempotency SELECT * FROM unnest($1::text[], $2::text[], "
                "$3::bigint[], $4::float8[]) ON CONFLICT (channel, key) DO UPDATE SET "
                "seq = excluded.seq, expires_at = excluded.expires_at",
                *(list(column) for column in zip(*key_rows, strict=True)),
            )
        sizes: dict[str, int] = {}
        for item in new_items:
            sizes[item.channel] = item.history.size
        if sizes:
            await conn.execute(
                "DELETE FROM hubbub_publications p USING unnest($1::text[], $2::bigint[]) "
                "AS t(channel, keep_after) WHERE p.channel = t.channel AND p.seq <= t.keep_after",
                list(sizes),
                [next_offset[c] - 1 - size for c, size in sizes.items()],
            )
        # The raw frame's kind (raw rooms) and the delta mark are not stored, but the
        # notifications carry them.
        await self._after_append(
            conn,
            [
                (
                    item.channel,
                    replace(assigned[id(item)], frame=item.pub.frame, delta=item.pub.delta),
                )
                for item in new_items
            ],
        )
        out: list[tuple[Publication, bool]] = []
        for item in batch:
            fresh = assigned.get(id(item))
            if fresh is not None:
                out.append((fresh, True))
            else:
                assert item.key is not None
                seq = seen_keys[(item.channel, item.key)]
                out.append((await self._stored(conn, item, seq), False))
        return out

    async def _after_append(
        self, conn: asyncpg.Connection, fresh: list[tuple[str, Publication]]
    ) -> None:
        """Runs inside the append transaction with the new publications in offset order (the
        PostgreSQL engine sends its notifications here)."""

    async def _stored(self, conn: asyncpg.Connection, item: Append, seq: int) -> Publication:
        row = await conn.fetchrow(
            "SELECT seq, data, info, tags, time_ms FROM hubbub_publications "
            "WHERE channel = $1 AND seq = $2",
            item.channel,
            seq,
        )
        if row is None:
            return Publication(item.pub.data, seq, item.pub.info, item.pub.tags)
        return pub_from_row(*row)

    # -- reads ---------------------------------------------------------------------------

    async def read(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        async def work(conn: asyncpg.Connection) -> HistoryResult:
            # One snapshot for the position and the rows: read in two snapshots, a commit in
            # between would make a continuous stream look broken (recovered: false).
            for attempt in range(3):
                try:
                    async with conn.transaction(isolation="repeatable_read"):
                        return await read_in(conn)
                except asyncpg.SerializationError:  # a new stream's epoch written meanwhile
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        async def read_in(conn: asyncpg.Connection) -> HistoryResult:
            position = await self._position_in(conn, channel)
            if limit == 0:
                return HistoryResult([], position)
            sql = (
                "SELECT seq, data, info, tags, time_ms FROM hubbub_publications "
                "WHERE channel = $1 AND expires_at > $2"
            )
            args: list[Any] = [channel, self._clock()]
            if since_offset is not None:
                sql += " AND seq < $3" if reverse else " AND seq > $3"
                args.append(since_offset)
            sql += " ORDER BY seq DESC" if reverse else " ORDER BY seq"
            if limit > 0:
                sql += f" LIMIT {int(limit)}"
            rows = await conn.fetch(sql, *args)
            return HistoryResult([pub_from_row(*row) for row in rows], position)

        return await self.run(work)

    async def position(self, channel: str) -> StreamPosition:
        return await self.run(lambda conn: self._position_in(conn, channel))

    async def _position_in(self, conn: asyncpg.Connection, channel: str) -> StreamPosition:
        """As SQLite's: a channel never published to gets its epoch now, stored."""
        now = self._clock()
        row = await conn.fetchrow(
            "SELECT epoch, top, touched FROM hubbub_streams WHERE channel = $1", channel
        )
        if row is not None and now - row["touched"] <= self._meta_ttl:
            return StreamPosition(row["top"], row["epoch"])
        async with conn.transaction():
            await conn.execute("DELETE FROM hubbub_publications WHERE channel = $1", channel)
            row = await conn.fetchrow(
                "INSERT INTO hubbub_streams AS s VALUES ($1, $2, 0, $3) ON CONFLICT (channel) "
                "DO UPDATE SET epoch = CASE WHEN s.touched < $4 THEN excluded.epoch "
                "ELSE s.epoch END, top = CASE WHEN s.touched < $4 THEN 0 ELSE s.top END, "
                "touched = CASE WHEN s.touched < $4 THEN excluded.touched ELSE s.touched END "
                "RETURNING top, epoch",
                channel,
                new_epoch(),
                now,
                now - self._meta_ttl,
            )
        return StreamPosition(row["top"], row["epoch"])

    async def remove(self, channel: str) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for table in ("hubbub_publications", "hubbub_streams", "hubbub_idempotency"):
                    await conn.execute(f"DELETE FROM {table} WHERE channel = $1", channel)

        await self.run(work)

    # -- retention -----------------------------------------------------------------------

    async def _expire_batch(self) -> int:
        return await self.run(self._expire_in)

    async def _expire_in(self, conn: asyncpg.Connection) -> int:
        now = self._clock()
        async with conn.transaction():
            pubs = await conn.execute(
                "DELETE FROM hubbub_publications WHERE (channel, seq) IN (SELECT channel, seq "
                "FROM hubbub_publications WHERE expires_at <= $1 LIMIT $2)",
                now,
                RETENTION_BATCH,
            )
            keys = await conn.execute(
                "DELETE FROM hubbub_idempotency WHERE (channel, key) IN (SELECT channel, key "
                "FROM hubbub_idempotency WHERE expires_at <= $1 LIMIT $2)",
                now,
                RETENTION_BATCH,
            )
            await conn.execute(
                "DELETE FROM hubbub_streams s WHERE touched < $1 AND NOT EXISTS "
                "(SELECT 1 FROM hubbub_publications p WHERE p.channel = s.channel)",
                now - self._meta_ttl,
            )
            more = await self._expire_more(conn, now)
        return int(pubs.split()[-1]) + int(keys.split()[-1]) + more

    async def _expire_more(self, conn: asyncpg.Connection, now: float) -> int:
        """Further expired rows to delete in the retention transaction; returns how many."""
        return 0
