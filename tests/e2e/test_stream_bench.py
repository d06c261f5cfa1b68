"""bench/stream_bench.py runs small and prints a figure for every transport and channel (the
figures themselves belong to `make bench`, never to tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.stream_bench import CHANNELS, TRANSPORTS

from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_stream_bench_prints_deliveries_per_cpu_second_for_every_transport() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "stream_bench.py"), "--subscribers", "20",
         "--seconds", "0.5", "--rounds", "1", "--rate", "40", "--no-pin"],
        capture_output=True, text=True, timeout=scaled(120), cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("  ")]
    figures = [row for row in rows if row[0] in TRANSPORTS]
    assert [row[0] for row in figures] == list(TRANSPORTS) * len(CHANNELS), out.stdout
    for row in figures:
        deliveries, per_cpu, ratio = (float(v.replace(",", "")) for v in (row[1], row[3], row[4]))
        assert deliveries > 0 and per_cpu > 0 and ratio > 0, row
