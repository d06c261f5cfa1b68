"""What the SQLite store does beyond the shared contract."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
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


async def test_one_batch_over_many_channels_keeps_every_stream(tmp_path: Path) -> None:
    """A batch naming more channels than one ``IN (...)`` list holds: every stream's offsets
    go on from where the last batch left them, and history keeps ``size`` per channel."""
    small = HistoryOptions(size=2, ttl=60)
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    try:
        channels = [f"c{i}" for i in range(1200)]
        for round_ in range(3):
            results = await asyncio.gather(
                *(store.append(c, Publication(f'"{round_}"'), small) for c in channels)
            )
            assert [p.offset for p, new in results] == [round_ + 1] * len(channels)
            assert all(new for _, new in results)
        assert store.commits.batches < 10  # (batched: the case this test is about)
        for channel in ("c0", "c777", "c1199"):
            got = await store.read(channel, since_offset=None, limit=-1, reverse=False)
            assert [p.offset for p in got.publications] == [2, 3]
            assert got.position.offset == 3
    finally:
        await store.close()


async def test_a_key_repeated_within_one_batch_stores_once(tmp_path: Path) -> None:
    """Two appends with one idempotency key in the same transaction: the second gets the
    first's publication (not new), and the stream grows by one."""
    keyed = HistoryOptions(size=10, ttl=60, idempotency_ttl=60)
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    try:
        results = await asyncio.gather(
            store.append("c", Publication('"a"'), keyed, "k"),
            store.append("c", Publication('"b"'), keyed, None),
            store.append("c", Publication('"c"'), keyed, "k"),
        )
        assert store.commits.batches == 1
        assert [(p.offset, p.data, new) for p, new in results] == [
            (1, '"a"', True),
            (2, '"b"', True),
            (1, '"a"', False),
        ]
        later, new = await store.append("c", Publication('"d"'), keyed, "k")
        assert (later.offset, later.data, new) == (1, '"a"', False)
        position = await store.position("c")
        assert position.offset == 2
    finally:
        await store.close()


async def test_an_expired_stream_restarts_only_when_written(tmp_path: Path) -> None:
    """A stream whose meta outlived ``meta_ttl`` starts anew (new epoch, old rows gone) with
    its next append; one only named by an idempotent repeat in a batch is left as it is."""
    now = [1000.0]
    keyed = HistoryOptions(size=10, ttl=10_000, idempotency_ttl=10_000)
    store = SqliteHistory(
        tmp_path / "h.db", clock=lambda: now[0], meta_ttl=100, retention_interval=0
    )
    await store.open()
    try:
        await store.append("old", Publication('"1"'), keyed)
        await store.append("kept", Publication('"1"'), keyed, "k")
        before = await store.position("old")
        now[0] += 500
        repeat, new = await store.append("kept", Publication('"2"'), keyed, "k")
        assert (repeat.offset, new) == (1, False)
        fresh, new = await store.append("old", Publication('"2"'), keyed)
        assert (fresh.offset, new) == (1, True)
        after = await store.read("old", since_offset=None, limit=-1, reverse=False)
        assert [p.data for p in after.publications] == ['"2"']
        assert after.position.epoch != before.epoch
    finally:
        await store.close()


@pytest.mark.parametrize("thread_ending", [False, True])
async def test_a_call_while_the_store_closes_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_ending: bool
) -> None:
    """Once close() has closed the connection, a read is refused as 'not open' (StoreError):
    not run on a new connection that nothing closes, nor the worker's RuntimeError once its
    thread is told to end."""
    from hubbub.engines import sqlite as sqlite_module
    from hubbub.engines.worker import Worker

    ending = asyncio.Event()
    go_on = asyncio.Event()

    class HeldWorker(Worker):
        async def close(self) -> None:
            if thread_ending:  # (what Worker.close does first)
                self._closed = True
                self._jobs.put(None)
            ending.set()
            await go_on.wait()
            await super().close()

    monkeypatch.setattr(sqlite_module, "Worker", HeldWorker)
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    await store.append("c", Publication("1"), KEEP)
    closing = asyncio.ensure_future(store.close())
    await ending.wait()  # the connection is closed; the thread is being ended
    try:
        with pytest.raises(StoreError, match="not open"):
            await store.read("c", since_offset=None, limit=10, reverse=False)
    finally:
        go_on.set()
        await closing
    assert store._conn is None


async def test_a_call_queued_behind_the_close_is_refused_not_run(tmp_path: Path) -> None:
    """A read made while close() waits for the calls before it is refused as 'not open': it
    neither meets the closed connection nor opens a new one."""
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    gate = threading.Event()
    held = asyncio.ensure_future(store.with_db(lambda conn: gate.wait()))
    await asyncio.sleep(0)  # (the held call is queued: the thread waits on the gate)
    closing = asyncio.ensure_future(store.close())
    for _ in range(10):  # let close() get to waiting for the thread
        await asyncio.sleep(0)
    read = asyncio.ensure_future(store.read("c", since_offset=None, limit=10, reverse=False))
    await asyncio.sleep(0)
    gate.set()
    await held
    await closing
    with pytest.raises(StoreError, match="not open"):
        await read
    assert store._conn is None


async def test_a_cancelled_close_still_ends_the_thread_and_closes_the_connection(
    tmp_path: Path,
) -> None:
    """close() cancelled while its last calls run: the connection is closed and the thread
    ends all the same (nothing else would end it: the store no longer has it)."""
    store = SqliteHistory(tmp_path / "h.db", retention_interval=0)
    await store.open()
    worker = store._worker
    assert worker is not None
    gate = threading.Event()
    held = asyncio.ensure_future(store.with_db(lambda conn: gate.wait()))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(store.close())
    for _ in range(10):  # let close() get to waiting for the thread
        await asyncio.sleep(0)
    closing.cancel()
    await asyncio.sleep(0)
    gate.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert not worker._thread.is_alive()
    assert store._conn is None
