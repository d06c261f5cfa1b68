"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, find_pg_bin
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.throwaway import reap_leftovers
from tests.support.timing import scaled

ON_CI = os.environ.get("CI") == "true"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop and remove the throw-away PostgreSQL and Redis servers of runs that crashed (their
    pytest process is gone), before this run starts its own."""
    for path in reap_leftovers(find_pg_bin()):
        print(f"removed a throw-away server left by a crashed run: {path}")


#: Oldest usable major version: the Node tests use --experimental-websocket (Node 20.10+;
#: Debian 12's own nodejs is 18).
MIN_MAJOR = {"node": 20}


def need_binary(name: str, path: str | None = None) -> str:
    """Return the path of ``name``; skip the test when it is missing (or too old), fail
    under CI. ``make test`` installs what is missing when it runs as root."""
    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if not found:
        missing(f"{name} is not installed here; this test needs it (make test installs it)")
    if name in MIN_MAJOR:
        version = subprocess.run(
            [str(found), "--version"], capture_output=True, text=True, timeout=scaled(30)
        ).stdout.strip()
        major = int(m.group(1)) if (m := re.match(r"v?(\d+)", version)) else 0
        if major < MIN_MAJOR[name]:
            missing(f"{name} {version} is too old; this test needs {MIN_MAJOR[name]} or newer")
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

    try:
        yield start
    finally:
        stop_all(started)


def stop_all(servers: list[ServerProcess]) -> None:
    """SIGTERM each server, SIGKILL it (and its process group) in any case; every server is
    stopped even when one fails to stop in time, then the first such error is raised. The
    servers get their SIGTERM all at once, so that they shut down side by side."""
    errors: list[BaseException] = []
    for server in servers:
        with contextlib.suppress(OSError):
            server.send_stop()
    for server in servers:
        try:
            server.terminate()
        except BaseException as exc:
            errors.append(exc)
        finally:
            server.kill()
    if errors:
        raise errors[0]


@pytest.fixture
def sdk_garbage_collected() -> Iterator[None]:
    """What centrifuge-python left is collected after the test, its ResourceWarnings ignored
    (modules that drive the SDK use it through tests.support.sdk.SDK_GARBAGE)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


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
