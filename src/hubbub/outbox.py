"""Publish from your database transaction: the outbox table and :func:`publish`, its writer.

The application inserts a row ``(channel, data, idempotency_key)`` into the outbox table in
the same PostgreSQL transaction as its own writes; hubbub's consumer
(:mod:`hubbub.outboxconsumer`, on when ``outbox_url`` is set) publishes each committed row
and marks it done. So a publication exists if and only if the application's transaction
committed. docs/recipes/outbox.md says what is guaranteed and what it costs.

Guarantees of this module:

- :func:`publish` writes exactly one row with the caller's connection, inside the caller's
  transaction, and never commits, rolls back or opens a transaction itself; a connection
  that is not in a transaction (asyncpg outside ``conn.transaction()``, psycopg in
  autocommit outside ``conn.transaction()``) is refused with :class:`OutboxError` before
  anything is written, since the row would be committed on its own.
- ``data`` is stored as the JSON text :func:`hubbub.core.jsontext.dumps` makes (compact, the
  same text the server API would publish); values JSON cannot hold, and an
  ``idempotency_key`` longer than :data:`MAX_KEY_LENGTH`, are refused before anything is
  written.
- Table names are checked (:func:`check_table`) and always quoted in the SQL, so a name
  that is also a keyword (``user``) works and nothing else can be injected.
- :func:`schema_statements` is the DDL hubbub runs at start (idempotent), for applications
  that prefer their own migrations.

Nothing here imports asyncpg or psycopg: the connection's type says which one it is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, overload

from hubbub.core.jsontext import dumps
from hubbub.errors import HubbubError

if TYPE_CHECKING:  # (neither driver is needed to import this module)
    import asyncpg
    import psycopg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["DEFAULT_TABLE", "OutboxError", "check_table", "publish", "schema_statements"]

#: The outbox table's name unless configured (``outbox_table``).
DEFAULT_TABLE: Final = "hubbub_outbox"
#: The number of partitions unless configured (``outbox_partitions``), and the most.
DEFAULT_PARTITIONS: Final = 4
MAX_PARTITIONS: Final = 1024
#: The longest ``idempotency_key`` of a row, in characters (a longer one would not fit the
#: history stores' indexes: such a row is refused, not retried for ever).
MAX_KEY_LENGTH: Final = 255
_MARK: Final = "hubbub outbox partitions: "
#: Table names: a plain lower-case SQL identifier, short enough for the names made from it.
_TABLE_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,39}")


class OutboxError(HubbubError):
    """An outbox row that cannot be written as asked (no transaction, bad arguments)."""


def check_table(table: str) -> str:
    """Return ``table`` if it is a usable outbox table name, else raise ValueError."""
    if not _TABLE_RE.fullmatch(table):
        raise ValueError(
            f"{table!r} is not a usable table name: lower-case letters, digits and '_', "
            "not starting with a digit, at most 40 characters"
        )
    return table


def schema_statements(
    table: str = DEFAULT_TABLE, partitions: int = DEFAULT_PARTITIONS
) -> list[str]:
    """The DDL of the outbox ``table`` split into ``partitions`` (``outbox_partitions``): each
    statement is idempotent (``IF NOT EXISTS``, ``OR REPLACE``) except the two ``CREATE
    TRIGGER``, which hubbub runs only when the trigger is missing (PostgreSQL before 14 has
    no ``CREATE OR REPLACE TRIGGER``).

    The ``BEFORE INSERT`` trigger (:func:`order_function`) takes a transaction-level advisory
    lock on the row's channel and only then takes the row's id from the sequence:
    transactions inserting into one channel therefore commit one after the other, in id
    order, so a consumer that reads a channel's rows by id never meets a smaller id later.
    It also sets the row's partition. The ``AFTER INSERT`` statement trigger notifies the
    consumer (delivered at commit; once per transaction)."""
    t = check_table(table)
    q = quoted
    return [
        f"CREATE SEQUENCE IF NOT EXISTS {q(t + '_id_seq')}",
        f"""CREATE TABLE IF NOT EXISTS {q(t)} (
    id bigint PRIMARY KEY,
    channel text NOT NULL,
    data text NOT NULL,
    idempotency_key text,
    partition int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    error text
)""",
        f"CREATE INDEX IF NOT EXISTS {q(t + '_pending')} ON {q(t)} (partition, id) "
        "WHERE done_at IS NULL",
        f"CREATE INDEX IF NOT EXISTS {q(t + '_done')} ON {q(t)} (done_at) "
        "WHERE done_at IS NOT NULL",
        order_function(t, partitions),
        f"""CREATE OR REPLACE FUNCTION {q(t + "_wake")}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{t}', '');
    RETURN NULL;
