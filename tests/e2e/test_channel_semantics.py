"""Centrifugo's per-namespace subscription semantics over the JSON protocol, by hand: tags
filters, cache recovery, positioning (the gap detection itself is in test_positioning.py)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import Observer, call, connected, raw_client
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

KEY = "semantics-api-key-0123456789"
CONFIG = """
[[namespaces]]
name = "tagged"
history_size = 100
history_ttl = 300
allow_tags_filter = true
allowed_delta_types = ["fossil"]

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
name = "sealed"
history_size = 100
history_ttl = 300
allow_history_for_anonymous = false

[[namespaces]]
name = "sealed_positioned"
history_size = 100
history_ttl = 300
allow_history_for_anonymous = false
allow_positioning = true

[[namespaces]]
name = "forced"
history_size = 100
history_ttl = 300
force_positioning = true
"""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, config=CONFIG)


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as resp,
    ):
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def subscribe(ws: aiohttp.ClientWebSocketResponse, **params: Any) -> dict[str, Any]:
    (reply,) = await call(ws, {"id": 2, "subscribe": params})
    return reply


def datas(pubs: list[dict[str, Any]]) -> list[Any]:
    return [p["data"] for p in pubs]


async def test_a_tags_filter_narrows_live_and_recovered_publications(server: ServerProcess) -> None:
    team_eng = {"key": "team", "cmp": "eq", "val": "eng"}
    big = {"key": "size", "cmp": "gte", "val": "10"}
    tf = {"op": "and", "nodes": [team_eng, big]}
    await api(server, "publish", {"channel": "tagged:t", "data": "before"})
    for n, (team, size) in enumerate([("eng", "12"), ("ops", "50"), ("eng", "9")]):
        published = await api(
            server,
            "publish",
            {"channel": "tagged:t", "data": {"n": n}, "tags": {"team": team, "size": size}},
        )
    epoch = published["epoch"]
    async with raw_client(server) as ws:
        await connected(ws)
        reply = await subscribe(ws, channel="tagged:t", tf=tf, recover=True, offset=1, epoch=epoch)
        result = reply["subscribe"]
        assert datas(result["publications"]) == [{"n": 0}], "recovery passes the filter too"
        assert result["recovered"] and result["offset"] == 4, (
            "the position is the stream's, filtered or not"
        )
        obs = Observer(ws)
        for n, (team, size) in enumerate([("ops", "99"), ("eng", "100"), ("eng", "2")], start=3):
            await api(
                server,
                "publish",
                {"channel": "tagged:t", "data": {"n": n}, "tags": {"team": team, "size": size}},
            )
        await api(
            server,
            "publish",
            {"channel": "tagged:t", "data": {"n": "last"}, "tags": {"team": "eng", "size": "10.0"}},
        )
        got = [(await obs.push("pub", "tagged:t"))["pub"] for _ in range(2)]
        assert [(p["data"], p["offset"]) for p in got] == [({"n": 4}, 6), ({"n": "last"}, 8)]
        obs.stop()


async def test_a_tags_filter_is_refused_where_the_namespace_does_not_allow_it(
    server: ServerProcess,
) -> None:
    async with raw_client(server) as ws:
        await connected(ws)
        tf = {"key": "team", "cmp": "eq", "val": "eng"}
        reply = await subscribe(ws, channel="untagged:t", tf=tf)
        assert reply["error"]["code"] == 107
        bad = await subscribe(ws, channel="tagged:t", tf={"key": "team", "cmp": "eq"})
        assert bad["error"]["code"] == 107 and "eq needs val" in bad["error"]["message"]
        ok = await subscribe(ws, channel="untagged:t")
        assert "error" not in ok, "the connection carries on"


async def test_cache_mode_gives_the_latest_publication_for_an_empty_position(
    server: ServerProcess,
) -> None:
    async with raw_client(server) as ws:
        await connected(ws)
        empty = await subscribe(ws, channel="prices:aapl", recover=True)
        assert empty["subscribe"].get("publications") is None and not empty["subscribe"].get(
            "recovered"
        )
        await call(ws, {"id": 3, "unsubscribe": {"channel": "prices:aapl"}})
    for price in (100, 101, 102):
        await api(server, "publish", {"channel": "prices:aapl", "data": {"price": price}})
    async with raw_client(server) as ws:
        await connected(ws)
        result = (await subscribe(ws, channel="prices:aapl", recover=True))["subscribe"]
        assert datas(result["publications"]) == [{"price": 102}]
        assert result["recovered"] and result["was_recovering"] and result["offset"] == 3
        epoch = result["epoch"]
        await call(ws, {"id": 3, "unsubscribe": {"channel": "prices:aapl"}})
        at_top = await subscribe(ws, channel="prices:aapl", recover=True, offset=3, epoch=epoch)
        assert at_top["subscribe"]["recovered"] and not at_top["subscribe"].get("publications")
        await call(ws, {"id": 3, "unsubscribe": {"channel": "prices:aapl"}})
        plain = (await subscribe(ws, channel="prices:aapl"))["subscribe"]
        assert not plain.get("publications"), "without asking, cache mode gives nothing"


async def test_auto_cache_recover_gives_it_without_asking(server: ServerProcess) -> None:
    await api(server, "publish", {"channel": "scores:final", "data": {"home": 1}})
    await api(server, "publish", {"channel": "scores:final", "data": {"home": 2}})
    async with raw_client(server) as ws:
        await connected(ws)
        result = (await subscribe(ws, channel="scores:final"))["subscribe"]
        assert datas(result["publications"]) == [{"home": 2}] and result["recovered"]


async def test_positioning_takes_history_access_or_allow_positioning(server: ServerProcess) -> None:
    await api(server, "publish", {"channel": "sealed:x", "data": 1})
    await api(server, "publish", {"channel": "sealed_positioned:x", "data": 1})
    async with raw_client(server) as ws:
        await connected(ws)  # anonymous: no history in the sealed namespaces
        sealed = (await subscribe(ws, channel="sealed:x", positioned=True, recoverable=True))[
            "subscribe"
        ]
        assert (
            not sealed.get("positioned")
            and not sealed.get("recoverable")
            and "offset" not in sealed
        )
        (reply,) = await call(
            ws, {"id": 3, "subscribe": {"channel": "sealed_positioned:x", "positioned": True}}
        )
        assert reply["subscribe"]["positioned"] and reply["subscribe"]["offset"] == 1
        (forced,) = await call(ws, {"id": 4, "subscribe": {"channel": "forced:x"}})
        assert forced["subscribe"]["positioned"] and not forced["subscribe"].get("recoverable")


async def test_a_tags_filter_and_delta_compression_are_not_negotiated_together(
    server: ServerProcess,
) -> None:
    """A filtered subscriber would hold another delta base than the channel's others; the
    SDKs refuse the pair themselves, hubbub answers without delta."""
    async with raw_client(server) as ws:
        await connected(ws)
        tf = {"key": "team", "cmp": "eq", "val": "eng"}
        result = (await subscribe(ws, channel="tagged:both", tf=tf, delta="fossil"))["subscribe"]
        assert not result.get("delta")
        obs = Observer(ws)
        params = {
            "channel": "tagged:both",
            "data": {"x": 1},
            "tags": {"team": "eng"},
            "delta": True,
        }
        await api(server, "publish", params)
        push = await obs.push("pub", "tagged:both")
        assert push["pub"]["data"] == {"x": 1} and not push["pub"].get("delta")
        obs.stop()
    async with raw_client(server) as ws:
        await connected(ws)
        alone = (await subscribe(ws, channel="tagged:both", delta="fossil"))["subscribe"]
        assert alone["delta"] is True, "without a filter it is negotiated"
