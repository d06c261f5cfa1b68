"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, find_pg_bin
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

ON_CI = os.environ.get("CI") == "true"


def need_binary(name: str, path: str | None = None) -> str:
    """Return the path of ``name``; skip the test when it is missing, fail under CI."""
    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if not found:
        missing(f"{name} is not installed here; this test needs it")
    return str(found)


def missing(message: str) -> None:
    """Skip the test for a missing prerequisite; under CI (CI=true) fail instead."""
    if ON_CI:
        pytest.fail(message + " (CI=true: a missing prerequisite fails the run)")
    pytest.skip(message)


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Factory: ``start_server(*args, env={...}, config="toml text")`` -> a ready server
    (``preexec_fn=`` runs in the child first, e.g. to lower an rlimit).

    Every server is stopped at the end of the test.
    """
    started: list[ServerProcess] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        config: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> ServerProcess:
        extra = list(args)
        if config is not None:
            cfg = tmp_path / f"hubbub-{len(started)}.toml"
            cfg.write_text(config)
            extra += ["--config", str(cfg)]
        if "--data-dir" not in extra:
            extra += ["--data-dir", str(tmp_path / f"data-{len(started)}")]
        server = ServerProcess(extra, env, tmp_path / f"server-{len(started)}.log", preexec_fn)
        started.append(server)
        return server

    yield start
    for server in started:
        try:
            server.terminate()
        finally:
            server.kill()


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    """A server with default settings."""
    return start_server()


def throwaway_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of its own, destroyed afterwards (skips, or fails under CI, without one)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        missing("PostgreSQL (initdb, pg_ctl) is not installed here")
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL for the session; tests make their own databases in it."""
    yield from throwaway_postgres()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database in the session's PostgreSQL."""
    return postgres.create_database(f"t{next(_databases)}")


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    server = RedisServer(need_binary("redis-server"))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> RedisServer:
    """The session's redis-server, emptied for this test."""
    redis_session.flush()
    return redis_session


@pytest.fixture(params=["redis", "postgresql"])
def engine_url(request: pytest.FixtureRequest) -> str:
    """A fresh cluster engine of each kind: the session's Redis emptied, or a new database in
    the session's PostgreSQL."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    url: str = request.getfixturevalue("postgres_url")
    return url
