"""Publishing from the application's transaction: `hubbub serve` with `outbox_url`, the
application writing rows with hubbub.outbox.publish (asyncpg and psycopg) into a real
PostgreSQL (the session's throw-away one, a fresh database per test)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psycopg
import pytest

from hubbub import outbox
from tests.conftest import StartServer
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

KEY = "outbox-api-key-0123456789abcdef"
CONFIG = """
api_key = "outbox-api-key-0123456789abcdef"
demos = false
outbox_poll_interval = 0.5
outbox_max_data_size = 2000
"""
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
NAMESPACES = """
[[namespaces]]
name = "h"
history_size = 10000
history_ttl = 600
"""


def start(
    start_server: StartServer,
    url: str,
    *args: str,
    extra: str = "",
    env: dict[str, str] | None = None,
) -> ServerProcess:
    return start_server(
        *args, env={"HUBBUB_OUTBOX_URL": url, **(env or {})}, config=CONFIG + extra + NAMESPACES
    )


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def history(server: ServerProcess, channel: str) -> list[Any]:
    result = await api(server, "history", {"channel": channel, "limit": -1})
    return [pub["data"] for pub in result.get("publications", [])]


async def pending(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM hubbub_outbox WHERE done_at IS NULL"))
    finally:
        await conn.close()


async def all_done(url: str, rows: int) -> None:
    """Until the table holds ``rows`` rows, all of them done."""

    async def check() -> bool:
        conn = await asyncpg.connect(url)
        try:
            total, left = await conn.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE done_at IS NULL) FROM hubbub_outbox"
            )
        finally:
            await conn.close()
        return bool(total == rows and left == 0)

    await eventually(check, 30, interval=0.1, what=f"{rows} rows, all done")


async def wait_for_table(url: str) -> None:
    async def made() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT to_regclass('hubbub_outbox')") is not None
        finally:
            await conn.close()

    await eventually(made, 20, interval=0.1, what="the outbox table")


async def test_committed_rows_are_published_once_rolled_back_never(
    start_server: StartServer, postgres_url: str
) -> None:
    server = start(start_server, postgres_url)
    await wait_for_table(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TABLE orders (id int)")  # the app's own write
            await conn.execute("INSERT INTO orders VALUES (1)")
            assert await outbox.publish(conn, "h:a", {"n": 1}) > 0
            await outbox.publish(conn, "h:a", {"n": 2}, idempotency_key="order-2")
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("INSERT INTO orders VALUES (2)")
                await outbox.publish(conn, "h:a", {"n": "rolled back"})
                raise RuntimeError("the app changed its mind")
        with pytest.raises(outbox.OutboxError, match="transaction"):
            await outbox.publish(conn, "h:a", {"n": "no transaction"})
    finally:
        await conn.close()

    with psycopg.connect(postgres_url) as sync:  # psycopg 3, sync: commits on leaving the block
        outbox.publish(sync, "h:a", {"n": 3})
    with psycopg.connect(postgres_url, autocommit=True) as sync:
        with pytest.raises(outbox.OutboxError):
            outbox.publish(sync, "h:a", {"n": "no transaction"})
        with sync.transaction():
            outbox.publish(sync, "h:a", {"n": 4})
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as aconn:
        async with aconn.transaction():
            await outbox.publish(aconn, "h:a", {"n": 5})
            await outbox.publish(aconn, "h:a", {"n": 2, "again": True}, idempotency_key="order-2")
        with pytest.raises(RuntimeError):
            async with aconn.transaction():
                await outbox.publish(aconn, "h:a", {"n": "rolled back"})
                raise RuntimeError("rolled back")
        async with aconn.transaction():
            await outbox.publish(aconn, "h:a", {"n": 6})

    await all_done(postgres_url, 7)  # the rolled-back rows are not in the table at all
    # the repeated key is published once (the first); the rolled-back rows never
    assert await history(server, "h:a") == [{"n": n} for n in range(1, 7)]


async def test_order_per_channel_is_commit_order(
    start_server: StartServer, postgres_url: str
) -> None:
    """Transactions of one channel commit one after the other (the insert trigger's lock), so
    what subscribers see is the order of the commits, whatever the order of the inserts."""
    server = start(start_server, postgres_url)
    await wait_for_table(postgres_url)
    first = await asyncpg.connect(postgres_url)
    second = await asyncpg.connect(postgres_url)
    other = await asyncpg.connect(postgres_url)
    try:
        tx1 = first.transaction()
        await tx1.start()
        await outbox.publish(first, "h:o", "first")
        tx2 = second.transaction()
        await tx2.start()
        blocked = asyncio.ensure_future(outbox.publish(second, "h:o", "second"))
        async with other.transaction():  # another channel does not wait
            await outbox.publish(other, "h:p", "other channel")
        await asyncio.sleep(scaled(0.3))
        assert not blocked.done(), "the second insert into h:o waits for the first commit"
        await tx1.commit()
        await blocked
        await tx2.commit()
    finally:
        for conn in (first, second, other):
            await conn.close()

    # many transactions at once, committing after random delays
    commits: list[str] = []

    async def app(k: int) -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            for n in range(5):
                async with conn.transaction():
                    await outbox.publish(conn, "h:o", f"{k}-{n}")
                    await asyncio.sleep(random.random() * 0.01)
                commits.append(f"{k}-{n}")
        finally:
            await conn.close()

    await asyncio.gather(*(app(k) for k in range(8)))
    await all_done(postgres_url, 3 + 40)
    assert await history(server, "h:o") == ["first", "second", *commits]
    assert await history(server, "h:p") == ["other channel"]


async def test_bad_rows_are_marked_and_do_not_block(
    start_server: StartServer, postgres_url: str
) -> None:
    server = start(start_server, postgres_url)
    await wait_for_table(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = [
            ("h:b", '"first"'),
            ("nope:x", "1"),  # no such namespace
            ("bad channel", "1"),  # a space
            ("h:b", "{not json"),
            ("h:b", "NaN"),
            ("h:b", '"' + "x" * 3000 + '"'),  # over outbox_max_data_size
            ("h:b", '{\n  "pretty": true\n}'),  # JSON: published compact
        ]
        async with conn.transaction():
            for channel, data in rows:
                await conn.execute(
                    "INSERT INTO hubbub_outbox (channel, data) VALUES ($1, $2)", channel, data
                )
        await all_done(postgres_url, len(rows))
        errors = await conn.fetch("SELECT channel, error FROM hubbub_outbox ORDER BY id")
    finally:
        await conn.close()
    assert await history(server, "h:b") == ["first", {"pretty": True}]
    reasons = [e["error"] for e in errors]
    assert reasons[0] is None and reasons[-1] is None
    assert "namespace" in reasons[1]
    assert "bad request" in reasons[2]
    assert "JSON" in reasons[3] and "JSON" in reasons[4]
    assert "outbox_max_data_size" in reasons[5]
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
        metrics = await resp.text()
    assert "hubbub_outbox_refused_total 5.0" in metrics
    assert "hubbub_outbox_published_total 2.0" in metrics


async def test_restart_and_kill_publish_each_row_once(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> None:
    """Rows pending while hubbub is killed (-9) mid-stream are published after its restart,
    none twice (the idempotency keys in the SQLite history) and none missing."""
    data_dir = str(tmp_path / "kept")
    extra = "outbox_batch_size = 7\n"
    server = start(start_server, postgres_url, "--data-dir", data_dir, extra=extra)
    await wait_for_table(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    total = 600
    try:
        async with conn.transaction():
            for n in range(total):
                await outbox.publish(conn, f"h:k{n % 3}", n)

        async def some_published() -> bool:
            left = await conn.fetchval("SELECT count(*) FROM hubbub_outbox WHERE done_at IS NULL")
            return bool(0 < left < total)

        await eventually(some_published, 20, interval=0.005, what="a part published")
        server.kill()
        left = await pending(postgres_url)
        assert left > 0, "killed mid-stream"
        server = start(start_server, postgres_url, "--data-dir", data_dir, extra=extra)
        await all_done(postgres_url, total)
    finally:
        await conn.close()
    for k in range(3):
        assert await history(server, f"h:k{k}") == list(range(k, total, 3))


async def test_two_nodes_share_the_table(
    start_server: StartServer, postgres: PostgresServer, postgres_url: str
) -> None:
    """Two nodes on one PostgreSQL engine consume one outbox table: each row is published
    once, in order per channel, and a subscriber on either node's history sees everything."""
    engine = postgres.create_database(f"engine{random.randrange(10**9)}")
    extra = "outbox_batch_size = 5\noutbox_partitions = 8\n"
    nodes = [start(start_server, postgres_url, "--engine", engine, extra=extra) for _ in range(2)]
    await wait_for_table(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        for n in range(200):
            async with conn.transaction():
                await outbox.publish(conn, f"h:c{n % 10}", n)
    finally:
        await conn.close()
    await all_done(postgres_url, 200)
    for c in range(10):
        expected = list(range(c, 200, 10))
        for node in nodes:
            assert await history(node, f"h:c{c}") == expected
    counts = []
    for node in nodes:
        async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as resp:
            text = await resp.text()
        line = next(x for x in text.splitlines() if x.startswith("hubbub_outbox_published_total"))
        counts.append(float(line.split()[-1]))
    assert sum(counts) == 200, counts


async def test_database_down_at_start_then_up(start_server: StartServer, tmp_path: Path) -> None:
    """An outbox database that is not there yet: the node serves anyway, logs, and consumes
    once the database is up."""
    from tests.conftest import throwaway_postgres

    gen = throwaway_postgres()
    pg = next(gen)
    try:
        pg.stop()
        server = start(start_server, pg.url)
        assert await api(server, "info", {})  # serving
        await asyncio.sleep(scaled(1.0))
        pg.start()
        await wait_for_table(pg.url)
        conn = await asyncpg.connect(pg.url)
        try:
            async with conn.transaction():
                await outbox.publish(conn, "h:d", "after the outage")
        finally:
            await conn.close()
        await all_done(pg.url, 1)
        assert await history(server, "h:d") == ["after the outage"]
        pg.stop()  # an outage while consuming
        await asyncio.sleep(scaled(1.0))
        pg.start()
        conn = await eventually(lambda: _connect(pg.url), 20, interval=0.2, what="PostgreSQL")
        try:
            async with conn.transaction():
                await outbox.publish(conn, "h:d", "after the second outage")
        finally:
            await conn.close()
        await all_done(pg.url, 2)
        assert await history(server, "h:d") == ["after the outage", "after the second outage"]
        assert await api(server, "info", {})
        assert server.terminate() == 0  # the consumer stops with the node
        log = server.stderr()
        assert "outbox:" in log and "Traceback" not in log, log
    finally:
        gen.close()


async def _connect(url: str) -> asyncpg.Connection | None:
    try:
        return await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError):
        return None


async def test_done_rows_are_deleted_after_the_retention(
    start_server: StartServer, postgres_url: str
) -> None:
    server = start(start_server, postgres_url, extra="outbox_retention = 0.5\n")
    await wait_for_table(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        async with conn.transaction():
            for n in range(3):
                await outbox.publish(conn, "h:r", n)

        async def emptied() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM hubbub_outbox") == 0)

        await eventually(emptied, 20, interval=0.1, what="the done rows deleted")
    finally:
        await conn.close()
    assert await history(server, "h:r") == [0, 1, 2]


async def test_another_partition_count_moves_the_pending_rows(
    start_server: StartServer, postgres_url: str
) -> None:
    """A node started with another outbox_partitions rewrites the order function and moves
    the pending rows: every row is still published once and in order."""
    first = start(start_server, postgres_url, extra="outbox_partitions = 2\n")
    await wait_for_table(postgres_url)
    assert first.terminate() == 0
    conn = await asyncpg.connect(postgres_url)
    try:
        async with conn.transaction():
            for n in range(40):
                await outbox.publish(conn, f"h:m{n % 8}", n)
        assert await conn.fetchval("SELECT max(partition) FROM hubbub_outbox") <= 1
        server = start(start_server, postgres_url, extra="outbox_partitions = 8\n")
        await all_done(postgres_url, 40)
        async with conn.transaction():
            await outbox.publish(conn, "h:m0", "later")
        await all_done(postgres_url, 41)
        wrong = await conn.fetchval(
            "SELECT count(*) FROM hubbub_outbox "
            "WHERE partition <> (hashtext(channel) & 2147483647) % 8"
        )
        pending_moved = await conn.fetchval(
            "SELECT count(*) FROM hubbub_outbox WHERE partition > 1"
        )
    finally:
        await conn.close()
    for c in range(8):
        later = ["later"] if c == 0 else []
        assert await history(server, f"h:m{c}") == [*range(c, 40, 8), *later]
    assert pending_moved > 0
    assert wrong == 0  # every row was pending when the partitions changed
    assert "now 8" in server.stderr()


async def test_the_readme_example_runs_as_written(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> None:
    rest = README[README.index("## Publish from your database transaction") :]
    match = re.search(r"```python\n(.*?)```", rest, re.S)
    assert match is not None
    code = match.group(1)
    assert "postgresql://app@127.0.0.1:5432/shop" in code
    assert len(code.strip().splitlines()) <= 20
    server = start(start_server, postgres_url)
    await wait_for_table(postgres_url)
    script = tmp_path / "outbox_example.py"
    script.write_text(code.replace("postgresql://app@127.0.0.1:5432/shop", postgres_url))
    done = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(done.communicate(), scaled(60))
    assert done.returncode == 0, err.decode()
    await all_done(postgres_url, 1)
    assert await history(server, "orders") == [{"id": 1, "total": 42}]


async def test_workers_each_consume(
    start_server: StartServer, postgres_url: str, redis_server: RedisServer
) -> None:
    """With --workers every worker runs a consumer; they share the table as nodes do."""
    server = start(
        start_server, postgres_url, "--workers", "2", "--engine", redis_server.url,
        extra="outbox_batch_size = 3\n",
    )  # fmt: skip
    await wait_for_table(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        for n in range(60):
            async with conn.transaction():
                await outbox.publish(conn, f"h:w{n % 4}", n)
    finally:
        await conn.close()
    await all_done(postgres_url, 60)
    for c in range(4):
        assert await history(server, f"h:w{c}") == list(range(c, 60, 4))
    assert server.stderr().count("outbox: consuming hubbub_outbox") == 2
    assert server.terminate() == 0


async def test_a_keyword_table_name_works(start_server: StartServer, postgres_url: str) -> None:
    """outbox_table = "user" (an SQL keyword): every statement quotes the names."""
    server = start(start_server, postgres_url, extra='outbox_table = "user"\n')
    conn = await asyncpg.connect(postgres_url)
    try:
        await eventually(
            lambda: conn.fetchval("""SELECT to_regclass('"user"') IS NOT NULL"""),
            20,
            interval=0.1,
            what="the outbox table",
        )
        async with conn.transaction():
            await outbox.publish(conn, "h:u", "to user", table="user")

        async def done() -> bool:
            return bool(
                await conn.fetchval('SELECT count(*) FROM "user" WHERE done_at IS NOT NULL')
            )

        await eventually(done, 20, interval=0.1, what="the row done")
    finally:
        await conn.close()
    assert await history(server, "h:u") == ["to user"]
    assert "Traceback" not in server.stderr() and "outbox: " in server.stderr()


async def test_rows_that_are_not_utf8_are_refused(
    start_server: StartServer, postgres: PostgresServer
) -> None:
    """A SQL_ASCII database holds text of any bytes: such a row is refused, and neither it
    nor the rows after it block the partition (reading it used to fail the whole batch, for
    ever)."""
    name = f"ascii{random.randrange(10**9)}"
    admin = await asyncpg.connect(postgres.url)
    try:
        await admin.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    finally:
        await admin.close()
    url = postgres.url_for(name)
    server = start(start_server, url, extra="outbox_partitions = 1\n")
    await wait_for_table(url)
    conn = await asyncpg.connect(url)
    raw = "convert_from($1::bytea, 'SQL_ASCII')"
    try:
        async with conn.transaction():
            await outbox.publish(conn, "h:s", "before")
            await conn.execute(
                f"INSERT INTO hubbub_outbox (channel, data) VALUES ('h:s', {raw})", b'"\xff"'
            )
            await conn.execute(
                f"INSERT INTO hubbub_outbox (channel, data) VALUES ({raw}, '1')", b"h:\xff"
            )
            await outbox.publish(conn, "h:s", "after")
        await all_done(url, 4)
        errors = [r[0] for r in await conn.fetch("SELECT error FROM hubbub_outbox ORDER BY id")]
    finally:
        await conn.close()
    assert await history(server, "h:s") == ["before", "after"]
    assert errors[0] is None and errors[3] is None
    assert "not UTF-8" in errors[1]
    assert errors[2] is not None


class AppConnection(asyncpg.Connection):  # (asyncpg.connect(connection_class=...))
    pass


async def test_publish_takes_subclassed_connections(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url, connection_class=AppConnection)
    try:
        for statement in outbox.schema_statements():
            await conn.execute(statement)
        async with conn.transaction():
            row_id = await outbox.publish(conn, "h:a", 1)
        assert await conn.fetchval("SELECT channel FROM hubbub_outbox WHERE id = $1", row_id)
    finally:
        await conn.close()


async def test_a_batch_reads_a_bounded_number_of_bytes(postgres_url: str) -> None:
    """The batch's statement locks up to outbox_batch_size rows but reads their data only
    while the sum stays within the batch's byte budget (the first row always): a batch of
    large rows does not hold batch size x max data size in memory."""
    from hubbub.outboxconsumer import select_sql

    conn = await asyncpg.connect(postgres_url)
    try:
        for statement in outbox.schema_statements(partitions=1):
            await conn.execute(statement)
        async with conn.transaction():
            for n in range(10):
                await outbox.publish(conn, f"h:{n % 3}", "x" * (598 if n != 2 else 5000))
        async with conn.transaction():
            records = await conn.fetch(select_sql("hubbub_outbox"), 0, 8, 1000, 2000, [])
        assert [(r[0], r[3], r[5]) for r in records] == [
            (1, 600, 8),
            (2, 600, 8),
            (3, 5002, 8),  # (too large: not read, and not counted)
            (4, 600, 8),
        ]
        assert records[2][2] is None and records[3][2] == '"' + "x" * 598 + '"'
        async with conn.transaction():
            records = await conn.fetch(select_sql("hubbub_outbox"), 0, 8, 10_000, 100, ["h:1"])
        # the first row always; the rows of a channel held back (h:1: ids 2, 5, 8) not at all
        assert [(r[0], r[5]) for r in records] == [(1, 7)]
    finally:
        await conn.close()


async def test_the_node_stops_in_time_while_postgresql_hangs(start_server: StartServer) -> None:
    """PostgreSQL stopped dead (SIGSTOP: connections open, nothing answers) while rows are
    consumed: SIGTERM still ends the node within its shutdown bound, cleanly."""
    import psutil

    from tests.conftest import throwaway_postgres

    gen = throwaway_postgres()
    pg = next(gen)
    stopped: list[psutil.Process] = []
    try:
        server = start(start_server, pg.url)
        await wait_for_table(pg.url)
        conn = await asyncpg.connect(pg.url)
        try:
            for n in range(20):
                async with conn.transaction():
                    await outbox.publish(conn, "h:z", n)
        finally:
            await conn.close()
        postmaster = psutil.Process(int((pg.data / "postmaster.pid").read_text().split()[0]))
        for process in [postmaster, *postmaster.children()]:
            with contextlib.suppress(psutil.NoSuchProcess):  # (a backend that just ended)
                process.suspend()
                stopped.append(process)
        await asyncio.sleep(scaled(0.5))  # (the consumer is waiting on it by now)
        assert server.terminate(timeout=10) == 0  # (shutdown_timeout is 5 s)
        assert "Traceback" not in server.stderr()
    finally:
        for process in stopped:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
        gen.close()


async def test_repartitioning_waits_for_a_batch_under_way(postgres_url: str) -> None:
    """A node starting with another outbox_partitions while another node's batch holds its
    rows: the new node waits for that batch to mark its rows and commit (it used to take a
    SHARE lock first, then deadlock raising it to EXCLUSIVE: PostgreSQL aborted one of them)."""
    from hubbub.config import Settings
    from hubbub.outboxconsumer import OutboxConsumer

    class NoNode:
        pass

    settings = Settings(outbox_url=postgres_url, outbox_partitions=2)
    box = OutboxConsumer(NoNode(), settings)  # type: ignore[arg-type]
    batch = await asyncpg.connect(postgres_url)
    ddl = await asyncpg.connect(postgres_url)
    try:
        for statement in outbox.schema_statements(partitions=4):
            await batch.execute(statement)
        async with batch.transaction():
            await outbox.publish(batch, "h:a", 1)
        async with batch.transaction():  # (another node's batch)
            await batch.fetch("SELECT id FROM hubbub_outbox WHERE done_at IS NULL FOR UPDATE")
            prepare = asyncio.ensure_future(box._prepare(ddl))
            await asyncio.sleep(scaled(0.3))
            assert not prepare.done()
            await batch.execute("UPDATE hubbub_outbox SET done_at = now()")  # (its mark)
        await asyncio.wait_for(prepare, scaled(10))
        assert await batch.fetchval("SELECT count(*) FROM hubbub_outbox WHERE done_at IS NULL") == 0
        assert await box._function_partitions(batch) == 2
    finally:
        await batch.close()
        await ddl.close()


async def test_a_role_that_may_not_delete_still_consumes(
    start_server: StartServer, postgres: PostgresServer, postgres_url: str
) -> None:
    """The table made by the application's migrations, hubbub's role allowed to read and
    mark rows but not to delete them: the rows are published, the pruning's refusal is a
    warning (it used to fail the connection after every round, reconnecting for ever)."""
    conn = await asyncpg.connect(postgres_url)
    role = f"consumer{random.randrange(10**9)}"
    try:
        for statement in outbox.schema_statements():
            await conn.execute(statement)
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        await conn.execute(f"GRANT SELECT, UPDATE ON hubbub_outbox TO {role}")
        url = postgres_url.replace("postgres@", f"{role}@", 1)
        server = start(start_server, url, extra="outbox_retention = 0.2\n")
        for n in range(3):
            async with conn.transaction():
                await outbox.publish(conn, "h:p", n)
            await asyncio.sleep(scaled(0.3))
        await all_done(postgres_url, 3)
        await asyncio.sleep(scaled(1.0))  # (a few more rounds and prunings)
    finally:
        await conn.close()
    assert await history(server, "h:p") == [0, 1, 2]
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
        metrics = await resp.text()
    assert "hubbub_outbox_failures_total 0.0" in metrics
    assert "could not delete the done rows" in server.stderr()
