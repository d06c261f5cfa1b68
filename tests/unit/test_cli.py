"""The command line refuses bad settings with a message naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from hubbub.cli import main
from tests.support.timing import scaled


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
            timeout=scaled(30),
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


def test_history_command_reads_the_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`hubbub history` prints a channel's publications from the SQLite store."""
    import asyncio
    import json

    from hubbub.core.types import ClientInfo, Publication
    from hubbub.engines.base import HistoryOptions
    from hubbub.engines.sqlite import SqliteHistory

    async def fill() -> None:
        store = SqliteHistory(tmp_path / "hubbub.db", retention_interval=0)
        await store.open()
        for i in range(5):
            pub = Publication(json.dumps({"i": i}), info=ClientInfo("c", "ada"), time_ms=1000)
            await store.append("chat:a", pub, HistoryOptions(100, 3600))
        await store.close()

    asyncio.run(fill())
    runner = CliRunner()
    args = ["history", "chat:a", "--data-dir", str(tmp_path)]
    result = runner.invoke(main, [*args, "--json", "--since", "2", "--limit", "2"], env={})
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(x["offset"], x["data"], x["info"]["user"]) for x in lines] == [
        (3, {"i": 2}, "ada"),
        (4, {"i": 3}, "ada"),
    ]
    text = runner.invoke(main, args, env={})
    assert text.exit_code == 0
    assert "top offset 5" in text.output
    assert '{"i": 4}' in text.output

    def offsets(*more: str) -> list[int]:
        out = runner.invoke(main, [*args, "--json", *more], env={})
        assert out.exit_code == 0, out.output
        return [json.loads(line)["offset"] for line in out.output.splitlines()]

    assert offsets("--limit", "2") == [4, 5]  # the newest two, oldest first (as tail)
    assert offsets("--limit", "2", "--reverse") == [5, 4]
    assert offsets("--since", "4", "--reverse") == [3, 2, 1]
    assert offsets() == [1, 2, 3, 4, 5]
    missing = runner.invoke(main, ["history", "x", "--data-dir", str(tmp_path / "none")], env={})
    assert missing.exit_code == 1
    assert "no history store" in missing.output
