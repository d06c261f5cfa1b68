"""Webhooks end to end: a real aiohttp backend (tests/support/webhook_receiver.py) that checks
every signature with hubbub.webhooks.verify and deduplicates events by id.

Times are scaled down: retries back off up to 0.3 s (``webhook_max_backoff``) and requests
time out after 1 s, so the issue's "backend down for 30 s" is a backend down for 3 s here: ten
times the longest back-off, so that many retries fall in the outage (with the default 30 s
back-off that would take five minutes). A node counts as gone after 1.5 s
(``webhook_node_ttl``) instead of 10. Every wait is scaled by TEST_TIME_SCALE
(tests/support/timing.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.proto import WS, call
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled
from tests.support.webhook_receiver import SECRET, Receiver, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOKEN_SECRET = "token-secret-for-the-webhook-tests-0123"
NAMESPACES = """
[[namespaces]]
name = "pub"
webhook_publish = true
history_size = 10
history_ttl = 60
"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.up()
    try:
        yield rec
    finally:
        await rec.down()


def config(receiver: Receiver, **extra: Any) -> str:
    extra.setdefault("webhook_node_ttl", 1.5)
    extra.setdefault("token_hmac_secret", TOKEN_SECRET)
    return receiver.config(**extra) + NAMESPACES


async def client(http: aiohttp.ClientSession, server: ServerProcess, user: str = "") -> WS:
    ws = await http.ws_connect(server.ws + "/connection/websocket")
    params = {"token": mint(TOKEN_SECRET, user, info={"name": user})} if user else {}
    (reply,) = await call(ws, {"id": 1, "connect": params})
    assert "connect" in reply, reply
    ws.client_id = reply["connect"]["client"]  # type: ignore[attr-defined]
    return ws


