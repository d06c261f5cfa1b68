"""The command line refuses bad settings with a message naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from hubbub.cli import main


def test_bad_flag_value_names_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["serve", "--port", "99999"], env={})
    assert result.exit_code == 1
    assert "port: Input should be less than or equal to 65535 (from command line)" in result.output


def test_bad_env_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["serve"], env={"HUBBUB_MAX_MESSAGE_SIZE": "big"})
    assert result.exit_code == 1
    assert "HUBBUB_MAX_MESSAGE_SIZE" in result.output


def test_port_in_use_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hubbub",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "is not module:attribute"),
        ("no_such_module_xyz:hub", "cannot import 'no_such_module_xyz'"),
        ("examples.chat_hub:BANNED_WORDS", "is not a hubbub.Hub"),
    ],
)
def test_bad_app_is_refused(spec: str, message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--app", spec], env={})
    assert result.exit_code == 1
    assert message in result.output
