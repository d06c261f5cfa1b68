"""The outbox consumer: publishes the committed rows of the PostgreSQL outbox table.

On when ``outbox_url`` is set; the node's lifecycle (:mod:`hubbub.server.lifecycle`) starts
one per node (per worker with ``--workers``) and stops it within the stop bound. The table and
its triggers are :func:`hubbub.outbox.schema_statements`; applications write rows with
:func:`hubbub.outbox.publish`. docs/recipes/outbox.md explains the design; in short:

- **Commit order per channel.** The table's ``BEFORE INSERT`` trigger serialises the
  transactions that insert into one channel (an advisory transaction lock on the channel) and
  gives the row its id after that lock: within a channel, id order is commit order and a
  smaller id never commits later. The consumer publishes a channel's pending rows in id order,
  one after the other, and never passes a row it could not publish.
- **One consumer per partition at a time.** Channels fall into ``outbox_partitions``
  partitions (a hash of the name). Each batch is one transaction that first takes the
  partition's advisory transaction lock (``pg_try_advisory_xact_lock``; a partition that
  another node holds is skipped this round), reads up to ``outbox_batch_size`` pending rows
  ``FOR UPDATE`` in id order, publishes them and marks them done before it commits. A node
  that dies mid-batch holds nothing any more: its transaction is rolled back and another node
  takes the partition on its next round. (The rows are locked, not ``SKIP LOCKED``: skipping
  a locked row of a channel and publishing the next one would break its order.)
- **Exactly once.** Each row is published with its ``idempotency_key``, else
  ``hubbub-outbox:<table>:<id>``. A batch that was published but not marked (a crash, a lost
  connection) is published again later, and the history store drops the repeats: for
  channels with history, within ``idempotency_ttl``. Channels without history have no such
  store (no engine keeps idempotency keys for them): a node that lost its connection
  remembers what it published and marks those rows without publishing them again, and a node
  that stops (:meth:`OutboxConsumer.stop`) publishes no further row of its batch and marks
  those it published; but when the node dies between the publish and the commit of the mark
  (or another node reads the batch first, or the stop could not commit in time), the rows of
  that one batch are published again: at least once there.
- **Bad rows never block.** A row whose channel is refused (bad name, unknown namespace),
  whose data is not JSON or is larger than ``outbox_max_data_size``, whose
  ``idempotency_key`` is longer than :data:`hubbub.outbox.MAX_KEY_LENGTH`, or (in a
  ``SQL_ASCII`` database) whose text is not UTF-8 is marked done with the reason in
  ``error``, logged and counted (``hubbub_outbox_refused``). A publish that fails
  with :class:`hubbub.errors.StoreError` leaves the row (and the channel's later rows)
  pending: the channel is held back (the batches leave its rows alone) for a back-off of
  its own, doubling per failure in a row, while the other channels go on; the consumer backs
  off as a whole only when no publish of a round succeeded (the store is down).
- **Wake-up.** ``LISTEN`` on the table's name (the ``AFTER INSERT`` trigger notifies; the
  notification arrives at commit) and a look every ``outbox_poll_interval`` seconds anyway.
  PostgreSQL down or gone: logged, retried with a back-off (:func:`hubbub.periodic.backoff`),
  the node never fails because of it.
- **Bounded.** One connection per node; a batch holds at most ``outbox_batch_size`` rows
  and reads at most :data:`BATCH_MAX_BYTES` of data (plus its first row; each row at most
  ``outbox_max_data_size`` bytes: larger data is not even read), publishing at most
  :data:`CHANNELS_AT_ONCE` channels at once; done rows are deleted ``outbox_retention``
  seconds after they were marked. The stop takes at most its ``seconds``.
- **Names.** Every statement quotes the table's names (:func:`hubbub.outbox.quoted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hubbub.bounded import stop_tasks
from hubbub.config import Settings
from hubbub.core.jsontext import dumps, loads
from hubbub.core.publishlatency import Source
from hubbub.errors import ClientError, StoreError
from hubbub.outbox import (
    MAX_KEY_LENGTH,
    function_partitions,
    partition_expression,
    quoted,
    schema_statements,
)
from hubbub.periodic import backoff

if TYPE_CHECKING:
    import asyncpg

    from hubbub.node import Node

log = logging.getLogger(__name__)

#: Seconds to connect, and the longest one statement may take before the connection is
#: given up (and made anew).
CONNECT_TIMEOUT: Final = 10.0
COMMAND_TIMEOUT: Final = 30.0
#: Done rows deleted per statement, and statements per pruning (more wait for the next one).
PRUNE_BATCH: Final = 1000
PRUNE_ROUNDS: Final = 20
#: Seconds between two prunings at most.
PRUNE_EVERY: Final = 60.0
#: Rows remembered as published but not marked (the oldest are forgotten past this).
UNMARKED_MAX: Final = 10_000
#: Bytes of ``data`` one batch reads at most (past them the rest wait for the next batch; a
#: batch always takes its first row, itself at most ``outbox_max_data_size``).
BATCH_MAX_BYTES: Final = 16 * 1024 * 1024
#: Channels of one batch published at once at most.
CHANNELS_AT_ONCE: Final = 64
#: Channels held back at most (after a failed publish; past this the oldest are let go).
HELD_MAX: Final = 1000


@dataclass
class OutboxStats:
    """What the consumer of one node did (read by ``/metrics``)."""

    published: int = 0
    refused: int = 0
    failures: int = 0


_STATS: weakref.WeakKeyDictionary[Any, OutboxStats] = weakref.WeakKeyDictionary()


def stats_of(node: object) -> OutboxStats | None:
    """The stats of ``node``'s outbox consumer; None when it runs none."""
    return _STATS.get(node)


