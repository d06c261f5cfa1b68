"""The process_* metrics: /proc/self/stat parsed as proc(5) says, and what is left without
/proc."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hubbub.server.processmetrics import ProcessCollector, parse_boot_time, parse_stat

# pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
# cutime cstime priority nice threads itrealvalue starttime vsize rss ...
STAT = (
    b"4242 (odd ) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0 "
    b"12000 160579584 17510 18446744073709551615 1 1 0 0 0 0 0 16781312 17922 0 0 0 17 1"
)


def test_stat_fields_are_counted_after_the_last_parenthesis() -> None:
    """utime+stime in ticks, rss in pages, vsize in bytes, starttime after boot."""
    fields = parse_stat(STAT, ticks=100.0, page_size=4096, boot_time=1_700_000_000.0)
    assert fields.cpu_seconds == pytest.approx(3.0)
    assert fields.resident_bytes == 17510 * 4096
    assert fields.virtual_bytes == 160579584
    assert fields.start_time == pytest.approx(1_700_000_120.0)


@pytest.mark.parametrize("text", [b"", b"4242 (x) S 1 2 3", b"garbage without parens " * 5])
def test_a_malformed_stat_is_refused(text: bytes) -> None:
    with pytest.raises(ValueError):
        parse_stat(text, ticks=100.0, page_size=4096, boot_time=0.0)


def test_boot_time_comes_from_the_btime_line() -> None:
    assert parse_boot_time(b"cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n") == 1.7e9
    assert parse_boot_time(b"cpu 1 2 3\n") is None


def scrape(collector: ProcessCollector) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_this_process_from_proc() -> None:
    """Every standard process metric, with values that match this process."""
    values = scrape(ProcessCollector())
    assert set(values) == {
        "process_cpu_seconds_total", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
        "process_start_time_seconds",
    }  # fmt: skip
    assert values["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert 0 < values["process_cpu_seconds_total"] <= sum(os.times()[:2]) + 0.1
    assert values["process_resident_memory_bytes"] > 1 << 20
    assert values["process_open_fds"] >= 3
    assert time.time() - 86400 < values["process_start_time_seconds"] <= time.time()


def test_without_proc_what_the_platform_gives_is_left(tmp_path: Path) -> None:
    """No /proc: CPU time from os.times() and the descriptor limit; no memory, no start time."""
    values = scrape(ProcessCollector(proc=tmp_path / "no-proc"))
    assert "process_resident_memory_bytes" not in values
    assert "process_start_time_seconds" not in values
    assert values["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert values["process_cpu_seconds_total"] > 0


def test_a_stat_that_cannot_be_parsed_leaves_its_metrics_out(tmp_path: Path) -> None:
    """A broken read never fails the scrape."""
    (tmp_path / "self").mkdir()
    (tmp_path / "stat").write_bytes(b"btime 1700000000\n")
    (tmp_path / "self" / "stat").write_bytes(b"nonsense")
    values = scrape(ProcessCollector(proc=tmp_path))
    assert "process_resident_memory_bytes" not in values
    assert "process_cpu_seconds_total" in values
