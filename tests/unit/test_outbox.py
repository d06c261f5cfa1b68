"""The outbox's pure parts: the helper's checks, the DDL, the consumer's row handling, the
settings (the database parts: tests/e2e/test_outbox.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubbub import outbox
from hubbub.config import Settings, load_settings
from hubbub.errors import ConfigError
from hubbub.outboxconsumer import Row, by_channel, data_text, default_key


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
    assert "CREATE TABLE IF NOT EXISTS app_box" in text
    assert "pg_advisory_xact_lock(hashtext('app_box'), hashtext(NEW.channel))" in text
    assert "nextval('app_box_id_seq')" in text
    assert text.index("pg_advisory_xact_lock") < text.index("nextval")  # id after the lock
    assert [s.split()[2] for s in ddl if s.startswith("CREATE TRIGGER")] == [
        "app_box_order",
        "app_box_wake",
    ]
    assert "data text NOT NULL" in text  # text, not jsonb: published as written
    assert "ON app_box (partition, id) WHERE done_at IS NULL" in text


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
        ("OUTBOX_RETENTION", "0"),
        ("OUTBOX_MAX_DATA_SIZE", "0"),
    ]:
        with pytest.raises(ConfigError, match=f"HUBBUB_{key}"):
            load_settings(environ={f"HUBBUB_{key}": value})


def test_the_recipe_shows_the_ddl_hubbub_runs() -> None:
    recipe = (Path(__file__).resolve().parents[2] / "docs/recipes/outbox.md").read_text()
    block = recipe[recipe.index("```sql\nCREATE SEQUENCE") + len("```sql\n") :]
    block = block[: block.index("```")]
    assert block == ";\n".join(outbox.schema_statements()) + ";\n"
