"""The test suite's own machinery (tests/support): throw-away servers that cope with a port
taken under them, leftovers of a crashed run cleaned up, child processes that cannot leak."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing, need_binary
from tests.support import postgres as pg_support
from tests.support import redis as redis_support
from tests.support import throwaway
from tests.support.postgres import PostgresServer, find_pg_bin
from tests.support.procs import LineReader, alive, run
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.throwaway import free_port, leftovers, reap
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def orphan(path: Path) -> None:
    """Make ``path`` look like the dir of a pytest run that crashed: its owner is gone."""
    record = json.loads((path / "owner").read_text())
    record.update(pid=dead_pid(), start="0")
    (path / "owner").write_text(json.dumps(record))


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A port someone else took: listening, never answering."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s


def pg_bin() -> Path:
    found = find_pg_bin()
    if found is None:
        missing("PostgreSQL (initdb, pg_ctl) is not installed here")
    assert found is not None
    return found


def test_redis_of_a_crashed_run_is_stopped_and_its_dir_removed() -> None:
    server = RedisServer(need_binary("redis-server"))
    try:
        assert server.dir not in leftovers(), "the owner (this pytest) is alive"
        orphan(server.dir)
        assert server.dir in leftovers()
        assert server.proc is not None
        assert reap(server.dir, None) == [server.proc.pid]
        assert server.proc.wait(scaled(10)) != 0  # killed
        assert not server.dir.exists()
    finally:
        server.destroy()


def test_postgres_of_a_crashed_run_is_stopped_and_its_dir_removed() -> None:
    server = PostgresServer(pg_bin())
    try:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        assert alive(postmaster)
        assert server.dir not in leftovers()
        orphan(server.dir)
        assert server.dir in leftovers()
        assert postmaster in reap(server.dir, server.bin)
        assert not alive(postmaster)
        assert not server.dir.exists()
    finally:
        server.destroy()


def test_redis_moves_to_another_port_when_its_port_is_taken(
    listening: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = listening.getsockname()[1]
    ports = iter([taken])
    monkeypatch.setattr(redis_support, "free_port", lambda: next(ports, None) or free_port())
    server = RedisServer(need_binary("redis-server"))
    try:
        assert server.port != taken
        server.flush()  # it is this one that answers
    finally:
        server.destroy()


def test_postgres_moves_to_another_port_when_its_port_is_taken(
    listening: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = listening.getsockname()[1]
    ports = iter([taken])
    monkeypatch.setattr(pg_support, "free_port", lambda: next(ports, None) or free_port())
    server = PostgresServer(pg_bin())
    try:
        assert server.port != taken
        assert "Address already in use" in server.log.read_text()  # the first try did fail
        server.create_database("moved")
    finally:
        server.destroy()


def test_a_redis_that_cannot_start_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    made: list[Path] = []

    def make_dir(prefix: str) -> Path:
        made.append(throwaway.make_dir(prefix))
        return made[-1]

    monkeypatch.setattr(redis_support, "make_dir", make_dir)
    with pytest.raises(RuntimeError, match="exited with 1"):
        RedisServer(str(fake))
    assert len(made) == 1
    assert not made[0].exists()


def test_line_reader_sees_lines_that_arrive_together() -> None:
    """Two lines in one write: the second is there without waiting (a select on a buffered
    pipe would wait for more data and miss it)."""
    script = "import sys, time; sys.stdout.write('one\\ntwo\\n'); sys.stdout.flush(); time.sleep(9)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, bufsize=0)
    reader = LineReader(proc.stdout)
    try:
        assert reader.readline(scaled(10)) == b"one\n"
        assert reader.readline(0) == b"two\n"
        assert reader.readline(0.1) is None
    finally:
        proc.kill()
        proc.wait()
        reader.close()


def test_run_ends_the_whole_process_group_on_a_timeout(tmp_path: Path) -> None:
    """A command that started a child and hangs: on the timeout both are gone."""
    pid_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pid_file}; trap '' TERM; wait"  # ignores SIGTERM too
    with pytest.raises(subprocess.TimeoutExpired):
        run(["sh", "-c", script], timeout=1, term_grace=0.5)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + scaled(10)
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_killing_a_server_with_workers_ends_the_workers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    server = ServerProcess(
        ["--workers", "2", "--engine", redis_server.url, "--data-dir", str(tmp_path / "data")],
        None,
        tmp_path / "server.log",
    )
    try:
        children = [
            int(pid)
            for pid in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
            .read_text()
            .split()
        ]
        assert len(children) == 2
        assert {os.getpgid(pid) for pid in children} == {server.proc.pid}
    finally:
        server.kill()  # SIGKILL: the supervisor cannot pass anything on to its workers
    deadline = time.monotonic() + scaled(10)
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in children)
