"""The ``process_*`` metrics of this process, as the Prometheus client libraries define them.

Names, types and units are the client libraries' standard ones (Go's, Java's, Python's):

- ``process_cpu_seconds_total`` (counter): user and system CPU time, in seconds;
- ``process_resident_memory_bytes``, ``process_virtual_memory_bytes`` (gauges);
- ``process_open_fds`` (gauge): the descriptors open now;
- ``process_max_fds`` (gauge): the soft limit on them (``RLIMIT_NOFILE``);
- ``process_start_time_seconds`` (gauge): when the process started, Unix time.

Guarantees: one scrape reads ``/proc/self/stat`` once and lists ``/proc/self/fd`` once (the
boot time of ``/proc/stat`` is read when the collector is made); nothing is kept between
scrapes. Without ``/proc`` (macOS, the BSDs) what the platform still gives is rendered (CPU
time from ``os.times()``, the descriptor limit, the open descriptors from ``/dev/fd`` where it
lists them) and the rest is left out: a metric is missing rather than wrong. A read that
fails leaves its metrics out of that scrape; it never fails the scrape.

The parsing is pure (:func:`parse_stat`, :func:`parse_boot_time`); the collector reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

try:
    import resource
except ImportError:  # (not Unix)
    resource = None  # type: ignore[assignment]

PROC: Final = Path("/proc")


@dataclass(frozen=True, slots=True)
class StatFields:
    """What ``/proc/<pid>/stat`` says, in the metrics' units."""

    cpu_seconds: float
    resident_bytes: float
    virtual_bytes: float
    start_time: float  # Unix time


def parse_stat(text: bytes, *, ticks: float, page_size: int, boot_time: float) -> StatFields:
    """``/proc/<pid>/stat`` (``proc(5)``): utime and stime (fields 14 and 15, clock ticks),
    starttime (22, ticks after boot), vsize (23, bytes) and rss (24, pages). The command name
    (field 2, in parentheses) may hold spaces and parentheses: fields are counted after the
    last ``)``. Raises ValueError when the text is not that."""
    _head, sep, tail = text.rpartition(b")")
    fields = tail.split()
    if not sep or len(fields) < 22:
        raise ValueError("not a /proc/<pid>/stat line")
    return StatFields(
        cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
        resident_bytes=float(int(fields[21]) * page_size),
        virtual_bytes=float(int(fields[20])),
        start_time=boot_time + int(fields[19]) / ticks,
    )


def parse_boot_time(text: bytes) -> float | None:
    """The ``btime`` line of ``/proc/stat``: boot time, Unix seconds (None: no such line)."""
    for line in text.splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    return None


class ProcessCollector(Collector):
    """The ``process_*`` metrics of the calling process (see the module docstring)."""

    def __init__(self, proc: Path = PROC) -> None:
        self._stat = proc / "self" / "stat"
        fd_dir = proc / "self" / "fd"
        self._fd_dir: Path | None = fd_dir if fd_dir.is_dir() else None
        if self._fd_dir is None and Path("/dev/fd").is_dir():
            self._fd_dir = Path("/dev/fd")
        self._boot_time: float | None = None
        with contextlib.suppress(OSError):
            self._boot_time = parse_boot_time((proc / "stat").read_bytes())
        self._ticks = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._page_size = resource.getpagesize() if resource is not None else 4096

    def _read_stat(self) -> StatFields | None:
        if self._boot_time is None:
            return None
        try:
            text = self._stat.read_bytes()
            return parse_stat(
                text, ticks=self._ticks, page_size=self._page_size, boot_time=self._boot_time
            )
        except (OSError, ValueError):
            return None

    def collect(self) -> Iterator[Metric]:
        stat = self._read_stat()
        if stat is not None:
            cpu = stat.cpu_seconds
        else:
            times = os.times()
            cpu = times.user + times.system
        yield CounterMetricFamily(
            "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu
        )
        if stat is not None:
            yield GaugeMetricFamily(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stat.resident_bytes,
            )
            yield GaugeMetricFamily(
                "process_virtual_memory_bytes", "Virtual memory size in bytes.", stat.virtual_bytes
            )
            yield GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stat.start_time,
            )
        if self._fd_dir is not None:
            try:
                open_fds = len(os.listdir(self._fd_dir))
            except OSError:
                pass
            else:
                yield GaugeMetricFamily(
                    "process_open_fds", "Number of open file descriptors.", open_fds
                )
        if resource is not None:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft != resource.RLIM_INFINITY:
                yield GaugeMetricFamily(
                    "process_max_fds", "Maximum number of open file descriptors.", soft
                )
