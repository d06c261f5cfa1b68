"""``hubbub serve --workers N``: N processes on one port (SO_REUSEPORT), one supervisor.

Each worker is a complete ``hubbub serve`` sharing channels through the engine (Redis); the
kernel spreads new connections over them. The supervisor starts them, prints one ready line
when all are ready, forwards SIGINT/SIGTERM, and exits with 0 when they all stopped cleanly.
If a worker dies on its own, the others are stopped too and the supervisor exits non-zero,
so a process manager can restart the whole set.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final

from hubbub.errors import HubbubError

READY_TIMEOUT: Final = 60.0


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without ``--name VALUE`` / ``--name=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return out


def run_workers(
    argv: Sequence[str], workers: int, host: str, port: int, emit: Callable[[str], None]
) -> int:
    """Run ``workers`` copies of ``hubbub serve argv`` on ``host:port``; the exit code."""
    if port == 0:
        port = free_port(host)
    child_argv = strip_option(strip_option(argv, "--workers"), "--port")
    cmd = [
        sys.executable,
        "-m",
        "hubbub",
        "serve",
        *child_argv,
        "--port",
        str(port),
        "--reuse-port",
    ]
    env = {**os.environ, "HUBBUB_WORKERS": "1"}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True) for _ in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        ready_line = _wait_ready(procs)
    except HubbubError:
        stop(signal.SIGTERM, None)
        for proc in procs:
            proc.wait()
        raise
    emit(f"{ready_line} ({workers} workers)")
    exited: dict[int, int] = {}  # pid -> exit code
    died_alone = False
    while len(exited) < len(procs):
        for proc in procs:
            code = proc.poll()
            if code is not None and proc.pid not in exited:
                exited[proc.pid] = code
                if not stopping:  # a worker died on its own: stop the rest
                    died_alone = True
                    emit(f"hubbub worker {proc.pid} exited with {code}; stopping the others")
                    stop(signal.SIGTERM, None)
        time.sleep(0.05)
    return 0 if not died_alone and all(code == 0 for code in exited.values()) else 1


def _wait_ready(procs: list[subprocess.Popen[str]]) -> str:
    sel = selectors.DefaultSelector()
    for proc in procs:
        assert proc.stdout is not None
        sel.register(proc.stdout, selectors.EVENT_READ, proc)
    waiting = set(procs)
    line = ""
    deadline = time.monotonic() + READY_TIMEOUT
    while waiting:
        if time.monotonic() > deadline:
            raise HubbubError("workers did not get ready in time")
        for key, _ in sel.select(timeout=0.2):
            proc = key.data
            text = key.fileobj.readline()  # type: ignore[union-attr]
            if not text:
                raise HubbubError(f"worker {proc.pid} exited before it was ready")
            if "listening on" in text:
                line = text.strip()
                waiting.discard(proc)
                sel.unregister(key.fileobj)
    return line
