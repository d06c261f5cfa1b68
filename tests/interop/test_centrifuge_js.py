"""centrifuge-js (npm, unchanged) under Node 20 against hubbub and the example chat hub, in
both wire formats: JSON (the default build) and Protobuf (``centrifuge/build/protobuf``).

The scenario script (tests/interop/js/scenario.mjs) runs every scenario in one format and
prints one JSON object; each test here asserts one scenario's outcome, once per format. The
script asks this side to stop and restart the server for the restart scenario (a line
``STOP`` or ``START`` on its stdout, answered ``done`` on its stdin).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing, need_binary, stop_all
from tests.interop.conftest import CHAT_APP, VERBATIM_APP
from tests.support.procs import LineReader, kill_group
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.interop

JS_DIR = Path(__file__).with_name("js")
SUBPROTOCOL = {"json": "", "protobuf": "centrifuge-protobuf"}


def drive(cmd: list[str], chat: list[ServerProcess], chat_args: list[str], log: Path) -> str:
    """Run the scenario script; serve its STOP/START requests on ``chat[-1]`` (a restarted
    server is appended to ``chat``); return its last line."""
    transcript_path = log.with_name("node-stdout.log")
    with (
        log.open("wb") as err,
        transcript_path.open("wb") as transcript,
        subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=JS_DIR,
            process_group=0,
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        out = LineReader(proc.stdout)
        until = time.monotonic() + scaled(120)
        last = ""
        try:
            while (line := out.readline(until - time.monotonic())) not in (None, b""):
                assert line is not None
                transcript.write(line)
                last = line.decode().strip()
                if last == "STOP":
                    answer = "done" if chat[-1].terminate() == 0 else "exit code not 0"
                elif last == "START":
                    port = str(chat[-1].port)
                    chat.append(
                        ServerProcess(
                            [*chat_args, "--port", port],
                            None,
                            log.with_name(f"chat-{len(chat)}.log"),
                        )
                    )
                    answer = "done"
                else:
                    continue
                proc.stdin.write(answer.encode() + b"\n")
                proc.stdin.flush()
            if line is None:
                raise TimeoutError(f"scenario.mjs did not finish; stderr: {log.read_text()}")
            assert proc.wait(scaled(10)) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            kill_group(proc)
    return last


FORMATS = ("json", "protobuf")


def run_scenario(node: str, fmt: str, tmp: Path) -> dict[str, Any]:
    """The scenario script's results in one format (``result["format"]``)."""
    chat_args = [*CHAT_APP, "--data-dir", str(tmp / "data")]
    servers: list[ServerProcess] = []
    chat: list[ServerProcess] = []
    try:
        servers.append(
            ServerProcess(
                [*VERBATIM_APP, "--data-dir", str(tmp / "verbatim-data")],
                None,
                tmp / "verbatim.log",
            )
        )
        chat.append(ServerProcess(chat_args, None, tmp / "chat-0.log"))
        script = ["scenario.mjs", str(chat[0].port), fmt, str(servers[0].port)]
        cmd = [node, "--experimental-websocket", "--no-warnings", *script]
        last = drive(cmd, chat, chat_args, tmp / "node-stderr.log")
    finally:
        with contextlib.suppress(Exception):  # all are killed; an error here hides none
            stop_all([*servers, *chat])
    result: dict[str, Any] = json.loads(last)
    result["format"] = fmt
    result["restarts"] = len(chat) - 1
    return result


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both formats' results. The two scripts run at once, each with servers of its own: they
    mostly wait (reconnect back-offs, the restart), 2 x 17 s one after the other."""
    node = need_binary("node")
    if not (JS_DIR / "node_modules" / "centrifuge").is_dir():
        missing("centrifuge-js is not installed: `make test` runs npm ci in tests/interop/js")
    with ThreadPoolExecutor(len(FORMATS)) as pool:
        runs = {
            fmt: pool.submit(run_scenario, node, fmt, tmp_path_factory.mktemp(f"js-{fmt}"))
            for fmt in FORMATS
        }
        return {fmt: run.result() for fmt, run in runs.items()}


@pytest.fixture(params=FORMATS)
def outcome(request: pytest.FixtureRequest, outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The scenario script's results in one format (``outcome["format"]``)."""
    return outcomes[request.param]


def detail(outcome: dict[str, Any], name: str) -> Any:
    entry = outcome[name]
    assert entry["ok"], entry["detail"]
    return entry["detail"]


def test_clients_negotiated_their_format(outcome: dict[str, Any]) -> None:
    """Every WebSocket opened with the subprotocol of its build's format (none for JSON): a
    Protobuf client that fell back to JSON would fail here."""
    got = detail(outcome, "negotiated")
    fmt = outcome["format"]
    assert got[fmt] == [SUBPROTOCOL[fmt]]
    assert got["mixed-json"] == [""]
    assert got["mixed-protobuf"] == ["centrifuge-protobuf"]
    assert set(got) == {fmt, "mixed-json", "mixed-protobuf"}


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


def test_emulated_headers_reach_the_connect_hook(outcome: dict[str, Any]) -> None:
    """The SDK's ``headers`` option reaches on_connect as emulated headers (names
    lowercased), kept apart from the handshake's own headers."""
    got = detail(outcome, "emulated_headers")
    assert got["emulated"] == {"authorization": "Bearer js-token", "x-tenant": "acme"}
    assert "host" in got["real"]
    assert not {"authorization", "x-tenant"} & set(got["real"])


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


def test_recovery_after_server_restart(outcome: dict[str, Any]) -> None:
    """The server stops (SIGTERM) and starts again on its port and data directory; what was
    published while the subscriber was away arrives once, in order, recovered in the same
    stream."""
    got = detail(outcome, "recovery_after_restart")
    assert outcome["restarts"] == 1
    assert got["texts"] == [f"m{i}" for i in range(9)]
    assert got["early"] == 0
    assert got["extra"] == 0
    assert got["accepted"] >= 2
    first, last = got["subscribed"][0], got["subscribed"][-1]
    assert (last["wasRecovering"], last["recovered"]) == (True, True)
    assert last["epoch"] == first["epoch"]
    assert last["offset"] == 8  # m0..m7 when it was back


def test_mixed_formats_on_one_channel(outcome: dict[str, Any]) -> None:
    """A JSON and a Protobuf centrifuge-js client on the same channels (the verbatim hub):
    each gets the other's publications as the same JSON value; the Protobuf client's bytes
    reach it back byte for byte (history included); data that is not JSON is refused (107)."""
    got = detail(outcome, "mixed_formats")
    chat = [{"text": "from json", "from": "jay"}, {"text": "from protobuf", "from": "pat"}]
    assert got["jayChat"] == chat
    assert got["patChat"] == chat
    assert got["jayRaw"] == [{"a": 1}, {"b": [1, "two"]}]
    raw = [b'{"a": 1}', b'{"b":[1,"two"]}']
    assert [bytes(b) for b in got["patRaw"]] == raw
    assert [bytes(b) for b in got["patHistory"]] == raw
    assert got["jayHistory"] == [{"a": 1}, {"b": [1, "two"]}]
    assert got["codes"] == [107, 107, 107, 107]
    assert got["extra"] == [0, 0, 0, 0]
