"""hubbub.js (src/hubbub/server/static/hubbub.js) under Node 20 against a real server.

The Node tests live next to this file (``*.test.mjs``, run with ``node --test``); this test
starts the server they talk to (with the hub of ``hub.py`` and a server API key) and asserts
that every one of them passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import StartServer, need_binary
from tests.support.procs import run

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).resolve().parent
ROOT = JS_DIR.parents[1]
SECRET = "js-secret-" + "s" * 32
API_KEY = "js-api-key-" + "k" * 32
# Fast pings so that a dead link is noticed within seconds (and an unanswered ping closes
# the connection in the long tests); a namespace that needs subscription tokens.
CONFIG = """
ping_interval = 2
pong_timeout = 1

[[namespaces]]
name = "private"
allow_subscribe_for_client = false
allow_subscribe_for_anonymous = false
"""


def test_hubbub_js(start_server: StartServer) -> None:
    node = need_binary("node")
    server = start_server(
        "--app",
        "tests.js.hub:hub",
        "--token-hmac-secret",
        SECRET,
        "--api-key",
        API_KEY,
        config=CONFIG,
    )
    env = {
        **os.environ,
        "HUBBUB_URL": server.url,
        "HUBBUB_SECRET": SECRET,
        "HUBBUB_API_KEY": API_KEY,
    }
    # node --test runs each file in a child process: a process group of its own, so that a
    # timeout ends those too. The files mostly wait (pings, reconnect back-offs), and Node runs
    # as many at once as there are cores less one (one here): four at once, 25 s -> 9 s.
    proc = run(
        [
            node,
            "--experimental-websocket",
            "--no-warnings",
            "--test",
            "--test-concurrency=4",
            "tests/js/",
        ],
        timeout=180,
        cwd=ROOT,
        env=env,
    )
    if proc.returncode != 0:
        print(proc.stdout)
        print(proc.stderr)
        print(server.stderr()[-5000:])
    assert proc.returncode == 0, "node --test failed (its output is printed above)"
