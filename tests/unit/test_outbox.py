"""The outbox's pure parts: the helper's checks, the DDL, the consumer's row handling, the
settings (the database parts: tests/e2e/test_outbox.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from hubbub import outbox
from hubbub.config import Settings, load_settings
from hubbub.errors import ClientError, ConfigError, StoreError
from hubbub.outboxconsumer import OutboxConsumer, Row, by_channel, data_text, decoded, default_key


@pytest.mark.parametrize("name", ["hubbub_outbox", "app_outbox2", "_x"])
def test_usable_table_names(name: str) -> None:
    assert outbox.check_table(name) == name


@pytest.mark.parametrize("name", ["", "Outbox", "2x", "a-b", "a;drop table x", "x" * 41, "s.t"])
def test_unusable_table_names(name: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        outbox.check_table(name)


def test_schema_names_everything_after_the_table() -> None:
    ddl = outbox.schema_statements("app_box")
    text = "\n".join(ddl)
    assert "hubbub_outbox" not in text
    assert 'CREATE TABLE IF NOT EXISTS "app_box"' in text
    assert "pg_advisory_xact_lock(hashtext('app_box'), hashtext(NEW.channel))" in text
    assert """nextval('"app_box_id_seq"')""" in text
    assert text.index("pg_advisory_xact_lock") < text.index("nextval")  # id after the lock
    assert [s.split()[2] for s in ddl if s.startswith("CREATE TRIGGER")] == [
        '"app_box_order"',
        '"app_box_wake"',
    ]
    assert "data text NOT NULL" in text  # text, not jsonb: published as written
    assert 'ON "app_box" (partition, id) WHERE done_at IS NULL' in text


def test_every_name_is_quoted() -> None:
    """A table named as an SQL keyword works (its names are quoted wherever SQL names them)."""
    text = "\n".join(outbox.schema_statements("user"))
    assert not re.search(r"(?<![\"'])\buser\b(?![\"'])", text.replace("'user'", "")), text
    assert outbox.check_table("user") == "user"


def test_the_order_function_names_its_partitions() -> None:
    body = outbox.order_function("t", 12)
    assert "NEW.partition := (hashtext(NEW.channel) & 2147483647) % 12;" in body
    assert outbox.function_partitions(body) == 12
    assert outbox.function_partitions("BEGIN RETURN NEW; END") is None
    for bad in (0, 1025):
        with pytest.raises(ValueError, match="partitions"):
            outbox.order_function("t", bad)


class NotAConnection:
    pass


@pytest.mark.parametrize(
    ("channel", "data", "key", "match"),
    [
        ("", 1, None, "channel"),
        ("h:a", float("nan"), None, "JSON"),
        ("h:a", object(), None, "JSON"),
        ("h:a", 1, "", "idempotency_key"),
        ("h:a", 1, 5, "idempotency_key"),
        ("h:a", 1, "k" * 256, "idempotency_key is 256 characters long; the limit is 255"),
        ("h:a", 1, None, "not an asyncpg or psycopg connection"),
    ],
)
def test_publish_refuses_before_writing(channel: str, data: Any, key: Any, match: str) -> None:
    with pytest.raises(outbox.OutboxError, match=match):
        outbox.publish(NotAConnection(), channel, data, idempotency_key=key)


def test_publish_refuses_a_bad_table() -> None:
    with pytest.raises(ValueError, match="table name"):
        outbox.publish(NotAConnection(), "h:a", 1, table="x; drop")


def row(id: int, channel: str, data: str | None = "1", size: int = 1) -> Row:
    return Row(id, channel, data, size, None)


def test_rows_grouped_by_channel_in_id_order() -> None:
    rows = [row(1, "a"), row(2, "b"), row(3, "a"), row(5, "c"), row(7, "b")]
    groups = by_channel(rows)
    assert {c: [r.id for r in g] for c, g in groups.items()} == {
        "a": [1, 3],
        "b": [2, 7],
        "c": [5],
    }


def test_data_text_is_compact_json_or_a_reason() -> None:
    assert data_text(row(1, "a", '{ "k" : [1, 2],\n "s": "\\u00e9" }'), 100) == (
        '{"k":[1,2],"s":"\\u00e9"}'
    )
    for bad in ("{", "NaN", "1e999", ""):
        with pytest.raises(ValueError, match="JSON"):
            data_text(row(1, "a", bad), 100)
    with pytest.raises(ValueError, match="5000 bytes; the limit is 100"):
        data_text(row(1, "a", None, 5000), 100)
    with pytest.raises(ValueError, match="data is NULL"):  # (a table made without NOT NULL)
        data_text(Row(1, "a", None, None, None), 100)
    with pytest.raises(ValueError, match="idempotency_key is 256 characters long"):
        data_text(Row(1, "a", "1", 1, "k" * 256), 100)  # (would not fit the stores' indexes)
    assert data_text(Row(1, "a", "1", 1, "k" * 255), 100) == "1"
    with pytest.raises(ValueError, match="not UTF-8"):
        data_text(decoded((1, b"h:a", b'"\xff"', 3, None, 1)), 100)
    assert decoded((1, b"h:a", '"\u00e9"'.encode(), 4, b"k", 1)) == Row(
        1, "h:a", '"\u00e9"', 4, "k"
    )


def test_default_key_names_the_table_and_row() -> None:
    assert default_key("hubbub_outbox", 42) == "hubbub-outbox:hubbub_outbox:42"
    assert default_key("a", 1) != default_key("b", 1)


def test_outbox_settings() -> None:
    plain = Settings()
    assert plain.outbox_url is None
    assert plain.outbox_table == outbox.DEFAULT_TABLE
    on = load_settings(environ={"HUBBUB_OUTBOX_URL": "postgresql://u@h:5432/db"})
    assert on.outbox_url == "postgresql://u@h:5432/db"
    assert load_settings(environ={"HUBBUB_OUTBOX_URL": ""}).outbox_url is None
    for key, value in [
        ("OUTBOX_URL", "redis://x"),
        ("OUTBOX_TABLE", "Bad"),
        ("OUTBOX_PARTITIONS", "0"),
        ("OUTBOX_BATCH_SIZE", "0"),
        ("OUTBOX_POLL_INTERVAL", "0"),
        ("OUTBOX_POLL_INTERVAL", "0.001"),  # (a busy loop when idle; notifications wake it)
        ("OUTBOX_RETENTION", "0"),
        ("OUTBOX_RETENTION", "inf"),  # (no interval PostgreSQL can subtract from now())
        ("OUTBOX_RETENTION", "1e17"),
        ("OUTBOX_MAX_DATA_SIZE", str(65 * 1024 * 1024)),
        ("OUTBOX_MAX_DATA_SIZE", "0"),
    ]:
        with pytest.raises(ConfigError, match=f"HUBBUB_{key}"):
            load_settings(environ={f"HUBBUB_{key}": value})


def test_the_recipe_shows_the_ddl_hubbub_runs() -> None:
    recipe = (Path(__file__).resolve().parents[2] / "docs/recipes/outbox.md").read_text()
    block = recipe[recipe.index("```sql\nCREATE SEQUENCE") + len("```sql\n") :]
    block = block[: block.index("```")]
    assert block == ";\n".join(outbox.schema_statements()) + ";\n"


# -- the consumer's batches, with a fake connection and node -------------------------------


class FakeTransaction:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    async def __aenter__(self) -> None:
        self.conn.marks = {}

    async def __aexit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None and self.conn.fail_commits:
            self.conn.fail_commits -= 1
            raise ConnectionError("the connection was lost at the commit")
        if kind is None:
            for row_id, error in self.conn.marks.items():
                self.conn.table[row_id] = (*self.conn.table[row_id][:2], True, error)


class FakeConn:
    """The outbox table as id -> (channel, data, done, error)."""

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.table = {i + 1: (c, d, False, None) for i, (c, d) in enumerate(rows)}
        self.marks: dict[int, str | None] = {}
        self.fail_commits = 0
        self.closed = False

    def transaction(self) -> FakeTransaction:
        return FakeTransaction(self)

    def is_closed(self) -> bool:
        return self.closed

    async def fetchval(self, sql: str, *args: Any) -> Any:
        assert "pg_try_advisory_xact_lock" in sql
        return True

    async def fetch(
        self, sql: str, partition: int, limit: int, max_size: int, budget: int, held: Any = ()
    ) -> list[Any]:
        pending = [
            (i, c, d, len(d), None)
            for i, (c, d, done, _) in self.table.items()
            if not done and c not in held
        ]
        locked = pending[:limit]
        return [(*r, len(locked)) for r in locked]

    async def execute(self, sql: str, ids: list[int], errors: list[str | None]) -> str:
        assert sql.startswith("UPDATE")
        self.marks.update(zip(ids, errors, strict=True))
        return f"UPDATE {len(ids)}"


class FakeNode:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, str]] = []
        self.failing: set[str] = set()  # data texts whose publish fails (store down)

    def options(self, channel: str) -> object:
        if channel.startswith("nope:"):
            raise ClientError(102, "unknown channel: no namespace 'nope'")
        return object()

    async def publish(self, channel: str, data: str, **kw: Any) -> None:
        if data in self.failing:
            raise StoreError("the store is down")
        self.published.append((channel, data, kw["idempotency_key"]))


def consumer(node: FakeNode, **settings: Any) -> OutboxConsumer:
    return OutboxConsumer(node, Settings(outbox_url="postgresql://u@h/db", **settings))  # type: ignore[arg-type]


async def test_a_lost_commit_does_not_publish_again_from_this_node() -> None:
    node = FakeNode()
    conn = FakeConn([("a", "1"), ("b", "2"), ("a", "3"), ("nope:x", "4")])
    box = consumer(node)
    conn.fail_commits = 1
    with pytest.raises(ConnectionError):
        await box._batch(conn, 0)  # type: ignore[arg-type]
    assert len(node.published) == 3 and not any(done for _, _, done, _ in conn.table.values())
    assert await box._batch(conn, 0) == (False, False)  # type: ignore[arg-type]
    assert sorted(d for _, d, _ in node.published) == ["1", "2", "3"]  # none twice
    assert [(done, error) for _, _, done, error in conn.table.values()] == [
        (True, None),
        (True, None),
        (True, None),
        (True, "unknown channel: no namespace 'nope'"),
    ]
    assert box._unmarked == {}
    assert ("a", "1", "hubbub-outbox:hubbub_outbox:1") in node.published
    assert (box.stats.published, box.stats.refused) == (3, 1)


async def test_a_store_failure_holds_back_that_channel_only() -> None:
    node = FakeNode()
    conn = FakeConn([("a", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("b", "5")])
    box = consumer(node, outbox_batch_size=5)
    node.failing = {"2"}
    assert await box._batch(conn, 0) == (True, True)  # type: ignore[arg-type]
    assert sorted(d for _, d, _ in node.published) == ["1", "3", "5"]  # not 4: after 2
    assert [done for _, _, done, _ in conn.table.values()] == [True, False, True, False, True]
    assert box._held_channels() == ["a"]  # (left alone for a back-off of its own)
    assert await box._batch(conn, 0) == (False, False)  # type: ignore[arg-type]
    assert [d for _, d, _ in node.published] == ["1", "3", "5"]
    box._held["a"] = (0.0, 1)  # (its back-off is over)
    node.failing = set()
    assert await box._batch(conn, 0) == (False, False)  # type: ignore[arg-type]
    assert [d for c, d, _ in node.published if c == "a"] == ["1", "2", "4"]


async def test_a_stop_during_a_batch_marks_what_was_published() -> None:
    """A stop (SIGTERM, a rolling restart) while a batch publishes: no further row is
    published, those published are marked (else they would be published again by the next
    node: twice for channels without history)."""
    node = FakeNode()
    conn = FakeConn([("a", str(n)) for n in range(20)])
    box = consumer(node, outbox_batch_size=20)
    publish = node.publish

    three = asyncio.Event()

    async def slow(channel: str, data: str, **kw: Any) -> None:
        await asyncio.sleep(0.01)
        await publish(channel, data, **kw)
        if len(node.published) == 3:
            three.set()

    node.publish = slow  # type: ignore[method-assign]
    box._task = asyncio.ensure_future(box._round(conn))  # type: ignore[arg-type]
    await three.wait()
    await box.stop(5)
    published = [d for _, d, _ in node.published]
    assert 3 <= len(published) < 20
    assert [d for _, d, done, _ in conn.table.values() if done] == published
    assert box._task.done()


async def test_a_channel_whose_publish_fails_does_not_hold_back_the_others() -> None:
    """A channel whose publishes fail (a store error of its own) is held back with a back-off
    of its own: the next batches pass over its rows (which stay pending, in order) to the
    other channels' rows, and the consumer does not back off as a whole."""
    node = FakeNode()
    conn = FakeConn([*(("a", f"{n}") for n in range(5)), ("b", "10"), ("b", "11")])
    box = consumer(node, outbox_batch_size=5, outbox_partitions=1)
    node.failing = {"0"}
    assert await box._round(conn) == (False, True)  # type: ignore[arg-type]
    assert node.published == []  # (the batch was all a's: nothing else to tell)
    assert await box._round(conn) == (False, False)  # type: ignore[arg-type]
    assert [d for _, d, _ in node.published] == ["10", "11"]
    assert [done for _, _, done, _ in conn.table.values()] == [False] * 5 + [True] * 2
    box._held["a"] = (0.0, box._held["a"][1])  # (its back-off is over)
    node.failing = set()
    assert await box._round(conn) == (True, False)  # type: ignore[arg-type]  (a full batch)
    assert [d for _, d, _ in node.published] == ["10", "11", "0", "1", "2", "3", "4"]
    assert box._held == {}


async def test_a_batch_stops_publishing_once_its_connection_is_lost() -> None:
    """The connection lost mid-batch (the batch's locks are gone, another node may take its
    rows): no further row of the batch is published by this node."""
    node = FakeNode()
    conn = FakeConn([("a", str(n)) for n in range(10)])
    box = consumer(node, outbox_batch_size=10)
    publish = node.publish

    async def publish_then_lose(channel: str, data: str, **kw: Any) -> None:
        await publish(channel, data, **kw)
        if data == "2":
            conn.closed = True

    node.publish = publish_then_lose  # type: ignore[method-assign]
    await box._batch(conn, 0)  # type: ignore[arg-type]
    assert [d for _, d, _ in node.published] == ["0", "1", "2"]
