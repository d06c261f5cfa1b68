"""log_format = "json": every line hubbub logs is one JSON object, from start to shutdown, in
`hubbub serve`, in each of its --workers and in Hub.run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartServer
from tests.support.procs import LineReader, kill_group
from tests.support.redis import RedisServer
from tests.support.server import ROOT
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_records(stderr: str) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a log record; fails on a line that is not one."""
    records = []
    for line in stderr.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert TIME_RE.match(record["time"]), line
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, line
        assert isinstance(record["logger"], str) and isinstance(record["message"], str), line
        records.append(record)
    return records


def messages(records: list[dict[str, Any]]) -> list[str]:
    return [r["message"] for r in records]


def test_serve_logs_json_lines_at_start_and_shutdown(start_server: StartServer) -> None:
    """The config key: the start line (with its extra fields) and the shutdown ones."""
    server = start_server(config='log_format = "json"\n')
    assert server.terminate() == 0
    records = json_records(server.stderr())
    start = next(r for r in records if r["message"].startswith("listening on "))
    assert start["message"] == f"listening on {server.url}"
    assert start["logger"] == "hubbub.server.runner" and start["pid"] == server.proc.pid
    assert "stopped" in messages(records)
    assert messages(records).index("stopped") > records.index(start)


def test_text_stays_the_default(start_server: StartServer) -> None:
    server = start_server()
    assert server.terminate() == 0
    lines = server.stderr().splitlines()
    assert any(
        line.endswith(f"INFO hubbub.server.runner: listening on {server.url}") for line in lines
    )


def test_every_worker_logs_json(start_server: StartServer, redis_server: RedisServer) -> None:
    """--workers 2 with --log-format json: both workers' lines are JSON, each worker starts."""
    server = start_server("--engine", redis_server.url, "--workers", "2", "--log-format", "json")
    assert server.terminate() == 0
    records = json_records(server.stderr())
    starts = {r["pid"] for r in records if r["message"].startswith("listening on ")}
    stops = [r for r in records if r["message"] == "stopped"]
    assert len(starts) == 2 and server.proc.pid not in starts
    assert len(stops) == 2


def test_hub_run_logs_json(tmp_path: Path) -> None:
    """Hub.run(log_format="json") sets up the same logging."""
    script = tmp_path / "app.py"
    script.write_text(
        "from hubbub import Hub\n"
        f"Hub(data_dir={str(tmp_path / 'data')!r}, demos=False).run(port=0, log_format='json')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    err_path = tmp_path / "stderr.log"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=err, env=env,
            cwd=ROOT, process_group=0,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        out = LineReader(proc.stdout)
        line = out.readline(scaled(30))
        assert line is not None and b"listening on" in line, line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(scaled(20)) == 0
    finally:
        kill_group(proc)
        assert proc.stdout is not None
        proc.stdout.close()
    deadline = time.monotonic() + scaled(5)
    while "stopped" not in err_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    records = json_records(err_path.read_text())
    assert any(m.startswith("listening on http://127.0.0.1:") for m in messages(records))
    assert messages(records)[-1] == "stopped"
