"""Child processes of the tests: read their lines with a deadline, run them in a process group
of their own so that a timeout or a failure ends them *and their children*."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.timing import scaled


class LineReader:
    """Lines from a pipe, each with a deadline. Reads the file descriptor itself (no Python
    buffer), so waiting with select never misses a line that was already read."""

    def __init__(self, pipe: Any) -> None:
        self.fd: int = pipe.fileno()
        self._pipe = pipe  # kept open as long as we read it
        self._buf = b""
        self.eof = False

    def readline(self, timeout: float) -> bytes | None:
        """The next line (with its newline; the rest at end of file, b"" after it), or None
        when nothing complete arrives within ``timeout`` seconds (not scaled here)."""
        until = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            while b"\n" not in self._buf and not self.eof:
                left = until - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(self.fd, 65536)
                if chunk:
                    self._buf += chunk
                else:
                    self.eof = True
        if b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            return line + b"\n"
        line, self._buf = self._buf, b""
        return line

    def close(self) -> None:
        self._pipe.close()


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group ``proc`` leads (started with ``process_group=0``) and reap
    ``proc``: children it started (workers, test runners) go with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def run(
    cmd: list[str], timeout: float, *, term_grace: float = 10.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a process group of its own.
    After ``scaled(timeout)`` seconds, or when the caller is interrupted, the command gets
    SIGTERM, ``term_grace`` seconds to clean up, then its whole group gets SIGKILL."""
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
        **kwargs,
    ) as proc:  # the with closes the pipes whatever happens
        try:
            out, err = proc.communicate(timeout=scaled(timeout))
        except BaseException:
            # Timeout, KeyboardInterrupt, anything: never leave the command (or its
            # children) running.
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=scaled(term_grace))
            kill_group(proc)
            raise
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind in its group
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# -- processes of earlier runs ---------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), None when it does not
    exist; with the pid it names one process even when pids are reused."""
    fields = _stat(pid)
    return fields[19] if fields else None


def alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not), and, when ``started`` is given, is
    the one that started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat(pid)
    if fields is None:
        return not Path("/proc/self").exists()  # no /proc: os.kill is all there is
    if fields[0] == "Z":
        return False
    return started is None or fields[19] == started


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pids_using(path: Path) -> list[int]:
    """Processes whose command line mentions ``path`` (a throw-away server's directory)."""
    needle = str(path)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and any(needle in arg for arg in cmdline(int(entry.name))):
            found.append(int(entry.name))
    return found
