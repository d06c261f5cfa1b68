"""pusher-js (npm, unchanged, its Node build) against hubbub's Pusher endpoint, with the
``pusher`` PyPI library as the app's server side and centrifuge-js on a shared channel.

The driver (tests/interop/js/pusher.mjs) runs every scenario once and prints one JSON line
per scenario; each test here asserts one scenario's outcome. Three hubbub nodes: one on the
embedded engine for most scenarios, two sharing a throw-away Redis for presence across nodes.
The app's backend (tests/interop/pusher_backend.py) signs what pusher-js asks for and sends
events with the ``pusher`` library when the driver asks it to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing, need_binary, stop_all
from tests.interop import pusher_backend as pb
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.interop

JS_DIR = Path(__file__).with_name("js")
SCENARIOS = (
    "connect",
    "public",
    "private",
    "refused",
    "presence",
    "clientEvents",
    "encrypted",
    "cache",
    "signin",
    "cluster",
    "shared",
)


def start(tmp: Path, name: str, engine: str | None = None) -> ServerProcess:
    config = tmp / f"{name}.toml"
    config.write_text(pb.server_config(engine=engine))
    args = ["--config", str(config), "--data-dir", str(tmp / f"{name}-data")]
    return ServerProcess(args, None, tmp / f"{name}.log")


async def drive(node: str, solo: ServerProcess, cluster: list[ServerProcess], tmp: Path) -> Any:
    """Run the driver against the servers, with a backend for each; its lines by scenario,
    plus ``requests``: what each backend was asked."""
    async with (
        pb.Backend(solo.port) as backend,
        pb.Backend(solo.port, key=pb.SHARED_KEY, secret=pb.SHARED_SECRET) as shared,
        pb.Backend(cluster[0].port) as cluster_backend,
    ):
        cfg = {
            "key": pb.KEY,
            "sharedKey": pb.SHARED_KEY,
            "appId": pb.APP_ID,
            "port": solo.port,
            "backend": backend.url,
            "sharedBackend": shared.url,
            "cluster": [s.port for s in cluster],
            "clusterBackend": cluster_backend.url,
            "stepMs": int(scaled(10) * 1000),
            "scenarioMs": int(scaled(20) * 1000),
        }
        stderr = tmp / "node-stderr.log"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                node,
                "--experimental-websocket",
                "--no-warnings",
                "pusher.mjs",
                json.dumps(cfg),
                cwd=JS_DIR,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                process_group=0,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), scaled(50))
            except TimeoutError:
                msg = f"pusher.mjs did not finish; stderr: {stderr.read_text()}"
                raise TimeoutError(msg) from None
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
        (tmp / "node-stdout.log").write_bytes(out)
        assert proc.returncode == 0, stderr.read_text()
        lines = pb.jsonl(out.decode())
        assert lines and lines[-1] == {"done": True}, out.decode()
        result: dict[str, Any] = {line["scenario"]: line for line in lines[:-1]}
        result["requests"] = {
            "backend": backend.requests,
            "shared": shared.requests,
            "cluster": cluster_backend.requests,
        }
        return result


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, redis_session: RedisServer
) -> dict[str, Any]:
    node = need_binary("node")
    if not (JS_DIR / "node_modules" / "pusher-js").is_dir():
        missing("pusher-js is not installed: `make test` runs npm ci in tests/interop/js")
    redis_session.flush()
    tmp = tmp_path_factory.mktemp("pusher-js")
    servers: list[ServerProcess] = []
    try:
        servers.append(start(tmp, "solo"))
        servers += [start(tmp, f"node-{n}", redis_session.url) for n in "ab"]
        result: dict[str, Any] = asyncio.run(drive(node, servers[0], servers[1:], tmp))
    finally:
        with contextlib.suppress(Exception):  # all are killed; an error here hides none
            stop_all(servers)
    return result


def detail(outcomes: dict[str, Any], name: str) -> Any:
    entry = outcomes[name]
    assert entry["ok"], entry["error"]
    return entry["detail"]


def events(log: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["event"], e["data"]) for e in log]


def auth_requests(outcomes: dict[str, Any], backend: str = "backend") -> list[dict[str, str]]:
    return [r["form"] for r in outcomes["requests"][backend] if "form" in r]


def test_connects_with_a_socket_id(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "connect")
    assert re.fullmatch(r"\d+\.\d+", got["socketId"]), got
    assert got["state"] == "connected"
    assert got["transport"] == "ws"
    assert got["activityTimeout"] == 120_000  # the app's default, announced in seconds
    assert got["errors"] == []


def test_public_channel_events_and_socket_exclusion(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "public")
    assert got["succeeded"]["event"] == "pusher:subscription_succeeded"
    two = ("placed", {"n": 2, "item": "tea ☕"})
    text = ("note", "just text")
    assert events(got["b"]) == [("placed", {"n": 1}), two, text]
    assert events(got["a"]) == [two, text], "the excluded socket does not get the first"
    assert events(got["odd"]) == [("odd", [1, "two"])]


def test_private_channel_authorized_by_the_backend(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "private")
    assert events(got["events"]) == [("shipped", {"id": 7})]
    asked = [r for r in auth_requests(outcomes) if r.get("channel_name") == "private-orders"]
    assert asked == [
        {"socket_id": got["socketId"], "channel_name": "private-orders", "user": "ada"}
    ]
    assert got["errors"] == []


def test_refused_subscriptions_leave_the_connection_up(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "refused")
    # The app refused (403 from its endpoint): pusher-js reports it, nothing reaches hubbub.
    [(event, data)] = events(got["forbidden"])
    assert event == "pusher:subscription_error"
    assert data["type"] == "AuthError" and data["status"] == 403
    # A signature hubbub does not accept: refused on the channel, never subscribed.
    assert got["badsigSubscribed"] is False
    [(event, data)] = events(got["badsig"])
    assert event == "pusher:subscription_error"
    assert data["type"] == "AuthError" and data["status"] == 401, data
    assert got["state"] == "connected"


def test_presence_members_and_client_events(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "presence")
    log = events(got["a"])
    ada = {"name": "ada"}
    bob = {"id": "bob", "info": {"name": "bob"}}
    assert log[0] == (
        "pusher:subscription_succeeded",
        {"count": 1, "me": {"id": "ada", "info": ada}, "members": {"ada": ada}},
    )
    assert ("pusher:member_added", bob) in log
    assert log[-1] == ("pusher:member_removed", bob)
    assert [e for e, _ in log].count("pusher:member_added") == 1, "bob's two connections"
    # bob's second connection left while the first stayed: nothing came.
    assert got["afterSecondLeft"] == len(log) - 1
    assert got["bView"] == {
        "count": 2,
        "me": bob,
        "members": {"ada": ada, "bob": {"name": "bob"}},
    }
    assert got["b2View"] == got["bView"]
    assert got["aView"] == {"count": 1, "me": {"id": "ada", "info": ada}, "members": {"ada": ada}}
    assert got["sent"] is True
    assert got["typing"] == [{"data": {"typing": True}, "meta": {"user_id": "bob"}}]
    assert got["echoed"] == [], "the sender does not get its own client event"
    assert got["errors"] == []


def test_client_events_on_private_not_on_public_channels(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "clientEvents")
    assert events(got["b"]) == [("client-hello", {"text": "hi bob"})]
    assert got["a"] == [], "the sender does not get its own client event"
    assert got["publicB"] == []
    [error] = got["errors"]
    assert error["code"] is None and "lobby" in error["message"], error
    assert got["state"] == "connected"


def test_encrypted_channel_decrypted_by_pusher_js(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "encrypted")
    assert events(got["events"]) == [("secret", {"gold": 24, "note": "é"})]
    assert got["errors"] == []


def test_cache_channels_replay_their_last_event(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "cache")
    assert [e for e, _ in events(got["first"])] == [
        "pusher:subscription_succeeded",
        "pusher:cache_miss",
        "price",
        "price",
    ]
    assert [d for _, d in events(got["first"])][2:] == [{"v": 1}, {"v": 2}]
    assert events(got["late"]) == [("pusher:subscription_succeeded", {}), ("price", {"v": 2})]
    assert events(got["stock"]) == [("pusher:subscription_succeeded", {}), ("level", {"left": 3})]


def test_signin_and_server_to_user_events(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "signin")
    assert got["userData"] == {"id": "carol", "user_info": {"name": "carol"}}
    assert got["channel"] == "#server-to-user-carol"
    assert got["got"] == {
        "a": [{"text": "for carol"}],
        "a2": [{"text": "for carol"}],
        "other": [{"text": "for dave"}],
    }
    assert got["signinErrors"] == [] and got["errors"] == []
    asked = [r for r in outcomes["requests"]["backend"] if r["path"] == "/pusher/user-auth"]
    assert sorted(r["form"]["user"] for r in asked) == ["carol", "carol", "dave"]


def test_presence_across_two_nodes(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "cluster")
    marks = got["marks"]
    bob = {"id": "bob", "info": {"name": "bob"}}
    for side, other in (("a", "watcher-b"), ("b", None)):
        seen = [(e["event"], e["data"]) for e in got[side]]
        expected = [("pusher:member_added", bob), ("pusher:member_removed", bob)]
        if other is not None:  # watcher-b joined after watcher-a
            expected.insert(0, ("pusher:member_added", {"id": other, "info": {"name": other}}))
        assert seen == expected, (side, got[side], marks)
        removed = got[side][-1]
        assert removed["at"] >= marks["tab2Leaves"], "member_removed only when the last tab left"
    assert got["tab2View"]["count"] == 3
    assert set(got["tab2View"]["members"]) == {"watcher-a", "watcher-b", "bob"}
    assert got["waves"] == [{"data": {"hi": "from a"}, "meta": {"user_id": "watcher-a"}}]
    assert events(got["announce"]) == [("announce", {"n": 1})]
    assert got["errors"] == []


def test_pusher_and_centrifugo_clients_share_a_channel(outcomes: dict[str, Any]) -> None:
    got = detail(outcomes, "shared")
    # A Centrifugo client's publication is a Pusher event named "message" (no event tag).
    assert events(got["pusher"]) == [
        ("message", {"text": "from centrifugo"}),
        ("headline", {"text": "from pusher"}),
    ]
    # The Pusher side's event reaches the Centrifugo client as the object, its name a tag.
    assert {"data": {"text": "from pusher"}, "tags": {"pusher_event": "headline"}} in got[
        "centrifugo"
    ]
    # An unmapped app's channels are apart: refused to Centrifugo clients (103).
    assert got["apart"] == [{"unsubscribed": 103}]
    assert got["errors"] == []
