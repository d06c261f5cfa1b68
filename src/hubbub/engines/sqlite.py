"""Channel history in SQLite: the embedded default (``--data-dir``/hubbub.db).

Durability: WAL journal with ``synchronous=FULL``: a publish is acknowledged after its
transaction's commit is fsynced, so it survives ``kill -9`` and power loss alike. Group commit
keeps that affordable: every append queued while the previous commit ran (or in the same loop
turn) shares one transaction and one fsync.

All SQLite calls run in one dedicated thread with one connection, so the event loop never
blocks on the disk and statements never race each other. Errors of sqlite3 become
:class:`hubbub.errors.StoreError`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from hubbub.core.types import ClientInfo, HistoryResult, Publication, StreamPosition
from hubbub.engines.durable import RETENTION_BATCH, Append, DurableHistory
from hubbub.engines.memory import new_epoch
from hubbub.engines.worker import Worker
from hubbub.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
#: version -> statements that bring a store from version - 1 to it.
MIGRATIONS: Final[dict[int, list[str]]] = {
    1: [
        """CREATE TABLE streams (
            channel TEXT PRIMARY KEY,
            epoch TEXT NOT NULL,
            top INTEGER NOT NULL,
            touched REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE publications (
            channel TEXT NOT NULL,
            offset INTEGER NOT NULL,
            data TEXT NOT NULL,
            info TEXT,
            tags TEXT,
            time_ms INTEGER NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (channel, offset)
        ) WITHOUT ROWID""",
        "CREATE INDEX publications_expiry ON publications (expires_at)",
        """CREATE TABLE idempotency (
            channel TEXT NOT NULL,
            key TEXT NOT NULL,
            offset INTEGER NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (channel, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX idempotency_expiry ON idempotency (expires_at)",
    ],
}
T = TypeVar("T")
#: Channels one ``IN (...)`` list names at most (SQLite allows 32,766 parameters).
_IN_CHUNK: Final = 500


def info_to_text(info: ClientInfo | None) -> str | None:
    return None if info is None else info.to_json()


def info_from_text(text: str | None) -> ClientInfo | None:
    if text is None:
        return None
    obj = json.loads(text)
    conn_info = obj.get("conn_info")
    chan_info = obj.get("chan_info")
    return ClientInfo(
        obj.get("client", ""),
        obj.get("user", ""),
        None if conn_info is None else json.dumps(conn_info, separators=(",", ":")),
        None if chan_info is None else json.dumps(chan_info, separators=(",", ":")),
    )


def pub_from_row(
    offset: int, data: str, info: str | None, tags: str | None, time_ms: int
) -> Publication:
    return Publication(
        data=data,
        offset=offset,
        info=info_from_text(info),
        tags=json.loads(tags) if tags else None,
        time_ms=time_ms,
    )


def migrate(conn: sqlite3.Connection, store: str) -> None:
    """Bring the schema to SCHEMA_VERSION; refuse a store written by a newer hubbub."""
    conn.execute("CREATE TABLE IF NOT EXISTS hubbub_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM hubbub_schema").fetchone()
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{store} has schema version {current}, written by a newer hubbub; this one "
            f"knows versions up to {SCHEMA_VERSION}: upgrade hubbub or use another store"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO hubbub_schema (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("%s: schema upgraded to version %d", store, version)


class SqliteHistory(DurableHistory):
    """A :class:`hubbub.engines.base.HistoryStore` in one SQLite file."""

    def __init__(self, path: Path, **options: Any) -> None:
        """``options``: clock, meta_ttl, group_commit, retention_interval (DurableHistory)."""
        super().__init__(**options)
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._worker: Worker | None = None

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._worker is None:
            raise StoreError(f"{self.path}: store is not open")
        try:
            return await self._worker.run(fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def with_db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` in the store's thread (the webhook outbox shares the file)."""
        return await self._run(lambda: fn(self._db()))

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=5000")
                migrate(conn, str(self.path))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def open(self) -> None:
        if self._worker is None:
            self._worker = Worker("hubbub-sqlite")
        try:
            await self._run(self._db)
        except OSError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        self._start_retention()

    async def close(self) -> None:
        """Stop retention, let the calls already made finish, close the connection in the
        store's thread and end it. A call made once this has begun is refused as not open
        (:class:`StoreError`): it neither meets the closed connection nor opens a new one."""
        await self._stop_retention()
        worker, self._worker = self._worker, None
        if worker is not None:
            try:
                await worker.run(self._close_sync)
            finally:  # (cancelled or not: the thread is told to end, nothing else will)
                await worker.close()

    def _close_sync(self) -> None:
        """In the store's thread, after every call made before :meth:`close`."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- appends (group commit) ----------------------------------------------------------

    async def _append_batch(self, batch: list[Append]) -> list[tuple[Publication, bool]]:
        return await self._run(self._append_sync, batch)

    def _append_sync(self, batch: list[Append]) -> list[tuple[Publication, bool]]:
        """One transaction for ``batch``, with a statement per kind of row for the whole
        batch (``executemany``), not per publication: the streams' tops read in one
        ``SELECT``, the publications, idempotency keys and tops written in one call each, and
        a trim per stream only where it has more than its history size."""
        conn = self._db()
        now = self._clock()
        out: list[tuple[Publication, bool]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            streams, expired = self._load_streams(conn, {item.channel for item in batch}, now)
            rows: list[tuple[Any, ...]] = []
            keys: list[tuple[str, str, int, float]] = []
            # (channel, key) -> what an earlier publication of this batch stored under it
            keyed: dict[tuple[str, str], Publication] = {}
            for item in batch:
                if item.key is not None:
                    earlier = keyed.get((item.channel, item.key))
                    if earlier is None:
                        earlier = self._kept(conn, item, now)
                    if earlier is not None:
                        out.append((earlier, False))
                        continue
                stream = streams[item.channel]
                top = stream[1] = stream[1] + 1
                stream[2] = item.history.size
                pub = item.pub
                rows.append(
                    (
                        item.channel,
                        top,
                        pub.data,
                        info_to_text(pub.info),
                        json.dumps(pub.tags) if pub.tags else None,
                        pub.time_ms,
                        now + item.history.ttl,
                    )
                )
                stored = Publication(pub.data, top, pub.info, pub.tags, pub.time_ms)
                if item.key is not None:
                    keys.append((item.channel, item.key, top, now + item.history.idempotency_ttl))
                    keyed[(item.channel, item.key)] = stored
                out.append((stored, True))
            # A stream whose meta expired loses its old rows once something new is written to it.
            restarted = [(c,) for c in expired if streams[c][2]]
            if restarted:
                conn.executemany("DELETE FROM publications WHERE channel = ?", restarted)
            conn.executemany("INSERT INTO publications VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if keys:
                conn.executemany("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)", keys)
            written = [(c, epoch, top, now) for c, (epoch, top, size) in streams.items() if size]
            conn.executemany(
                "INSERT INTO streams VALUES (?, ?, ?, ?) ON CONFLICT (channel) DO UPDATE "
                "SET epoch = excluded.epoch, top = excluded.top, touched = excluded.touched",
                written,
            )
            trims = [(c, top - size) for c, (_, top, size) in streams.items() if 0 < size < top]
            if trims:
                conn.executemany(
                    "DELETE FROM publications WHERE channel = ? AND offset <= ?", trims
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    def _load_streams(
        self, conn: sqlite3.Connection, channels: set[str], now: float
    ) -> tuple[dict[str, list[Any]], list[str]]:
        """channel -> [epoch, top, size] for ``channels`` (size 0: nothing appended yet), and
        the channels whose stream meta expired; those and the ones without a stream start anew
        with a new epoch."""
        found: dict[str, tuple[str, int, float]] = {}
        names = list(channels)
        for at in range(0, len(names), _IN_CHUNK):
            chunk = names[at : at + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT channel, epoch, top, touched FROM streams WHERE channel IN ({marks})"
            for channel, epoch, top, touched in conn.execute(query, chunk):
                found[channel] = (epoch, top, touched)
        streams: dict[str, list[Any]] = {}
        expired = []
        for channel in names:
            row = found.get(channel)
            if row is not None and now - row[2] <= self._meta_ttl:
                streams[channel] = [row[0], row[1], 0]
                continue
            if row is not None:  # the stream's meta expired: a new stream, a new epoch
                expired.append(channel)
            streams[channel] = [new_epoch(), 0, 0]
        return streams, expired

    def _kept(self, conn: sqlite3.Connection, item: Append, now: float) -> Publication | None:
        """The publication stored under ``item``'s idempotency key, if the key is alive."""
        row = conn.execute(
            "SELECT offset FROM idempotency WHERE channel = ? AND key = ? AND expires_at > ?",
            (item.channel, item.key, now),
        ).fetchone()
        return None if row is None else self._stored(conn, item, row[0])

    def _stored(self, conn: sqlite3.Connection, item: Append, offset: int) -> Publication:
        row = conn.execute(
            "SELECT offset, data, info, tags, time_ms FROM publications "
            "WHERE channel = ? AND offset = ?",
            (item.channel, offset),
        ).fetchone()
        if row is None:  # the original aged out of history; its offset is what matters
            return Publication(item.pub.data, offset, item.pub.info, item.pub.tags)
        return pub_from_row(*row)

    # -- reads ---------------------------------------------------------------------------

    async def read(
        self, channel: str, *, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        return await self._run(self._read_sync, channel, since_offset, limit, reverse)

    def _read_sync(
        self, channel: str, since_offset: int | None, limit: int, reverse: bool
    ) -> HistoryResult:
        conn = self._db()
        position = self._position_sync(channel)
        if limit == 0:
            return HistoryResult([], position)
        sql = (
            "SELECT offset, data, info, tags, time_ms FROM publications "
            "WHERE channel = ? AND expires_at > ?"
        )
        args: list[Any] = [channel, self._clock()]
        if since_offset is not None:
            sql += " AND offset < ?" if reverse else " AND offset > ?"
            args.append(since_offset)
        sql += " ORDER BY offset DESC" if reverse else " ORDER BY offset"
        if limit > 0:
            sql += " LIMIT ?"
            args.append(limit)
        pubs = [pub_from_row(*row) for row in conn.execute(sql, args)]
        return HistoryResult(pubs, position)

    async def position(self, channel: str) -> StreamPosition:
        return await self._run(self._position_sync, channel)

    def _position_sync(self, channel: str) -> StreamPosition:
        """The stream's position; a channel never published to gets its epoch now, stored,
        so that a client positioned at (epoch, 0) can recover later."""
        conn = self._db()
        now = self._clock()
        row = conn.execute(
            "SELECT epoch, top, touched FROM streams WHERE channel = ?", (channel,)
        ).fetchone()
        if row is not None and now - row[2] <= self._meta_ttl:
            return StreamPosition(row[1], row[0])
        epoch = new_epoch()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM publications WHERE channel = ?", (channel,))
            conn.execute(
                "INSERT OR REPLACE INTO streams VALUES (?, ?, 0, ?)", (channel, epoch, now)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return StreamPosition(0, epoch)

    async def remove(self, channel: str) -> None:
        await self._run(self._remove_sync, channel)

    def _remove_sync(self, channel: str) -> None:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table in ("publications", "streams", "idempotency"):
                conn.execute(f"DELETE FROM {table} WHERE channel = ?", (channel,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- retention -----------------------------------------------------------------------

    async def _expire_batch(self) -> int:
        return await self._run(self._expire_batch_sync)

    def _expire_batch_sync(self) -> int:
        conn = self._db()
        now = self._clock()
        removed = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            removed += conn.execute(
                "DELETE FROM publications WHERE (channel, offset) IN (SELECT channel, offset "
                "FROM publications WHERE expires_at <= ? LIMIT ?)",
                (now, RETENTION_BATCH),
            ).rowcount
            removed += conn.execute(
                "DELETE FROM idempotency WHERE (channel, key) IN (SELECT channel, key "
                "FROM idempotency WHERE expires_at <= ? LIMIT ?)",
                (now, RETENTION_BATCH),
            ).rowcount
            conn.execute(
                "DELETE FROM streams WHERE touched < ? AND NOT EXISTS "
                "(SELECT 1 FROM publications p WHERE p.channel = streams.channel)",
                (now - self._meta_ttl,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return removed
