"""The tutorial's browser client (../shared/seed/), verbatim apart from the port, under Node 20."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import StartServer, need_binary
from tests.support.procs import LineReader
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

SEED = Path(__file__).with_name("seed_client.js").read_text()


class NodeClient:
    def __init__(self, script: str, tmp_path: Path) -> None:
        node = need_binary("node")
        path = tmp_path / "client.js"
        path.write_text(script)
        self.proc = subprocess.Popen(
            [node, "--experimental-websocket", "--no-warnings", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
        )
        assert self.proc.stdout is not None
        # Lines read from the pipe itself: two lines that arrive together are both seen.
        self.out = LineReader(self.proc.stdout)
        self.lines: list[str] = []

    def wait_for(self, line: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while line not in self.lines:
            got = self.out.readline(deadline - time.monotonic())
            if got is None:
                raise AssertionError(f"node never printed {line!r}; it printed {self.lines!r}")
            if not got:
                raise AssertionError(f"node exited before {line!r}; it printed {self.lines!r}")
            self.lines.append(got.decode(errors="replace").rstrip("\n"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.out.close()


def seed_for(server: ServerProcess) -> str:
    assert 'new WebSocket("ws://localhost:8765")' in SEED
    return SEED.replace("ws://localhost:8765", f"ws://localhost:{server.port}")


def test_seed_client_echo_then_server_going_away(server: ServerProcess, tmp_path: Path) -> None:
    """The seed logs the echo; SIGTERM closes it cleanly with 1001 and the server exits 0."""
    client = NodeClient(seed_for(server), tmp_path)
    try:
        client.wait_for("Connection established")
        client.wait_for("Received message: Hello, Server!")
        assert server.terminate() == 0
        client.wait_for("Connection closed cleanly, code=1001 reason=going away")
        assert client.proc.wait(scaled(10)) == 0
    finally:
        client.stop()


def test_seed_client_close_is_clean(start_server: StartServer, tmp_path: Path) -> None:
    """The seed plus ``socket.close(1000, "bye")`` after the echo: wasClean, code 1000."""
    server = start_server()
    script = (
        seed_for(server)
        + '\nsocket.addEventListener("message", () => socket.close(1000, "bye"));\n'
    )
    client = NodeClient(script, tmp_path)
    try:
        client.wait_for("Received message: Hello, Server!")
        client.wait_for("Connection closed cleanly, code=1000 reason=bye")
        assert "Connection died" not in client.lines
    finally:
        client.stop()
