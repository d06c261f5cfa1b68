"""Start ``hubbub serve`` as a subprocess on a free port and wait for its ready line."""

from __future__ import annotations

import concurrent.futures
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.timing import scaled

READY_RE = re.compile(r"listening on (http://\S+)")
ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """A running ``hubbub serve``; ``url`` is its http base URL, ``ws`` the ws one."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None,
        log_path: Path,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """``preexec_fn`` runs in the child before hubbub starts (e.g. to lower an rlimit)."""
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hubbub", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=full_env,
            cwd=ROOT,  # so that --app examples.chat_hub:hub imports
            preexec_fn=preexec_fn,
        )
        self.url = self._wait_ready(scaled(30))
        self.ws = "ws" + self.url[len("http") :]
        self.port = int(self.url.rsplit(":", 1)[1])

    def _wait_ready(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.1):
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            seen += line
            match = READY_RE.search(line.decode())
            if match:
                return match.group(1)
        self.kill()
        raise RuntimeError(
            f"hubbub serve did not get ready; stdout={seen!r}\nstderr={self.stderr()}"
        )

    def read_line(self, timeout: float = 10.0) -> str:
        """The next line the server prints on stdout (after the ready line)."""
        assert self.proc.stdout is not None
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # readline, not select: the line may already sit in the reader's buffer
            line = pool.submit(self.proc.stdout.readline).result(timeout=scaled(timeout))
        return line.decode().strip()

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and return the exit code (kills after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
