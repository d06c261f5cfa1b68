"""A throw-away PostgreSQL server: initdb + pg_ctl in a temp dir, on a free port.

As root, PostgreSQL refuses to run, so the cluster belongs to the ``postgres`` user and the
commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.throwaway import (
    PortTaken,
    free_port,
    make_dir,
    start_on_a_free_port,
    write_owner,
)
from tests.support.timing import scaled

__all__ = ["PostgresServer", "find_pg_bin", "free_port"]


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl (PATH first, then Debian's layout)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent  # /usr/local/bin may hold only symlinks
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


class PostgresServer:
    """Started by the constructor (on another port if the one picked was taken before the
    postmaster could bind it); if it cannot start, nothing is left running and the dir is
    gone."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = make_dir("hubbub-pg-")
        self.data = self.dir / "data"
        self.port = 0
        self.as_root = os.geteuid() == 0
        try:
            if self.as_root:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                      "-E", "UTF8")  # fmt: skip
            self.port = start_on_a_free_port(self._start_on, free_port)
        except BaseException:
            self.destroy()
            raise

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=scaled(120))

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    def _start_on(self, port: int) -> None:
        self.port = port
        self.start()

    def start(self) -> None:
        """Start on ``self.port`` (a restart keeps the port: clients reconnect to it)."""
        write_owner(self.dir, self.port)
        # fsync off: a throw-away cluster need not survive a crash of the machine (a killed
        # postmaster loses nothing either way); its restarts (outage tests) no longer wait for
        # the shutdown checkpoint's fsyncs behind the disk traffic of the rest of the suite.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
            "-c max_connections=200 -c shared_buffers=32MB -c fsync=off"
        )
        logged = self.log.stat().st_size if self.log.exists() else 0
        wait = str(int(scaled(60)))
        started = self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log),
                            "-w", "-t", wait, "start", check=False)  # fmt: skip
        if started.returncode == 0:
            return
        self.stop("immediate")  # pg_ctl may have given up on a postmaster still starting
        with self.log.open("rb") as f:
            f.seek(logged)
            this_start = f.read().decode(errors="replace")
        if "Address already in use" in this_start:
            raise PortTaken(f"port {self.port} was taken")
        raise RuntimeError(
            f"pg_ctl start failed ({started.returncode}): {started.stdout}{started.stderr}\n"
            f"{this_start}"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        try:
            if self.data.exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "-d", "postgres", "-c", f"CREATE DATABASE {name}")  # fmt: skip
        return self.url_for(name)