async def command(ws: WS, n: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    (reply,) = await call(ws, {"id": n, method: params})
    assert "error" not in reply, reply
    return reply


async def metric(server: ServerProcess, name: str, labels: str = "") -> float:
    """The sum of a metric's samples on ``server`` whose labels contain ``labels`` (0 when
    there is none)."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        text = await resp.text()
    pattern = re.compile(rf"^{name}(\{{[^}}]*\}})? (\S+)$", re.M)
    return sum(float(v) for lab, v in pattern.findall(text) if labels in lab)


async def test_every_event_type_with_its_fields(
    start_server: StartServer, receiver: Receiver
) -> None:
    server = start_server(config=config(receiver))
    async with aiohttp.ClientSession() as http:
        ws = await client(http, server, "ann")
        cid = ws.client_id  # type: ignore[attr-defined]
        await command(ws, 2, "subscribe", {"channel": "news"})
        await command(ws, 3, "publish", {"channel": "pub:x", "data": {"n": 1}})
        await command(ws, 4, "publish", {"channel": "news", "data": {"n": 2}})  # no event
        await command(ws, 5, "unsubscribe", {"channel": "news"})
        await ws.close()
        await eventually(lambda: receiver.of_type("disconnect"), what="the disconnect event")
        await eventually(lambda: receiver.of_type("channel_vacated"), what="channel_vacated")
    who = {"client": cid, "user": "ann"}
    (connect,) = receiver.of_type("connect", **who)
    assert connect["info"] == {"name": "ann"}
    (subscribe,) = receiver.of_type("subscribe", channel="news", **who)
    (occupied,) = receiver.of_type("channel_occupied", channel="news")
    (publish,) = receiver.of_type("publish", channel="pub:x")
    assert publish["data"] == {"n": 1} and publish["offset"] == 1
    assert publish["client"] == cid and publish["user"] == "ann"
    (unsubscribe,) = receiver.of_type("unsubscribe", channel="news", **who)
    (vacated,) = receiver.of_type("channel_vacated", channel="news")
    (disconnect,) = receiver.of_type("disconnect", **who)
    assert (disconnect["code"], disconnect["reason"]) == (3000, "connection closed")
    events = [connect, subscribe, occupied, publish, unsubscribe, vacated, disconnect]
    assert len(receiver.events) == len(events), receiver.events  # news publish: no event
    nodes = {e["node"] for e in events}
    assert len(nodes) == 1 and all(nodes)
    for e in events:
        assert re.fullmatch(r"[0-9a-f]{32}", e["id"])
        assert isinstance(e["time"], int) and e["time"] > 1_700_000_000_000
    assert connect["time"] <= subscribe["time"] <= unsubscribe["time"] <= disconnect["time"]
    assert receiver.bad_signatures == 0
    assert receiver.headers["Content-Type"] == "application/json"
    assert receiver.headers["User-Agent"].startswith("hubbub/")
    assert await metric(server, "hubbub_webhook_events_emitted_total") == len(events)
    assert await metric(server, "hubbub_webhook_events_delivered_total") == len(events)


async def test_a_bad_secret_is_refused_by_the_verifier(
    start_server: StartServer, receiver: Receiver
) -> None:
    """The receiver holds another secret: every request fails verification (401) and is
    retried, none is taken for real."""
    server = start_server(config=config(receiver))
    receiver.secret = "another-secret-entirely-0123456789abcdef"
    async with aiohttp.ClientSession() as http:
        ws = await client(http, server)
        await eventually(lambda: receiver.bad_signatures >= 2, what="refused requests")
        await ws.close()
    assert receiver.events == {}
    assert await metric(server, "hubbub_webhook_events_retried_total") >= 2


async def test_every_event_arrives_through_failures_timeouts_and_a_backend_down(
    start_server: StartServer, receiver: Receiver
) -> None:
    server = start_server(config=config(receiver, webhook_batch_size=5))
    ids: list[str] = []

    async def churn(n: int) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(n):
                ws = await client(http, server, "bob")
                ids.append(ws.client_id)  # type: ignore[attr-defined]
                await ws.close()

    receiver.mode = "fail"  # 500s
    await churn(6)
    await eventually(lambda: receiver.answers[500] >= 3, what="500 answers")
    receiver.mode = "slow"  # answers after hubbub's timeout
    receiver.slow_seconds = 2.0
    await churn(6)
    await eventually(lambda: receiver.requests > receiver.answers.total(), what="slow requests")
    await asyncio.sleep(scaled(1.5))
    await receiver.down()  # connections refused
    receiver.mode = "ok"
    await churn(6)
    await asyncio.sleep(scaled(3))
    assert receiver.events == {}
    await receiver.up()

    def complete() -> bool:
        return all(
            receiver.of_type("connect", client=c) and receiver.of_type("disconnect", client=c)
            for c in ids
        )

    await eventually(complete, within=20, what="every connect and disconnect event")
    assert len(receiver.events) == 2 * len(ids) == 36
    assert max(receiver.batch_sizes) <= 5
    assert receiver.bad_signatures == 0
    assert await metric(server, "hubbub_webhook_events_retried_total") > 0


async def test_events_past_max_age_are_dropped_counted_and_logged(
    start_server: StartServer, receiver: Receiver
) -> None:
    await receiver.down()
    server = start_server(config=config(receiver, webhook_max_age=1.0))
    async with aiohttp.ClientSession() as http:
        ws = await client(http, server, "dee")

        async def dropped() -> bool:
            labels = 'reason="max_age"'
            return await metric(server, "hubbub_webhook_events_dropped_total", labels) == 1

        await eventually(dropped, what="the connect event dropped")
        await ws.close()
    lines = [line for line in server.stderr().splitlines() if "webhook_max_age" in line]
    assert any(re.search(r"event [0-9a-f]{32} \(connect\) dropped", line) for line in lines)
    await receiver.up()
    await asyncio.sleep(scaled(1))
    assert receiver.of_type("connect") == []  # the expired one never comes


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_kill_9_with_events_pending_loses_none(
    start_server: StartServer,
    receiver: Receiver,
    tmp_path: Path,
    store: str,
    request: pytest.FixtureRequest,
) -> None:
    """SQLite (the default store) or PostgreSQL history: events written while the backend is
    down survive a ``kill -9``; the next start delivers them, and vacates the channels the
    killed process held (its connections are gone)."""
    await receiver.down()
    args = ["--data-dir", str(tmp_path / "data")]
    if store == "postgresql":
        args += ["--history", request.getfixturevalue("postgres_url")]
    cfg = config(receiver)
    server = start_server(*args, config=cfg)
    async with aiohttp.ClientSession() as http:
        clients = [await client(http, server, f"u{n}") for n in range(5)]
        ids = [ws.client_id for ws in clients]  # type: ignore[attr-defined]
        await command(clients[0], 2, "subscribe", {"channel": "room"})
        for n in range(3):
            await command(clients[1], 3 + n, "publish", {"channel": "pub:k", "data": {"n": n}})

        async def occupied() -> bool:
            kind = 'type="channel_occupied"'
            return await metric(server, "hubbub_webhook_events_emitted_total", kind) == 1

        await eventually(occupied, what="the occupied event written")
        server.kill()
    await receiver.up()
    start_server(*args, config=cfg)

    def arrived() -> bool:
        return (
            all(receiver.of_type("connect", client=c) for c in ids)
            and len(receiver.of_type("publish", channel="pub:k")) == 3
            and bool(receiver.of_type("channel_vacated", channel="room"))
        )

    await eventually(arrived, within=20, what="every event of the killed server")
    assert len(receiver.of_type("channel_occupied", channel="room")) == 1
    assert len(receiver.of_type("subscribe", channel="room")) == 1
    assert sorted(e["data"]["n"] for e in receiver.of_type("publish")) == [0, 1, 2]
    # what remains lost (documented): the killed connections' disconnects never happened
    assert receiver.of_type("disconnect") == []


async def test_a_clean_stop_writes_the_closing_events_and_keeps_them(
    start_server: StartServer, receiver: Receiver, tmp_path: Path
) -> None:
    """SIGTERM with the backend down: the connections' unsubscribe, disconnect (3001) and the
    channel's vacated event are written while hubbub stops, kept, and sent after the next
    start (no wait for a node's liveness to run out)."""
    await receiver.down()
    data = str(tmp_path / "data")
    cfg = config(receiver, webhook_node_ttl=60)
    server = start_server("--data-dir", data, config=cfg)
    async with aiohttp.ClientSession() as http:
        ws = await client(http, server, "cy")
        await command(ws, 2, "subscribe", {"channel": "room"})
        assert server.terminate() == 0
    await receiver.up()
    start_server("--data-dir", data, config=cfg)
    await eventually(lambda: receiver.of_type("channel_vacated"), what="the vacated event")
    (disconnect,) = receiver.of_type("disconnect", user="cy")
    assert (disconnect["code"], disconnect["reason"]) == (3001, "shutdown")
    assert receiver.of_type("unsubscribe", channel="room", user="cy")
    assert [e["type"] for e in receiver.events.values()].count("channel_occupied") == 1


async def test_a_cluster_sends_each_event_once_and_covers_a_killed_node(
    start_server: StartServer, receiver: Receiver, engine_url: str
) -> None:
    cfg = config(receiver)
    a = start_server("--engine", engine_url, config=cfg)
    b = start_server("--engine", engine_url, config=cfg)
    async with aiohttp.ClientSession() as http:
        subscribers = []
        for n, server in enumerate([a, b, a, b]):
            ws = await client(http, server, f"s{n}")
            await command(ws, 2, "subscribe", {"channel": "room"})
            subscribers.append(ws)
        await eventually(
            lambda: len(receiver.of_type("subscribe", channel="room")) == 4, what="subscribes"
        )
        await asyncio.sleep(scaled(1))  # (time for a second occupied event, if one came)
        assert len(receiver.of_type("channel_occupied", channel="room")) == 1
        for ws in subscribers:
            await command(ws, 3, "unsubscribe", {"channel": "room"})
        await eventually(
            lambda: receiver.of_type("channel_vacated", channel="room"), what="vacated"
        )
        await asyncio.sleep(scaled(1))
        assert len(receiver.of_type("channel_vacated", channel="room")) == 1

        # node b dies with events pending (the backend is down): a delivers them, and
        # vacates b's channels once b's liveness ran out
        await receiver.down()
        on_b = [await client(http, b, f"b{n}") for n in range(3)]
        kind = 'type="channel_occupied"'
        before = await metric(b, "hubbub_webhook_events_emitted_total", kind)
        await command(on_b[0], 2, "subscribe", {"channel": "solo"})

        async def written() -> bool:
            return await metric(b, "hubbub_webhook_events_emitted_total", kind) == before + 1

        await eventually(written, what="b's events written")
        b.kill()
        await receiver.up()
        b_ids = [ws.client_id for ws in on_b]  # type: ignore[attr-defined]

        def covered() -> bool:  # (an event b had claimed waits for its lease: 6 s)
            return (
                all(receiver.of_type("connect", client=c) for c in b_ids)
                and bool(receiver.of_type("channel_occupied", channel="solo"))
                and bool(receiver.of_type("channel_vacated", channel="solo"))
            )

        await eventually(covered, within=30, what="b's events delivered by a")
    assert len(receiver.of_type("channel_occupied", channel="solo")) == 1
    assert len(receiver.of_type("channel_vacated", channel="solo")) == 1
    for kind in ("connect", "subscribe", "unsubscribe", "disconnect"):
        per_client = [e["client"] for e in receiver.of_type(kind)]
        assert len(per_client) == len(set(per_client)), kind
    assert receiver.bad_signatures == 0
    assert json.dumps(receiver.events)  # (every event was JSON)


async def test_the_readme_receiver_runs_as_written(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The README's receiver (plain Python, 15 lines) verifies hubbub's signatures and prints
    the events."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```python\n(.*?)```", readme[readme.index("## Webhooks") :], re.S)
    assert found is not None
    code = found.group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(code.replace("8000", str(port)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, "WEBHOOK_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await eventually(listening, what="the README receiver listening")
        cfg = f'webhook_url = "http://127.0.0.1:{port}/"\nwebhook_secret = "{SECRET}"\n'
        server = start_server(config=cfg + f'token_hmac_secret = "{TOKEN_SECRET}"\n')
        async with aiohttp.ClientSession() as http:
            ws = await client(http, server, "ann")
            await command(ws, 2, "subscribe", {"channel": "news"})
            await ws.close()
        assert proc.stdout is not None
        lines: set[str] = set()
        want = {"connect ann", "subscribe ann news", "channel_occupied  news", "disconnect ann"}
        while not want <= lines:
            line = await asyncio.wait_for(proc.stdout.readline(), scaled(10))
            assert line, "the receiver exited"
            lines.add(line.decode().strip())
    finally:
        proc.kill()
        await proc.wait()