END
$$""",
        f"CREATE TRIGGER {q(t + '_order')} BEFORE INSERT ON {q(t)} FOR EACH ROW "
        f"EXECUTE FUNCTION {q(t + '_order')}()",
        f"CREATE TRIGGER {q(t + '_wake')} AFTER INSERT ON {q(t)} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {q(t + '_wake')}()",
    ]


def quoted(name: str) -> str:
    """``name`` (a checked table name, or one made from it) as a quoted SQL identifier: a
    name that is also an SQL keyword (``user``, ``order``) works as any other."""
    return f'"{name}"'


def partition_expression(partitions: int, channel: str = "channel") -> str:
    """SQL for the partition of the channel in column (or expression) ``channel``."""
    return f"(hashtext({channel}) & 2147483647) % {int(partitions)}"


def order_function(table: str, partitions: int) -> str:
    """The ``BEFORE INSERT`` trigger's function: channel lock, then id and partition. Its
    body names the partition count (:func:`function_partitions` reads it back)."""
    t = check_table(table)
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be 1 to {MAX_PARTITIONS}")
    name = quoted(t + "_order")
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- {_MARK}{partitions}
    PERFORM pg_advisory_xact_lock(hashtext('{t}'), hashtext(NEW.channel));
    NEW.id := nextval('{quoted(t + "_id_seq")}');
    NEW.partition := {partition_expression(partitions, "NEW.channel")};
    RETURN NEW;
END
$$"""


def function_partitions(body: str) -> int | None:
    """The partition count written in an order function's body (``pg_proc.prosrc``)."""
    match = re.search(rf"-- {_MARK}(\d+)", body)
    return int(match.group(1)) if match else None


def _row(channel: str, data: Any, idempotency_key: str | None) -> tuple[str, str, str | None]:
    if not isinstance(channel, str) or not channel:
        raise OutboxError("channel must be a non-empty string")
    if idempotency_key is not None and not (isinstance(idempotency_key, str) and idempotency_key):
        raise OutboxError("idempotency_key must be a non-empty string or None")
    if idempotency_key is not None and len(idempotency_key) > MAX_KEY_LENGTH:
        raise OutboxError(
            f"idempotency_key is {len(idempotency_key)} characters long; the limit is "
            f"{MAX_KEY_LENGTH}"
        )
    try:
        text = dumps(data)
    except (TypeError, ValueError) as exc:
        raise OutboxError(f"data is not a JSON value: {exc}") from None
    return channel, text, idempotency_key


@overload
def publish(
    conn: psycopg.Connection[Any],
    channel: str,
    data: Any,
    *,
    idempotency_key: str | None = None,
    table: str = DEFAULT_TABLE,
) -> int: ...


@overload
def publish(
    conn: asyncpg.Connection | PoolConnectionProxy | psycopg.AsyncConnection[Any],
    channel: str,
    data: Any,
    *,
    idempotency_key: str | None = None,
    table: str = DEFAULT_TABLE,
) -> Awaitable[int]: ...


def publish(
    conn: Any,
    channel: str,
    data: Any,
    *,
    idempotency_key: str | None = None,
    table: str = DEFAULT_TABLE,
) -> int | Awaitable[int]:
    """Write one outbox row: hubbub publishes ``data`` (any JSON value) to ``channel`` once
    the caller's transaction commits, and never when it rolls back.

    ``conn``: an asyncpg connection or pooled connection (``await publish(conn, ...)``), a
    psycopg 3 ``AsyncConnection`` (``await``) or a psycopg 3 ``Connection`` (called plainly);
    it must be in a transaction (see the module docstring). Returns the row's id (an
    ``int``; awaitable for the async connections). ``idempotency_key``: publications with the
    same key in the channel within ``idempotency_ttl`` are published once (else hubbub
    derives one from the row's id); at most :data:`MAX_KEY_LENGTH` characters. Raises
    :class:`OutboxError` for bad arguments or no transaction; the driver's own errors (e.g.
    a missing table) as the driver raises them."""
    insert = f"INSERT INTO {quoted(check_table(table))} (channel, data, idempotency_key) "
    row = _row(channel, data, idempotency_key)
    driver = _driver(conn)
    if driver == "asyncpg":
        if not conn.is_in_transaction():
            raise OutboxError("publish needs a transaction: use it inside conn.transaction()")
        return _fetch_asyncpg(conn, insert + "VALUES ($1, $2, $3) RETURNING id", row)
    if driver == "psycopg":
        if conn.autocommit and int(conn.info.transaction_status) == 0:  # IDLE: no transaction
            raise OutboxError(
                "publish needs a transaction: use it inside conn.transaction(), or without "
                "autocommit"
            )
        sql = insert + "VALUES (%s, %s, %s) RETURNING id"
        if hasattr(conn, "__aenter__"):
            return _fetch_psycopg_async(conn, sql, row)
        return int(conn.execute(sql, row).fetchone()[0])
    raise OutboxError(f"not an asyncpg or psycopg connection: {type(conn).__qualname__}")


def _driver(conn: Any) -> str | None:
    """``"asyncpg"`` or ``"psycopg"``: the driver whose connection class ``conn`` is or
    derives from (asyncpg's ``connection_class=``, psycopg's ``connection_class=`` and
    ``row_factory`` subclasses), else None."""
    for cls in type(conn).__mro__:
        top = cls.__module__.partition(".")[0]
        if top in ("asyncpg", "psycopg"):
            return top
    return None


async def _fetch_asyncpg(conn: Any, sql: str, row: tuple[str, str, str | None]) -> int:
    return int(await conn.fetchval(sql, *row))


async def _fetch_psycopg_async(conn: Any, sql: str, row: tuple[str, str, str | None]) -> int:
    cursor = await conn.execute(sql, row)
    fetched = await cursor.fetchone()
    return int(fetched[0])
