"""The reliability suite: delivery under load, cuts, restarts and races, checked by
:mod:`tests.reliability.checker`. ``make test`` runs each scenario at a small scale;
``make reliability`` (``HUBBUB_RELIABILITY=long``) at the issue's scale. Every scenario
appends its figures to ``reports/reliability.jsonl`` (docs/reliability.md quotes them)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tests.reliability.checker import Report

LONG = os.environ.get("HUBBUB_RELIABILITY") == "long"
REPORTS = Path(__file__).resolve().parents[2] / "reports"

#: Settings of the servers under test: rate limits out of the way of the load itself. (It
#: ends with a table: put other top-level keys before it.)
API_KEY = "reliability-api-key-0123456789"
CONFIG = f"""
api_key = "{API_KEY}"
client_command_rate = 1000000
client_command_burst = 1000000
client_byte_rate = 1000000000
client_byte_burst = 1000000000
recovery_max_publications = 5000
presence_ttl = 5
# History long enough for every client of a scenario to recover what it missed (the embedded
# default keeps 1,000, which a client offline for 2 s at 500/s has already lost: then it is
# told recovered=false, honestly, but the scenario would say nothing more).
[channel]
history_size = 200000
history_ttl = 3600
force_recovery = true
presence = true
join_leave = true
"""


def scale(short: int, long: int) -> int:
    """The size of a scenario: ``short`` in make test, ``long`` in make reliability."""
    return long if LONG else short


def record(scenario: str, report: Report | None, **figures: Any) -> None:
    """Print the scenario's result (a delivery report, or only figures) and append it to
    reports/reliability.jsonl."""
    line: dict[str, Any] = {"scenario": scenario, "scale": "long" if LONG else "short"}
    line["time"] = time.time()
    if report is not None:
        line.update(report=str(report), clean=report.clean)
    line.update(figures)
    print(f"\n[{scenario}] {report or ''} {figures}")
    REPORTS.mkdir(exist_ok=True)
    with (REPORTS / "reliability.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")
