"""The kernel's floor for fan-out: bench/peers/floor.c, compiled in the run that measures it.

``floor_peer()`` compiles the C server with ``cc -O2`` into a temporary directory (once per
process; no binary is committed) and returns it as a bench peer speaking
:class:`bench.dialects.PlainDialect`, or None with the reason when there is no C compiler
or the build fails. The server writes each publication's pre-built frame with one
``write()`` per subscriber socket, so its deliveries per CPU-second are what the kernel
costs per delivery without coalescing; a server's fan-out as a percentage of it is how
close that server comes to the floor. Subscribers the floor dropped (a failed or short
write) are counted in a file that :func:`drops` reads.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.dialects import PlainDialect

from hubbub.loadgen import (
    Measure,
    Stats,
    close_all,
    connect_clients,
    drain,
    flood,
    open_client,
    quiesce,
)

SOURCE = Path(__file__).resolve().parent / "peers" / "floor.c"
NAME = "floor (C)"
TARGET = 0.90  # issue 18: hubbub's fan-out >= 90 % of the floor per CPU-second

_built: tuple[Path | None, str] | None = None


def build() -> tuple[Path | None, str]:
    """(the binary, "") once compiled; (None, why not) without a compiler or on failure."""
    global _built
    if _built is None:
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if cc is None:
            _built = (None, "no C compiler (cc) found")
        else:
            tmp = Path(tempfile.mkdtemp(prefix="hubbub-floor-"))
            atexit.register(shutil.rmtree, tmp, True)
            binary = tmp / "floor"
            done = subprocess.run(
                [cc, "-O2", "-o", str(binary), str(SOURCE)], capture_output=True, text=True
            )
            if done.returncode != 0:
                _built = (None, f"{cc} failed: {done.stderr.strip()[-300:]}")
            else:
                _built = (binary, "")
    return _built


def drops_file(port: int) -> Path | None:
    binary, _ = build()
    return None if binary is None else binary.parent / f"drops-{port}"


def drops(port: int) -> int:
    """Subscribers the floor server on ``port`` dropped so far (short or failed writes)."""
    path = drops_file(port)
    try:
        return int(path.read_text()) if path is not None else 0
    except (OSError, ValueError):
        return 0


def command(cpu: int | None = None) -> Callable[[int, Path], list[str]]:
    """The floor's command line for a port (under ``taskset -c cpu`` when given)."""

    def make(port: int, _tmp: Path) -> list[str]:
        binary, why = build()
        if binary is None:
            raise RuntimeError(why)
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        return [*pin, str(binary), str(port), str(drops_file(port))]

    return make


def available() -> str | None:
    return build()[1] or None


def dialect() -> PlainDialect:
    return PlainDialect(NAME)


def percent(value: float | None, floor: float | None) -> str:
    """``value`` as a percentage of ``floor`` ("-" when either is missing)."""
    return f"{100 * value / floor:.0f} %" if value and floor else "-"


async def fanout(url: str, pid: int, subscribers: int, seconds: float) -> Measure:
    """The floor's fan-out to ``subscribers`` broadcast subscribers, one 100-byte
    publication at a time (the next once every subscriber has the last), as
    bench/peers_bench.py's scenario 1 and bench/formats_bench.py's fan-out measure servers."""
    stats = Stats()
    subs, _ = await connect_clients(url, dialect, stats, subscribers, lambda i: [])
    try:
        publisher = await open_client(url, dialect(), Stats())
        subs.append(publisher)
        await quiesce(pid)
        base = stats.delivered
        measure = await flood(
            publisher, stats, subscribers, seconds, [None], batch=1, window=1, pid=pid
        )
        await drain(stats, base + measure.sent * subscribers)
        return measure
    finally:
        close_all(subs)
