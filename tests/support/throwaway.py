"""Directories of the throw-away PostgreSQL and Redis servers, and what a crashed run left.

Every server lives in a temp dir ``hubbub-pg-*`` or ``hubbub-redis-*`` holding a file
``owner``: the pid (and kernel start time) of the pytest process that made it, and the
server's port. At the start of a session :func:`reap_leftovers` stops the servers of dirs
whose pytest is gone (``pg_ctl stop -m immediate``; SIGKILL for redis-server) and removes
the dirs. Only processes whose command line names such a dir are ever signalled, and never
one on the ports of the machine's own services.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.procs import alive, pids_using, start_time
from tests.support.timing import scaled

PREFIXES = ("hubbub-pg-", "hubbub-redis-")
#: The machine's own Redis, PostgreSQL and NATS: never picked, never stopped.
SYSTEM_PORTS = frozenset({6379, 5432, 4222})
#: A dir without an owner file (made by an older version of these helpers) is removed only
#: when no process uses it and it is older than this.
UNOWNED_AGE = 3600.0


def free_port() -> int:
    """A port nobody listens on right now. Another process may take it before the server
    binds it: the servers' start retries on a new port when that happens."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in SYSTEM_PORTS:
            return port


def make_dir(prefix: str) -> Path:
    """A new server dir with this pytest process recorded as its owner."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    write_owner(path)
    return path


def write_owner(path: Path, port: int | None = None, server: int | None = None) -> None:
    """Record this pytest process as the owner of ``path``, with the server's port and pid
    (redis-server rewrites its command line, so its pid is how a later run finds it)."""
    pid = os.getpid()
    record = {
        "pid": pid,
        "start": start_time(pid),
        "port": port,
        "server": server,
        "server_start": None if server is None else start_time(server),
    }
    tmp = path / "owner.tmp"
    tmp.write_text(json.dumps(record))
    os.chmod(tmp, 0o644)
    tmp.replace(path / "owner")


def read_owner(path: Path) -> dict[str, object] | None:
    try:
        record = json.loads((path / "owner").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def leftovers(root: Path | None = None) -> list[Path]:
    """Server dirs under ``root`` (the temp dir) whose owning pytest process is gone."""
    root = Path(tempfile.gettempdir()) if root is None else root
    found = []
    for prefix in PREFIXES:
        for path in sorted(root.glob(prefix + "*")):
            if not path.is_dir():
                continue
            owner = read_owner(path)
            if owner is None:
                age = time.time() - path.stat().st_mtime
                if age > UNOWNED_AGE and not pids_using(path):
                    found.append(path)
                continue
            pid, started = owner.get("pid"), owner.get("start")
            started = started if isinstance(started, str) else None
            if not isinstance(pid, int) or not alive(pid, started):
                found.append(path)
    return found


def reap(path: Path, pg_bin: Path | None) -> list[int]:
    """Stop whatever still runs in the server dir ``path`` and remove it; the pids stopped."""
    owner = read_owner(path) or {}
    if owner.get("port") in SYSTEM_PORTS:
        return []  # never ours: leave it alone
    pids = set(pids_using(path))  # a postmaster names its data dir
    server, server_start = owner.get("server"), owner.get("server_start")
    if isinstance(server, int) and isinstance(server_start, str) and alive(server, server_start):
        pids.add(server)  # redis-server, recognised by its pid and start time
    pids.discard(os.getpid())
    postgres = path.name.startswith("hubbub-pg-")
    if pids and postgres and pg_bin is not None:
        cmd = [str(pg_bin / "pg_ctl"), "-D", str(path / "data"), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, capture_output=True, timeout=scaled(60), check=False)
    # What is still there: SIGQUIT is a postmaster's immediate shutdown (its backends go with
    # it); SIGKILL for redis-server, and for anything that outlives the SIGQUIT.
    for sig in (signal.SIGQUIT if postgres else signal.SIGKILL, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        until = time.monotonic() + scaled(10)
        while any(alive(pid) for pid in pids) and time.monotonic() < until:
            time.sleep(0.05)
    shutil.rmtree(path, ignore_errors=True)
    return sorted(pids)


def reap_leftovers(pg_bin: Path | None, root: Path | None = None) -> list[Path]:
    """Stop and remove what crashed runs left behind; the dirs removed."""
    gone = leftovers(root)
    for path in gone:
        reap(path, pg_bin)
    return gone


#: How many ports a first start tries when the one it picked is taken meanwhile.
PORT_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """The port picked for a server was taken before the server could bind it."""


def start_on_a_free_port(
    start: Callable[[int], None],
    pick: Callable[[], int] = free_port,
    attempts: int = PORT_ATTEMPTS,
) -> int:
    """Call ``start(port)`` with a port from ``pick`` until it does not raise PortTaken (at
    most ``attempts`` times); the port it started on."""
    for attempt in range(attempts):
        port = pick()
        try:
            start(port)
            return port
        except PortTaken:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
