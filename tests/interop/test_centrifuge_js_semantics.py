"""centrifuge-js (npm, unchanged) under Node 20, in both wire formats, against two hubbub nodes
sharing Redis or PostgreSQL: tags filters (``tagsFilter``), cache recovery (``since: {}`` and
``auto_cache_recover``) and positioning (a publication lost on its way to the subscribers'
node is recovered by the SDK after the 2500 unsubscribe push).

The script (tests/interop/js/semantics.mjs) connects its clients to one node and publishes
through the other's server API; it runs every scenario and prints one JSON object, and each
test here asserts one scenario's outcome per format and engine. It asks this side to lose a
publication on purpose (a line ``LOSE CHANNEL``, answered ``done``): see tests/support/lossy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing, need_binary, stop_all
from tests.interop.test_channel_semantics import FILTERS, TAGS
from tests.support.lossy import store_unannounced
from tests.support.postgres import PostgresServer
from tests.support.procs import LineReader, kill_group
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.interop

JS_DIR = Path(__file__).with_name("js")
SUBPROTOCOL = {"json": "", "protobuf": "centrifuge-protobuf"}
KEY = "js-semantics-api-key-0123456789"
CONFIG = """
[[namespaces]]
name = "tagged"
history_size = 100
history_ttl = 300
allow_tags_filter = true

[[namespaces]]
name = "untagged"
history_size = 100
history_ttl = 300

[[namespaces]]
name = "prices"
history_size = 100
history_ttl = 300
force_recovery = true
force_recovery_mode = "cache"

[[namespaces]]
name = "scores"
history_size = 100
history_ttl = 300
force_recovery = true
force_recovery_mode = "cache"
auto_cache_recover = true

[[namespaces]]
name = "h"
history_size = 100
history_ttl = 300

[[namespaces]]
name = "forced"
history_size = 100
history_ttl = 300
force_positioning = true
force_recovery = true
"""


def run_script(cmd: list[str], answer: Callable[[str], str], log: Path) -> str:
    """Run a Node script; answer each request line it prints other than its result with
    ``answer(line)`` on its stdin; return its last line."""
    with (
        log.open("wb") as err,
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
                last = line.decode().strip()
                if last.startswith("LOSE "):
                    proc.stdin.write(answer(last).encode() + b"\n")
                    proc.stdin.flush()
            if line is None:
                raise TimeoutError(f"semantics.mjs did not finish; stderr: {log.read_text()}")
            assert proc.wait(scaled(10)) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            kill_group(proc)
    return last


_databases = iter(range(1, 1_000_000))


@pytest.fixture(
    scope="module",
    params=[(f, e) for e in ("redis", "postgresql") for f in ("json", "protobuf")],
    ids=lambda p: "-".join(p),
)
def outcome(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The script's results in one format and engine (``outcome["format"]``)."""
    node = need_binary("node")
    if not (JS_DIR / "node_modules" / "centrifuge").is_dir():
        missing("centrifuge-js is not installed: `make test` runs npm ci in tests/interop/js")
    fmt, engine = request.param
    if engine == "redis":
        redis: RedisServer = request.getfixturevalue("redis_session")
        redis.flush()
        engine_url = redis.url
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        engine_url = postgres.create_database(f"js_semantics_{fmt}_{next(_databases)}")
    tmp = tmp_path_factory.mktemp(f"js-semantics-{fmt}-{engine}")
    config = tmp / "hubbub.toml"
    config.write_text(CONFIG)
    servers: list[ServerProcess] = []
    lost: list[tuple[str, int]] = []

    def lose(line: str) -> str:
        channel = line.split(" ", 1)[1]
        offset = asyncio.run(store_unannounced(engine_url, channel, '{"n":3}'))
        lost.append((channel, offset))
        return "done"

    try:
        for name in ("publisher", "receiver"):
            args = ["--engine", engine_url, "--api-key", KEY, "--config", str(config)]
            args += ["--data-dir", str(tmp / f"{name}-data")]
            servers.append(ServerProcess(args, None, tmp / f"{name}.log"))
        publisher, receiver = servers
        setup = {
            "format": fmt,
            "node": receiver.port,
            "api": publisher.url,
            "apiKey": KEY,
            "filters": {name: tf.node if tf else None for name, (tf, _) in FILTERS.items()},
            "tags": TAGS,
        }
        cmd = [node, "--experimental-websocket", "--no-warnings", "semantics.mjs"]
        last = run_script([*cmd, json.dumps(setup)], lose, tmp / "node-stderr.log")
    finally:
        with contextlib.suppress(Exception):  # all are killed; an error here hides none
            stop_all(servers)
    result: dict[str, Any] = json.loads(last)
    result["format"] = fmt
    result["lost"] = lost
    return result


def detail(outcome: dict[str, Any], name: str) -> Any:
    entry = outcome[name]
    assert entry["ok"], entry["detail"]
    return entry["detail"]


def test_clients_negotiated_their_format(outcome: dict[str, Any]) -> None:
    assert detail(outcome, "protocols") == [SUBPROTOCOL[outcome["format"]]]


