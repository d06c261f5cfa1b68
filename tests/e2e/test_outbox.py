"""Publishing from the application's transaction: `hubbub serve` with `outbox_url`, the
application writing rows with hubbub.outbox.publish (asyncpg and psycopg) into a real
PostgreSQL (the session's throw-away one, a fresh database per test)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psycopg
import pytest

from hubbub import outbox
from tests.conftest import StartServer
from tests.support.postgres import PostgresServer
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

KEY = "outbox-api-key-0123456789abcdef"
CONFIG = """
api_key = "outbox-api-key-0123456789abcdef"
demos = false
outbox_poll_interval = 0.5
outbox_max_data_size = 2000
[[namespaces]]
name = "h"
history_size = 10000
history_ttl = 600
"""


def start(
    start_server: StartServer, url: str, *args: str, extra: str = "", env: dict[str, str] | None = None
) -> ServerProcess:
    return start_server(*args, env={"HUBBUB_OUTBOX_URL": url, **(env or {})}, config=CONFIG + extra)


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
