"""centrifuge-js (npm, unchanged) under Node 20 against hubbub and the example chat hub.

The scenario script (tests/interop/js/scenario.mjs) runs every scenario and prints one JSON
object; each test here asserts one scenario's outcome.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing, need_binary
from tests.support.procs import run
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop

JS_DIR = Path(__file__).with_name("js")


@pytest.fixture(scope="module")
def outcome(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    node = need_binary("node")
    if not (JS_DIR / "node_modules" / "centrifuge").is_dir():
        missing("centrifuge-js is not installed: `make test` runs npm ci in tests/interop/js")
    tmp = tmp_path_factory.mktemp("js")
    server = ServerProcess(
        ["--app", "examples.chat_hub:hub", "--data-dir", str(tmp / "data")],
        None,
        tmp / "server.log",
    )
    try:
        proc = run(
            [node, "--experimental-websocket", "--no-warnings", "scenario.mjs", str(server.port)],
            timeout=120,
            cwd=JS_DIR,
        )
    finally:
        server.terminate()
        server.kill()
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def detail(outcome: dict[str, Any], name: str) -> Any:
    entry = outcome[name]
    assert entry["ok"], entry["detail"]
    return entry["detail"]


def test_publish_reaches_subscribers_of_two_channels(outcome: dict[str, Any]) -> None:
    got = detail(outcome, "pubsub_two_channels")
    assert got["gotA"] == [{"text": "to a", "from": "bob"}]
    assert got["gotB"] == [{"text": "to b", "from": "bob"}]


def test_history_limit_since_reverse(outcome: dict[str, Any]) -> None:
    got = detail(outcome, "history")
    assert got["all"] == [[i + 1, f"m{i}"] for i in range(5)]
    assert got["top"] == 5
    assert got["reverse"] == [5, 4]
    assert got["since"] == [4, 5]
    assert got["wrongEpochCode"] == 112


def test_presence_stats_join_and_leave(outcome: dict[str, Any]) -> None:
    got = detail(outcome, "presence_join_leave")
    assert got["users"] == ["ada", "bob"]
    assert got["stats"] == [2, 2]
    assert got["after"] == [1, 1]
    assert "bob" in got["joins"]
    assert "bob" in got["leaves"]


def test_rpc_into_python_hook(outcome: dict[str, Any]) -> None:
    got = detail(outcome, "rpc")
    assert got == {"user": "ada", "missingCode": 104}


def test_rejected_publish_is_the_sdks_error(outcome: dict[str, Any]) -> None:
    got = detail(outcome, "rejected_publish")
    assert got == {"code": 4003, "message": "message refused"}


def test_recovery_after_connection_loss(outcome: dict[str, Any]) -> None:
    """Missed messages arrive exactly once, in order, after the SDK reconnects by itself."""
    got = detail(outcome, "recovery")
    assert got["texts"] == [f"m{i}" for i in range(9)]
    assert got["extra"] == 0
    assert got["accepted"] >= 2
    assert got["lastSubscribed"] == {"wasRecovering": True, "recovered": True}