def test_tags_filters_give_each_subscriber_its_publications(outcome: dict[str, Any]) -> None:
    """Four subscribers of one channel on the other node (three filters, one without): each
    got exactly the publications its filter passes, with data and tags, in order, once."""
    got = detail(outcome, "tags_filter")
    offsets = got["offsets"]
    assert offsets == list(range(1, len(TAGS) + 1))
    for name, (_, passes) in FILTERS.items():
        expected = [
            [offset, {"n": n}, tags]
            for n, (offset, tags) in enumerate(zip(offsets, TAGS, strict=True))
            if passes(tags)
        ]
        record = got["got"][name]
        assert record["pubs"] == expected, name
        assert 0 < len(expected) < len(TAGS) or name == "everything"
        assert record["errors"] == [] and record["unsubscribed"] == []


def test_a_filtered_subscription_recovers_only_what_passes_its_filter(
    outcome: dict[str, Any],
) -> None:
    got = detail(outcome, "tags_filter_recovery")
    assert got["before"] == [[1, {"n": 0}, {"team": "eng"}]]
    assert got["recovered"] == [[3, {"n": 2}, {"team": "eng"}], [5, {"n": 4}, {"team": "eng"}]]
    assert got["live"] == [[7, {"n": 6}, {"team": "eng"}]]
    assert len(got["pubs"]) == 4, "nothing more, nothing twice"
    last = got["subscribed"][-1]
    assert (last["wasRecovering"], last["recovered"], last["hasRecoveredPublications"]) == (
        True,
        True,
        True,
    )
    assert last["epoch"] == got["subscribed"][0]["epoch"]


def test_a_tags_filter_where_the_namespace_does_not_allow_it_unsubscribes(
    outcome: dict[str, Any],
) -> None:
    """centrifuge-js takes the 107 as final: the subscription is unsubscribed with the
    error's code (no error event, no retry) and ready() rejects; the client carries on."""
    got = detail(outcome, "tags_filter_refused")
    for case in ("notAllowed", "malformed"):
        record = got[case]
        assert record["state"] == "unsubscribed", case
        assert [code for code, _ in record["unsubscribed"]] == [107], case
        assert record["errors"] == [] and record["subscribed"] == [], case
        assert record["pubs"] == [], case
        assert record["readyError"] is not None, case
    assert got["after"] == [[1, {"still": "here"}, {"team": "eng"}]]
    assert got["clientState"] == "connected"


def check_cache_flow(got: dict[str, Any]) -> None:
    """The latest publication on subscribe; nothing again after a reconnect when nothing
    changed; the latest only of what was published while away."""
    assert got["first"] == [[3, {"price": 102}, {}]]
    assert got["afterDisconnect"] == [[4, {"price": 103}, {}]], "live, and not 102 again"
    assert got["afterAway"] == [[6, {"price": 105}, {}]], "the latest, not 104"
    assert got["live"] == [[7, {"price": 106}, {}]]
    assert len(got["pubs"]) == 4 and got["errors"] == []
    first, again, last = got["subscribed"]
    has = [ctx["hasRecoveredPublications"] for ctx in (first, again, last)]
    assert has == [True, False, True], "the reply carries the latest only when it changed"
    assert (first["wasRecovering"], first["recovered"], first["recoverable"]) == (
        True,
        True,
        True,
    )
    assert first["offset"] == 3
    assert (again["wasRecovering"], again["recovered"]) == (True, True)
    assert (last["wasRecovering"], last["recovered"], last["offset"]) == (True, True, 6)
    assert first["epoch"] == again["epoch"] == last["epoch"]


def test_cache_mode_gives_the_latest_publication_from_an_empty_position(
    outcome: dict[str, Any],
) -> None:
    check_cache_flow(detail(outcome, "cache_since"))


def test_auto_cache_recover_gives_the_latest_without_a_position(outcome: dict[str, Any]) -> None:
    check_cache_flow(detail(outcome, "cache_auto"))


def test_cache_mode_gives_nothing_to_a_subscriber_that_does_not_ask(
    outcome: dict[str, Any],
) -> None:
    got = detail(outcome, "cache_not_asked")
    assert got["pubs"] == [[2, {"price": 2}, {}]]
    (first,) = got["subscribed"]
    assert (first["wasRecovering"], first["recovered"], first["offset"]) == (False, False, 1)
    assert not first["hasRecoveredPublications"]


def test_a_lost_publication_is_recovered_by_the_sdk(outcome: dict[str, Any]) -> None:
    """Positioned subscribers (asked, or forced by the namespace) see 2..6 exactly once and in
    order, having resubscribed once (2500) and recovered; the plain one misses 3."""
    got = detail(outcome, "positioning")
    assert sorted(outcome["lost"]) == [("forced:feed", 3), ("h:feed", 3)]
    channels = ["h:feed", "forced:feed", "h:feed"]
    for i, (channel, record) in enumerate(zip(channels, got["records"], strict=True)):
        positioned = i < 2
        ns = [3, 4, 5] if positioned else [4, 5]
        assert got["afterLoss"][i] == [[n, {"n": n}, {}] for n in ns], (channel, positioned)
        assert record["pubs"] == [[n, {"n": n}, {}] for n in [2, *ns, 6]], "once, in order"
        assert record["errors"] == [] and record["unsubscribed"] == []
        if positioned:
            assert record["subscribing"] == [0, 2500]
            last = record["subscribed"][-1]
            assert (last["wasRecovering"], last["recovered"]) == (True, True)
            assert last["epoch"] == got["epochs"][channel]
        else:
            assert record["subscribing"] == [0] and len(record["subscribed"]) == 1