@dataclass(frozen=True, slots=True)
class Row:
    """A pending outbox row as read: ``data`` is None when it is larger than the limit;
    ``problem`` says why the row cannot be published when that is known from reading it."""

    id: int
    channel: str
    data: str | None
    size: int | None
    idempotency_key: str | None
    problem: str | None = None


def default_key(table: str, row_id: int) -> str:
    """The idempotency key of a row that has none of its own."""
    return f"hubbub-outbox:{table}:{row_id}"


def by_channel(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """``rows`` grouped by channel, each group in the order given (id order)."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.channel, []).append(row)
    return groups


def data_text(row: Row, max_size: int) -> str:
    """The JSON text to publish for ``row`` (compact, one line, as the server API publishes
    it); raises ValueError saying why the row cannot be published."""
    if row.problem is not None:
        raise ValueError(row.problem)
    key = row.idempotency_key
    if key is not None and len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"idempotency_key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if row.data is None:
        if row.size is None:
            raise ValueError("data is NULL")
        raise ValueError(
            f"data is {row.size} bytes; the limit is {max_size} (outbox_max_data_size)"
        )
    return dumps(loads(row.data))  # NotJSON is a ValueError


def select_sql(table: str, raw: bool = False) -> str:
    """The batch's statement: ``$1`` partition, ``$2`` rows at most, ``$3`` the largest data
    read, ``$4`` the bytes of data the batch reads at most, ``$5`` channels held back (their
    rows are left alone). It locks up to ``$2`` pending rows
    in id order and returns the first of them whose data, summed, stay within ``$4`` (the
    first row always; a row whose data is not read counts nothing), each with the number of
    rows locked. ``raw``: the text columns as their bytes (a ``SQL_ASCII`` database, whose
    text may not be UTF-8: :func:`decoded`)."""
    t = quoted(table)

    def text(column: str) -> str:
        return f"convert_to(o.{column}, 'SQL_ASCII')" if raw else f"o.{column}"

    return (
        f"WITH locked AS (SELECT id, octet_length(data) AS size FROM {t} "
        "WHERE partition = $1 AND done_at IS NULL AND channel <> ALL($5::text[]) "
        "ORDER BY id LIMIT $2 FOR UPDATE), "
        "read AS (SELECT id, size, CASE WHEN size <= $3 THEN size ELSE 0 END AS bytes, "
        "count(*) OVER () AS locked FROM locked), "
        "sized AS (SELECT *, sum(bytes) OVER (ORDER BY id) AS upto FROM read) "
        f"SELECT o.id, {text('channel')}, CASE WHEN s.size <= $3 THEN {text('data')} END, "
        f"s.size, {text('idempotency_key')}, s.locked "
        f"FROM sized AS s JOIN {t} AS o ON o.id = s.id "
        "WHERE s.upto <= $4 OR s.upto = s.bytes ORDER BY s.id"
    )


def decoded(record: Sequence[Any]) -> Row:
    """The :class:`Row` of a record of :func:`select_sql` (its text columns as bytes when
    read ``raw``: a row that is not UTF-8 gets a ``problem``)."""
    row_id, channel, data, size, key = record[0], record[1], record[2], record[3], record[4]
    if not isinstance(channel, bytes):
        return Row(row_id, channel, data, size, key)
    try:
        return Row(
            row_id,
            channel.decode(),
            None if data is None else data.decode(),
            size,
            None if key is None else key.decode(),
        )
    except UnicodeDecodeError as exc:
        name = channel.decode(errors="replace")
        return Row(row_id, name, None, size, None, f"the row is not UTF-8 text: {exc}")


class OutboxConsumer:
    """Publishes ``settings.outbox_table``'s rows through ``node``; see the module."""

    def __init__(self, node: Node, settings: Settings) -> None:
        assert settings.outbox_url is not None
        self.node = node
        self.url = settings.outbox_url
        self.table = settings.outbox_table
        self.partitions = settings.outbox_partitions
        self.batch_size = settings.outbox_batch_size
        self.poll_interval = settings.outbox_poll_interval
        self.retention = settings.outbox_retention
        self.max_size = settings.outbox_max_data_size
        self.stats = _STATS[node] = OutboxStats()
        self._select = select_sql(self.table)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._idle = asyncio.Event()  # (set: no batch with rows read under way)
        self._idle.set()
        self._limit = asyncio.Semaphore(CHANNELS_AT_ONCE)
        #: Channels whose publish failed with a StoreError: (loop time until which their
        #: rows are left alone, failures in a row).
        self._held: dict[str, tuple[float, int]] = {}
        self._consuming = False  # (a round and a pruning went through since the last failure)
        #: Rows this node published whose mark was not committed yet (a lost connection):
        #: they are marked, not published again, when this node reads them next (id -> error).
        self._unmarked: dict[int, str | None] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self, seconds: float = 5.0) -> None:
        """Stop consuming, within ``seconds``. A batch under way publishes no further row and
        marks those it published (at most half the time; else it is rolled back and its rows
        published again, see the module), then the consumer is cancelled."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if not self._idle.is_set():
            waiter = loop.create_task(self._idle.wait())
            try:
                await asyncio.wait({waiter, task}, timeout=seconds / 2)
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                waiter.cancel()
        await stop_tasks([task], until - loop.time(), "the outbox consumer")

    # -- the connection's life -----------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._consuming:  # it had worked: a new outage, the back-off starts anew
                    self._consuming = False
                    failures = 0
                failures += 1
                self.stats.failures += 1
                wait = backoff(self.poll_interval, failures)
                if failures == 1:
                    log.warning("outbox: %s; retrying in %.1fs", _describe(exc), wait)
                else:
                    log.warning(
                        "outbox: failed again (%d in a row: %s); retrying in %.1fs",
                        failures,
                        _describe(exc),
                        wait,
                    )
                await asyncio.sleep(wait)
            else:
                failures = 0

    async def _consume(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            self.url, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
        )
        try:
            raw = conn.get_settings().server_encoding.upper() == "SQL_ASCII"
            self._select = select_sql(self.table, raw)
            await self._prepare(conn)
            await conn.add_listener(self.table, self._notified)
            conn.add_termination_listener(self._terminated)
            log.info("outbox: consuming %s (%d partitions)", self.table, self.partitions)
            loop = asyncio.get_running_loop()
            next_prune = loop.time()
            store_failures = 0
            while not conn.is_closed():
                if self._stopping:
                    return
                self._wake.clear()
                more, store_failed = await self._round(conn)
                if loop.time() >= next_prune:
                    await self._prune(conn)
                    next_prune = loop.time() + min(PRUNE_EVERY, self.retention)
                # (only now: a failure that follows every connect, e.g. a statement the role
                # may not run, keeps backing off instead of starting anew each time)
                self._consuming = True
                if store_failed:
                    store_failures += 1
                    await asyncio.sleep(backoff(self.poll_interval, store_failures))
                    continue
                store_failures = 0
                if not more:
                    await _wait(self._wake, self.poll_interval)
            raise ConnectionError("the connection was closed")
        finally:
            conn.terminate()  # (immediate; a transaction under way is rolled back)

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    def _terminated(self, *_: Any) -> None:
        self._wake.set()

    async def _prepare(self, conn: asyncpg.Connection) -> None:
        """Create the table and its triggers where missing, and (re)write the order function
        when it splits the channels into another number of partitions (then the pending rows
        are moved to their new partitions, the table locked against writes meanwhile). Under
        an advisory lock, so that nodes starting together do it one at a time; nothing is run
        when all is in place (so a role without DDL rights can consume a table made by the
        application's migrations)."""
        if await self._schema_ready(conn):
            return
        t = self.table
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1), 0)", f"{t}:ddl")
            current = await self._function_partitions(conn)
            existed = await conn.fetchval("SELECT to_regclass($1)", quoted(t)) is not None
            if existed:
                # First: CREATE INDEX IF NOT EXISTS takes a SHARE lock even when the index is
                # there, and raising it to EXCLUSIVE later (repartitioning) deadlocks with a
                # batch of another node that holds ROW SHARE and wants to mark its rows.
                await conn.execute(f"LOCK TABLE {quoted(t)} IN EXCLUSIVE MODE")
            for statement in schema_statements(t, self.partitions):
                if statement.startswith("CREATE TRIGGER"):
                    if await _has_trigger(conn, t, statement.split()[2].strip('"')):
                        continue
                elif statement.startswith(f"CREATE OR REPLACE FUNCTION {quoted(t + '_order')}()"):
                    if current == self.partitions:
                        continue
                    if existed and current is not None:
                        await self._repartition(conn, statement, current)
                        continue
                await conn.execute(statement)
        log.info("outbox: set up the table %s (what it was missing)", t)

    async def _repartition(self, conn: asyncpg.Connection, function: str, old: int) -> None:
        t = quoted(self.table)
        # EXCLUSIVE: no insert (ROW EXCLUSIVE) and no consumer's batch (FOR UPDATE) meanwhile,
        # so that no row keeps a partition of the old number.
        await conn.execute(f"LOCK TABLE {t} IN EXCLUSIVE MODE")
        await conn.execute(function)
        status = await conn.execute(
            f"UPDATE {t} SET partition = {partition_expression(self.partitions)} "
            "WHERE done_at IS NULL"
        )
        log.warning(
            "outbox: %s was split into %d partitions, now %d (outbox_partitions): %s pending "
            "rows moved; every node should use the same number",
            self.table,
            old,
            self.partitions,
            status.split()[-1],
        )

    async def _schema_ready(self, conn: asyncpg.Connection) -> bool:
        if await conn.fetchval("SELECT to_regclass($1)", quoted(self.table)) is None:
            return False
        for name in (f"{self.table}_order", f"{self.table}_wake"):
            if not await _has_trigger(conn, self.table, name):
                return False
        return await self._function_partitions(conn) == self.partitions

    async def _function_partitions(self, conn: asyncpg.Connection) -> int | None:
        body = await conn.fetchval(
            "SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure($1)",
            f"{quoted(self.table + '_order')}()",
        )
        return function_partitions(body) if isinstance(body, str) else None

    # -- consuming -----------------------------------------------------------------------

    async def _round(self, conn: asyncpg.Connection) -> tuple[bool, bool]:
        """One batch of every partition this node can lock; (whether some partition has
        more pending rows, whether publishes failed with a StoreError and none succeeded: the
        store is down, not only some channels'). A channel whose publish failed is held back
        (its rows left alone) for a back-off of its own, so that it does not hold back the
        other channels of its partition."""
        done_before = self.stats.published + self.stats.refused
        more = failed = False
        for partition in range(self.partitions):
            if self._stopping:
                break
            full, store_failed = await self._batch(conn, partition)
            more = more or full
            failed = failed or store_failed
        if failed and self.stats.published + self.stats.refused > done_before:
            failed = False  # (some channels only: they are held back, the others go on)
        return more and not failed, failed

    async def _batch(self, conn: asyncpg.Connection, partition: int) -> tuple[bool, bool]:
        try:
            return await self._batch_of(conn, partition)
        finally:
            self._idle.set()

    async def _batch_of(self, conn: asyncpg.Connection, partition: int) -> tuple[bool, bool]:
        async with conn.transaction():
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1), $2)",
                f"{self.table}:partition",
                partition,
            )
            if not locked:
                return False, False
            records = await conn.fetch(
                self._select,
                partition,
                self.batch_size,
                self.max_size,
                BATCH_MAX_BYTES,
                self._held_channels(),
            )
            if not records:
                return False, False
            self._idle.clear()  # (rows to publish and mark: a stop lets them be marked)
            rows = [decoded(r) for r in records]
            locked = int(records[0][5])
            done: dict[int, str | None] = {}
            groups = by_channel(rows)
            results = await asyncio.gather(
                *(self._publish_channel(conn, group, done) for group in groups.values())
            )
            for channel, published in zip(groups, results, strict=True):
                self._hold(channel, not published)
            if done:
                ids = sorted(done)
                await conn.execute(
                    f"UPDATE {quoted(self.table)} AS o SET done_at = now(), error = m.error FROM "
                    "unnest($1::bigint[], $2::text[]) AS m(id, error) WHERE o.id = m.id",
                    ids,
                    [done[i] for i in ids],
                )
        for row_id in done:  # (committed: marked for good)
            self._unmarked.pop(row_id, None)
        more = locked == self.batch_size or len(rows) < locked
        return more, not all(results)

    def _held_channels(self) -> list[str]:
        now = asyncio.get_running_loop().time()
        return [channel for channel, (until, _) in self._held.items() if until > now]

    def _hold(self, channel: str, failed: bool) -> None:
        """Hold ``channel`` back after a failed publish (for longer after each in a row), or
        let it go after a good one."""
        if not failed:
            self._held.pop(channel, None)
            return
        failures = self._held.pop(channel, (0.0, 0))[1] + 1
        wait = backoff(self.poll_interval, failures)
        self._held[channel] = (asyncio.get_running_loop().time() + wait, failures)
        if len(self._held) > HELD_MAX:
            del self._held[next(iter(self._held))]

    async def _publish_channel(
        self, conn: asyncpg.Connection, rows: list[Row], done: dict[int, str | None]
    ) -> bool:
        """Publish one channel's rows in order into ``done`` (id -> error or None); stops at
        the first StoreError (False: the rest stay pending), and when the consumer stops."""
        async with self._limit:
            return await self._publish_rows(conn, rows, done)

    async def _publish_rows(
        self, conn: asyncpg.Connection, rows: list[Row], done: dict[int, str | None]
    ) -> bool:
        for row in rows:
            if self._stopping or conn.is_closed():  # (lost: its rows are another node's now)
                return True
            if row.id in self._unmarked:  # published by this node, its mark not committed
                done[row.id] = self._unmarked[row.id]
                continue
            error = await self._publish(row)
            if error is _RETRY:
                return False
            done[row.id] = self._unmarked[row.id] = error
            if len(self._unmarked) > UNMARKED_MAX:  # (rows another node marked meanwhile)
                del self._unmarked[next(iter(self._unmarked))]
        return True

    async def _publish(self, row: Row) -> str | None:
        node = self.node
        try:
            options = node.options(row.channel)
            text = data_text(row, self.max_size)
            key = row.idempotency_key or default_key(self.table, row.id)
            await node.publish(
                row.channel, text, options=options, idempotency_key=key, source=Source.HUB
            )
        except StoreError as exc:
            log.warning("outbox: row %d (%r) not published yet: %s", row.id, row.channel, exc)
            return _RETRY
        except ClientError as exc:
            return self._refused(row, exc.message)
        except ValueError as exc:
            return self._refused(row, str(exc))
        except Exception as exc:  # a bug, not the row's fault: but the row must not block
            log.exception("outbox: row %d (%r) could not be published", row.id, row.channel)
            return self._refused(row, f"internal error: {exc!r}")
        self.stats.published += 1
        return None

    def _refused(self, row: Row, reason: str) -> str:
        self.stats.refused += 1
        log.warning("outbox: row %d refused (channel %r): %s", row.id, row.channel, reason)
        return reason

    async def _prune(self, conn: asyncpg.Connection) -> None:
        """Delete done rows older than the retention, a bounded number per call. A refusal
        of PostgreSQL (a role without the DELETE right) is logged: the rows stay, the
        consumer goes on."""
        import asyncpg

        try:
            await self._delete_done(conn)
        except asyncpg.PostgresError as exc:
            if conn.is_closed():
                raise
            log.warning("outbox: could not delete the done rows: %s", _describe(exc))

    async def _delete_done(self, conn: asyncpg.Connection) -> None:
        for _ in range(PRUNE_ROUNDS):
            status = await conn.execute(
                f"DELETE FROM {quoted(self.table)} WHERE id IN (SELECT id FROM "
                f"{quoted(self.table)} WHERE "
                "done_at < now() - make_interval(secs => $1) LIMIT $2)",
                self.retention,
                PRUNE_BATCH,
            )
            if int(status.split()[-1]) < PRUNE_BATCH:
                return


#: What :meth:`OutboxConsumer._publish` returns for a row to retry (not an error text).
_RETRY: Final = "\0retry"


async def _has_trigger(conn: asyncpg.Connection, table: str, name: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2",
        quoted(table),
        name,
    )
    return found is not None


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
