"""deploy/systemd/hubbub.service: systemd accepts it, hubbub's CLI accepts its ExecStart (the
same command, a temporary config on a free port, gets ready and stops on the unit's stop
signal), and its stop timeout leaves room above shutdown_timeout."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hubbub.config import Settings
from tests.conftest import need_binary
from tests.support.procs import LineReader, kill_group
from tests.support.server import READY_RE, ROOT
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

UNIT = ROOT / "deploy" / "systemd" / "hubbub.service"


def service_keys() -> dict[str, str]:
    """The [Service] section's settings (the last one of a repeated key)."""
    keys: dict[str, str] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            keys[key] = value
    return keys


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """No error and no warning (an unknown or misspelt key, a bad value are warnings), with
    ExecStart pointing at this machine's hubbub (verify checks that it is executable)."""
    analyze = need_binary("systemd-analyze")
    hubbub = Path(sys.executable).parent / "hubbub"
    if not os.access(hubbub, os.X_OK):
        pytest.skip(f"no hubbub console script next to {sys.executable}")
    unit = tmp_path / "hubbub.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/hubbub", str(hubbub)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=scaled(60)
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_stop_settings_fit_hubbub_s_shutdown() -> None:
    """SIGTERM (what hubbub stops gracefully on), TimeoutStopSec well above shutdown_timeout,
    a raised descriptor limit, restart on failure and the sandbox."""
    keys = service_keys()
    assert keys["KillSignal"] == "SIGTERM"
    assert keys["KillMode"] == "mixed"  # --workers: the supervisor forwards the signal
    assert float(keys["TimeoutStopSec"]) >= Settings().shutdown_timeout + 5
    assert int(keys["LimitNOFILE"]) >= 65536
    assert keys["Restart"] == "on-failure"
    assert keys["User"] not in ("", "root")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert keys[key] == "yes", key
    assert keys["ProtectSystem"] == "strict"


def test_the_exec_start_command_line_serves(tmp_path: Path) -> None:
    """ExecStart's arguments, as they are, with only the config path changed: ready, /health
    answers, SIGTERM stops it with 0."""
    argv = shlex.split(service_keys()["ExecStart"])
    assert argv[0] == "/usr/local/bin/hubbub"
    assert argv[1:] == ["serve", "--config", "/etc/hubbub/hubbub.toml"]
    config = tmp_path / "hubbub.toml"
    config.write_text(
        f'port = 0\ndata_dir = "{tmp_path / "data"}"\nlog_format = "json"\ndemos = false\n'
    )
    args = [str(config) if arg == "/etc/hubbub/hubbub.toml" else arg for arg in argv[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    if env.get("PYTHONPATH"):  # run from WorkingDirectory, as the unit does: keep it valid
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(part).resolve()) for part in env["PYTHONPATH"].split(os.pathsep)
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub", *args], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env=env, cwd=tmp_path, process_group=0,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = LineReader(proc.stdout).readline(scaled(30))
        assert line, "no ready line"
        match = READY_RE.search(line.decode())
        assert match, line
        with urllib.request.urlopen(match.group(1) + "/health", timeout=scaled(10)) as resp:
            assert resp.status == 200
        proc.send_signal(getattr(signal, service_keys()["KillSignal"]))
        assert proc.wait(float(service_keys()["TimeoutStopSec"])) == 0
    finally:
        kill_group(proc)
        assert proc.stdout is not None
        proc.stdout.close()
