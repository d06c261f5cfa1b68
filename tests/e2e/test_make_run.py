"""`make run` as a new user meets it: the secrets it prints are this checkout's (made once,
the same every run), `hubbub token` works with them, and HUBBUB_PORT moves it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from hubbub.auth import TokenVerifier
from hubbub.config import Settings
from tests.conftest import need_binary
from tests.support.procs import LineReader, kill_group
from tests.support.proto import call
from tests.support.server import READY_RE, ROOT
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

STAMP = ".venv/.run-stamp"  # as the Makefile names it (make runs in ROOT)
SECRET_RE = re.compile(r"export (HUBBUB_API_KEY|HUBBUB_TOKEN_HMAC_SECRET)=(\S+)")


@dataclass
class Run:
    url: str
    printed: list[str]
    secrets: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_run(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Run]:
    """Start `make run` (never reinstalling: the stamp is taken as up to date) with its secrets
    file and data in ``tmp_path``; return it once hubbub printed its ready line."""
    need_binary("make")
    if not (ROOT / ".venv" / "bin" / "hubbub").exists():
        pytest.skip("make run serves .venv/bin/hubbub, which is not installed here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    env |= {"HUBBUB_PORT": str(port), "HUBBUB_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        ["make", "-s", "--no-print-directory", "-o", STAMP, "run",
         f"RUN_SECRETS={tmp_path / 'run.env'}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, process_group=0,
    )  # fmt: skip
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    printed: list[str] = []
    until = time.monotonic() + scaled(60)
    try:
        while (line := out.readline(until - time.monotonic())) is not None and line:
            printed.append(line.decode().rstrip("\n"))
            if ready := READY_RE.search(printed[-1]):
                secrets = dict(SECRET_RE.findall("\n".join(printed)))
                return proc, Run(ready.group(1), printed, secrets)
        raise AssertionError(f"make run never got ready; it printed {printed!r}")
    except BaseException:
        stop(proc)
        raise


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(scaled(20))
    finally:
        kill_group(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def hubbub_token(secrets_file: Path) -> subprocess.CompletedProcess[str]:
    """`. RUN_SECRETS; hubbub token --user ada`, as the printed hint says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    script = f'. "{secrets_file}" && exec "{sys.executable}" -m hubbub token --user ada'
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                          cwd=secrets_file.parent, timeout=scaled(30))  # fmt: skip


async def test_make_run_keeps_its_secrets_and_mints_tokens(tmp_path: Path) -> None:
    port = free_port()
    proc, first = make_run(tmp_path, port)
    try:
        assert first.url == f"http://127.0.0.1:{port}"  # HUBBUB_PORT is honoured
        assert f"http://127.0.0.1:{port}/admin" in "\n".join(first.printed)
        assert set(first.secrets) == {"HUBBUB_API_KEY", "HUBBUB_TOKEN_HMAC_SECRET"}
        assert (tmp_path / "run.env").stat().st_mode & 0o077 == 0  # for this user only
        minted = hubbub_token(tmp_path / "run.env")
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()
        verifier = TokenVerifier(
            Settings(token_hmac_secret=first.secrets["HUBBUB_TOKEN_HMAC_SECRET"])
        )
        assert verifier.connect(token).user == "ada"
        async with aiohttp.ClientSession() as http:
            ws_url = first.url.replace("http", "ws") + "/connection/websocket"
            async with http.ws_connect(ws_url) as ws:
                (reply,) = await call(ws, {"id": 1, "connect": {"token": token}})
                assert "client" in reply["connect"], reply
            key = {"X-API-Key": first.secrets["HUBBUB_API_KEY"]}
            body = {"channel": "news", "data": {"text": "hi"}}
            async with http.post(first.url + "/api/publish", json=body, headers=key) as resp:
                assert json.loads(await resp.text())["result"]["offset"] == 1
    finally:
        stop(proc)
    proc, second = make_run(tmp_path, free_port())
    stop(proc)
    assert second.secrets == first.secrets  # the same key and secret on every run
