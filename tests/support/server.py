"""Start ``hubbub serve`` as a subprocess on a free port and wait for its ready line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.procs import LineReader, kill_group
from tests.support.timing import scaled

READY_RE = re.compile(r"listening on (https?://\S+)")
ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """A running ``hubbub serve``; ``url`` is its http base URL, ``ws`` the ws one.

    The server leads a process group of its own, so that :meth:`kill` also ends the workers
    of ``--workers N`` (which a SIGKILL of the supervisor alone would leave running). A server
    that does not get ready is killed before the error is raised.
    """

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None,
        log_path: Path,
        preexec_fn: Callable[[], None] | None = None,
        command: list[str] | None = None,
    ) -> None:
        """``preexec_fn`` runs in the child before hubbub starts (e.g. to lower an rlimit);
        ``command``: what to run instead of ``python -m hubbub serve`` (the same options
        follow, and it prints the same ready line: e.g. tests/support/asgi_serve.py)."""
        self.log_path = log_path
        self._sent: set[int] = set()
        self._log = log_path.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
        full_env.update(env or {})
        try:
            self.proc = subprocess.Popen(
                [*(command or [sys.executable, "-m", "hubbub", "serve"]), "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=full_env,
                cwd=ROOT,  # so that --app examples.chat_hub:hub imports
                process_group=0,
                bufsize=0,
                preexec_fn=preexec_fn,
            )
        except BaseException:
            self._log.close()
            raise
        assert self.proc.stdout is not None
        self._stdout = LineReader(self.proc.stdout)
        try:
            self.url = self._wait_ready(scaled(30))
        except BaseException:
            self.kill()
            raise
        self.ws = "ws" + self.url[len("http") :]
        self.port = int(self.url.rsplit(":", 1)[1])

    def _wait_ready(self, timeout: float) -> str:
        seen = b""
        until = time.monotonic() + timeout
        while line := self._stdout.readline(until - time.monotonic()):  # None: timeout; b"": exit
            seen += line
            match = READY_RE.search(line.decode(errors="replace"))
            if match:
                return match.group(1)
        raise RuntimeError(
            f"hubbub serve did not get ready in {timeout:g} s; stdout={seen!r}\n"
            f"stderr={self.stderr()}"
        )

    def read_line(self, timeout: float = 10.0) -> str:
        """The next line the server prints on stdout (after the ready line)."""
        line = self._stdout.readline(scaled(timeout))
        if line is None:
            raise TimeoutError(f"hubbub serve printed no line in {scaled(timeout):g} s")
        return line.decode().strip()

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def send_stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` unless the process has exited or was sent it by this method before
        (a second SIGTERM after the server removed its handlers would kill it)."""
        if self.proc.poll() is None and sig not in self._sent:
            self._sent.add(sig)
            self.proc.send_signal(sig)

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` (see :meth:`send_stop`) and return the exit code (kills after
        ``timeout``)."""
        self.send_stop(sig)
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the server and everything in its process group; idempotent."""
        kill_group(self.proc)
        self._stdout.close()
        self._log.close()
