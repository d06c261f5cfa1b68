"""A throw-away redis-server on a free port, in a temp dir, nothing persisted."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.throwaway import (
    PortTaken,
    free_port,
    make_dir,
    start_on_a_free_port,
    write_owner,
)
from tests.support.timing import scaled


class RedisServer:
    """``durable``: append-only file fsynced on every write, so a restart keeps the data.

    The constructor starts the server (on another port if the one picked was taken before
    redis-server could bind it); if it cannot, nothing is left running and the dir is gone.
    """

    def __init__(self, binary: str, *, durable: bool = False) -> None:
        self.binary = binary
        self.durable = durable
        self.dir = make_dir("hubbub-redis-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.port = start_on_a_free_port(self._start_on, free_port)
        except BaseException:
            self.destroy()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def _start_on(self, port: int) -> None:
        self.port = port
        self.start()

    def start(self) -> None:
        """Start on ``self.port`` (a restart keeps the port: clients reconnect to it)."""
        self.log.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.durable else "no", "--appendfsync", "always",
             "--dir", str(self.dir), "--daemonize", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        write_owner(self.dir, self.port, self.proc.pid)
        try:
            self._wait_ready(scaled(20))
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """Until *this* redis-server answers (another one may hold the port: its INFO has
        another process_id)."""
        assert self.proc is not None
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                if "Address already in use" in log:
                    raise PortTaken(f"port {self.port} was taken")
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            try:
                if self._info_pid() == self.proc.pid:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not get ready on port {self.port} in {timeout:g} s")

    def _info_pid(self) -> int | None:
        """The process_id in the INFO of whatever answers on the port (None: not a redis)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"INFO server\r\n")
            data = b""
            while not data.startswith(b"$") or len(data) < bulk_size(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.split(":", 1)[1])
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=scaled(2)) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def bulk_size(data: bytes) -> int:
    """The whole size of the RESP bulk string that ``data`` starts (a lower bound while its
    header has not arrived)."""
    head, sep, _ = data.partition(b"\r\n")
    if not sep:
        return len(data) + 1
    try:
        return len(head) + 2 + int(head[1:]) + 2
    except ValueError:
        return 0
