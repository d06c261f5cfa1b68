"""What the SQLite store does beyond the shared contract."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from hubbub.core.types import Publication
from hubbub.engines.base import HistoryOptions
from hubbub.engines.sqlite import SCHEMA_VERSION, SqliteHistory
from hubbub.errors import StoreError
from tests.support.timing import scaled

KEEP = HistoryOptions(size=100, ttl=60)


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """Group commit: 200 appends in flight together take far fewer transactions."""
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    try:
        results = await asyncio.gather(
            *(store.append(f"c{i % 3}", Publication(str(i)), KEEP) for i in range(200))
        )
        assert store.commits.items == 200
        assert store.commits.batches < 20
        for channel in ("c0", "c1", "c2"):
            offsets = [
                p.offset for p, _ in results if p.data and int(p.data) % 3 == int(channel[1])
            ]
            assert offsets == list(range(1, len(offsets) + 1))
    finally:
        await store.close()


async def test_one_transaction_per_append_without_group_commit(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db", group_commit=False, retention_interval=0)
    await store.open()
    try:
        await asyncio.gather(*(store.append("c", Publication("1"), KEEP) for _ in range(20)))
        assert store.commits.batches == 20
    finally:
        await store.close()


async def test_durability_settings(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "h.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM hubbub_schema").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "h.db")
    conn.execute("CREATE TABLE hubbub_schema (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO hubbub_schema VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    with pytest.raises(StoreError, match="written by a newer hubbub"):
        await store.open()
    await store.close()


async def test_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    store = SqliteHistory(tmp_path / "dir.db", retention_interval=0)
    with pytest.raises(StoreError):
        await store.open()
    await store.close()


async def test_retention_pass_deletes_in_batches(tmp_path: Path) -> None:
    now = [1000.0]
    store = SqliteHistory(tmp_path / "h.db", clock=lambda: now[0], retention_interval=0)
    await store.open()
    try:
        short = HistoryOptions(size=10_000, ttl=5)
        await asyncio.gather(*(store.append("c", Publication("1"), short) for _ in range(2500)))
        now[0] += 10
        assert await store.expire() == 2500
        result = await store.read("c", since_offset=None, limit=-1, reverse=False)
        assert (result.publications, result.position.offset) == ([], 2500)
    finally:
        await store.close()


async def test_close_ends_a_retention_pass_that_loses_its_cancellation(tmp_path: Path) -> None:
    """A retention pass that loses the close's cancellation (an engine call on Python 3.11:
    hubbub.bounded) does not hold the close up: the loop is cancelled again and ends."""
    inside = asyncio.Event()
    lost = False

    class Losing(SqliteHistory):
        async def expire(self) -> int:
            nonlocal lost
            if not lost:
                lost = True
                inside.set()
                with contextlib.suppress(asyncio.CancelledError):  # lost: the loop goes on
                    await asyncio.sleep(3600)
            return 0

    store = Losing(tmp_path / "h.db", retention_interval=0.01)
    await store.open()
    await asyncio.wait_for(inside.wait(), scaled(5))
    closing = asyncio.ensure_future(store.close())
    done, _ = await asyncio.wait({closing}, timeout=scaled(2))
    try:
        assert closing in done, "close waited on a retention loop that carried on"
    finally:
        closing.cancel()  # (a wait_for here would lose it too: the stop suppresses it)
        await asyncio.wait({closing})
