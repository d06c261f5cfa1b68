"""Delta compression spoken by hand, JSON and Protobuf (subprotocol ``centrifuge-protobuf``):
negotiation, what goes on the wire (full data as a JSON string or bytes, deltas with
``delta: true``), the server API's ``delta`` flag and ``delta_publish``, recovery and history
in full. Deltas are applied with centrifuge-python's fossil decoder, as the SDK would; the SDKs
themselves are in tests/interop/test_delta.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from centrifuge.fossil import apply_delta

from tests.conftest import StartServer
from tests.support import protobuf
from tests.support.proto import Observer, call, closed_with
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

KEY = "delta-api-key-0123456789"
CONFIG = f"""
api_key = "{KEY}"

[[namespaces]]
name = "doc"
allowed_delta_types = ["fossil"]
history_size = 20
history_ttl = 60

[[namespaces]]
name = "live"
allowed_delta_types = ["fossil"]
delta_publish = true

[[namespaces]]
name = "plain"
history_size = 20
history_ttl = 60
"""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(config=CONFIG)


def document(n: int) -> dict[str, Any]:
    return {"n": n, "rows": [{"id": i, "label": f"row {i} é", "v": i * n} for i in range(30)]}


async def api(server: ServerProcess, method: str, params: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}) as r,
    ):
        body = await r.json()
    assert "error" not in body, body
    return body["result"]


class Decoder:
    """What an SDK with delta negotiated makes of publications: a delta applies to the data
    it holds, anything else replaces it; the result is parsed as JSON."""

    def __init__(self) -> None:
        self.base: bytes | None = None
        self.kinds: list[str] = []

    def __call__(self, pub: dict[str, Any]) -> Any:
        data = pub["data"]
        assert isinstance(data, str | bytes), f"not a string nor bytes: {data!r}"
        raw = data.encode() if isinstance(data, str) else data
        if pub.get("delta"):
            assert self.base is not None
            raw = bytes(apply_delta(self.base, raw))
            self.kinds.append("delta")
        else:
            self.kinds.append("full")
        self.base = raw
        return json.loads(raw)


class Client:
    """One connection in either format, with the same calls."""

    def __init__(self, observer: Observer | protobuf.PbObserver) -> None:
        self.observer = observer

    async def subscribe(self, channel: str, **params: Any) -> dict[str, Any]:
        reply = await self.observer.command("subscribe", {"channel": channel, **params})
        assert "error" not in reply, reply
        return reply["subscribe"]  # type: ignore[no-any-return]

    async def pubs(self, channel: str, count: int) -> list[dict[str, Any]]:
        return [(await self.observer.push("pub", channel))["pub"] for _ in range(count)]


@asynccontextmanager
async def client(server: ServerProcess, fmt: str) -> AsyncIterator[Client]:
    url = server.ws + "/connection/websocket"
    async with aiohttp.ClientSession() as http:
        if fmt == "json":
            async with http.ws_connect(url) as ws:
                await call(ws, {"id": 1, "connect": {}})
                observer: Observer | protobuf.PbObserver = Observer(ws)
                yield Client(observer)
                observer.stop()
        else:
            async with http.ws_connect(url, protocols=(protobuf.SUBPROTOCOL,)) as ws:
                await protobuf.call(ws, (1, "connect", {}))
                observer = protobuf.PbObserver(ws)
                yield Client(observer)
                observer.stop()


FORMATS = pytest.mark.parametrize("fmt", ["json", "protobuf"])


@FORMATS
async def test_negotiated_deltas_reconstruct_every_publication(
    server: ServerProcess, fmt: str
) -> None:
    """delta: "fossil" in an allowed namespace: the reply says delta; the first publication
    comes in full, the ones published with delta: true as deltas, the one without in full; a
    subscriber without delta on the same channel gets plain data throughout."""
    async with client(server, fmt) as with_delta, client(server, fmt) as without:
        assert (await with_delta.subscribe("doc:a", delta="fossil"))["delta"] is True
        assert "delta" not in await without.subscribe("doc:a")
        marks = [True, True, False, True, True]
        for n, mark in enumerate(marks):
            await api(server, "publish", {"channel": "doc:a", "data": document(n), "delta": mark})
        decode = Decoder()
        pubs = await with_delta.pubs("doc:a", len(marks))
        assert [decode(p) for p in pubs] == [document(n) for n in range(len(marks))]
        assert decode.kinds == ["full", "delta", "full", "delta", "delta"]
        assert [int(p["offset"]) for p in pubs] == [1, 2, 3, 4, 5]
        delta = pubs[1]["data"]
        assert len(delta) < len(json.dumps(document(1))) / 4  # much smaller than the data
        plain = await without.pubs("doc:a", len(marks))
        assert not any("delta" in p for p in plain)
        datas = [p["data"] if fmt == "json" else json.loads(p["data"]) for p in plain]
        assert datas == [document(n) for n in range(len(marks))]
        if fmt == "json":  # full data as a JSON string for delta subscribers, as Centrifugo
            assert isinstance(pubs[0]["data"], str) and isinstance(pubs[2]["data"], str)
    history = await api(server, "history", {"channel": "doc:a", "limit": -1})
    assert [p["data"] for p in history["publications"]] == [document(n) for n in range(5)]


@FORMATS
async def test_delta_publish_marks_client_publications_without_history(
    server: ServerProcess, fmt: str
) -> None:
    """delta_publish: every publication is marked, a client's too; no history is needed
    (the base is what this node sent the subscriber)."""
    async with client(server, fmt) as sub, client(server, fmt) as publisher:
        assert (await sub.subscribe("live:x", delta="fossil"))["delta"] is True
        for n in range(4):
            data = document(n)
            params = {"channel": "live:x", "data": data if fmt == "json" else json.dumps(data)}
            if fmt != "json":
                params["data"] = params["data"].encode()
            assert "error" not in await publisher.observer.command("publish", params)
        decode = Decoder()
        assert [decode(p) for p in await sub.pubs("live:x", 4)] == [document(n) for n in range(4)]
        assert decode.kinds == ["full", "delta", "delta", "delta"]


@FORMATS
async def test_recovered_publications_are_full_and_the_last_one_is_the_base(
    server: ServerProcess, fmt: str
) -> None:
    """A recovery with delta gives every missed publication in full (as strings in JSON,
    none marked), and the next live delta is made from the last of them."""
    async with client(server, fmt) as first:
        position = await first.subscribe("doc:r", delta="fossil", recoverable=True)
    for n in range(3):
        await api(server, "publish", {"channel": "doc:r", "data": document(n), "delta": True})
    async with client(server, fmt) as again:
        recover = {"recover": True, "epoch": position["epoch"], "offset": 0, "delta": "fossil"}
        reply = await again.subscribe("doc:r", **recover)
        assert reply["recovered"] is True and reply["delta"] is True
        decode = Decoder()
        assert [decode(p) for p in reply["publications"]] == [document(n) for n in range(3)]
        assert decode.kinds == ["full"] * 3
        await api(server, "publish", {"channel": "doc:r", "data": document(3), "delta": True})
        (live,) = await again.pubs("doc:r", 1)
        assert decode(live) == document(3)
        assert decode.kinds[-1] == "delta"
        if fmt == "json":
            assert all(isinstance(p["data"], str) for p in reply["publications"])
        history = await again.observer.command("history", {"channel": "doc:r", "limit": -1})
        datas = [p["data"] for p in history["history"]["publications"]]
        if fmt != "json":
            datas = [json.loads(d) for d in datas]
        assert datas == [document(n) for n in range(4)]  # history: plain data, in full


@FORMATS
async def test_no_delta_where_the_namespace_does_not_allow_it(
    server: ServerProcess, fmt: str
) -> None:
    async with client(server, fmt) as sub:
        assert "delta" not in await sub.subscribe("plain:p", delta="fossil")
        for n in range(2):
            await api(server, "publish", {"channel": "plain:p", "data": document(n), "delta": True})
        pubs = await sub.pubs("plain:p", 2)
        assert not any("delta" in p for p in pubs)
        datas = [p["data"] if fmt == "json" else json.loads(p["data"]) for p in pubs]
        assert datas == [document(0), document(1)]


async def test_broadcast_marks_each_channel(server: ServerProcess) -> None:
    async with client(server, "json") as sub:
        for channel in ("doc:b1", "doc:b2"):
            await sub.subscribe(channel, delta="fossil")
        for n in range(2):
            result = await api(
                server,
                "broadcast",
                {"channels": ["doc:b1", "doc:b2"], "data": document(n), "delta": True},
            )
            assert len(result["responses"]) == 2
        pushes = [await sub.observer.push("pub") for _ in range(4)]
        for channel in ("doc:b1", "doc:b2"):
            decode = Decoder()
            pubs = [push["pub"] for push in pushes if push["channel"] == channel]
            assert [decode(p) for p in pubs] == [document(0), document(1)]
            assert decode.kinds == ["full", "delta"]


async def test_an_unknown_delta_type_is_a_bad_request(server: ServerProcess) -> None:
    """As Centrifugo: the connection is closed with 3501."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server.ws + "/connection/websocket") as ws:
            await call(ws, {"id": 1, "connect": {}})
            bad = {"id": 2, "subscribe": {"channel": "doc:u", "delta": "x"}}
            await ws.send_str(json.dumps(bad))
            assert (await closed_with(ws))[0] == 3501
        async with http.ws_connect(
            server.ws + "/connection/websocket", protocols=(protobuf.SUBPROTOCOL,)
        ) as ws:
            await protobuf.call(ws, (1, "connect", {}))
            await ws.send_bytes(
                protobuf.command(2, "subscribe", {"channel": "doc:u", "delta": "xdelta"})
            )
            assert (await closed_with(ws))[0] == 3501
