"""Bad input, each with its expected answer: a clear protocol error or HTTP 4xx, the
connection and the channel unharmed, nothing but RFC 8259 JSON ever sent, no traceback logged.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.proto import Observer, call, raw_client
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

KEY = "bad-input-api-key-0123456789"


def strict(text: str) -> Any:
    """Parse as JavaScript's JSON.parse would (no NaN, no Infinity)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in {text[:80]!r}")

    return json.loads(text, parse_constant=refuse)


#: (name, the data's JSON text as the client writes it)
NOT_RFC8259 = [
    ("nan", "NaN"),
    ("infinity", "Infinity"),
    ("minus-infinity", "[-Infinity]"),
    ("out-of-range", '{"x": 1e999}'),
    ("lone-surrogate", '"\\ud800"'),
    ("lone-low-surrogate", '{"k\\udc00": 1}'),
]


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY)


@pytest.mark.parametrize(("name", "data"), NOT_RFC8259, ids=[n for n, _ in NOT_RFC8259])
async def test_client_publish_of_non_json_gets_107_and_the_channel_stays_clean(
    server: ServerProcess, name: str, data: str
) -> None:
    async with raw_client(server) as ws, raw_client(server) as sub_ws:
        await call(sub_ws, {"id": 1, "connect": {}})
        await call(sub_ws, {"id": 2, "subscribe": {"channel": "clean"}})
        subscriber = Observer(sub_ws)
        await call(ws, {"id": 1, "connect": {}})
        await ws.send_str(f'{{"id":2,"publish":{{"channel":"clean","data":{data}}}}}')
        reply = strict((await ws.receive()).data)
        assert reply["id"] == 2 and reply["error"]["code"] == 107, reply
        assert "RFC 8259" in reply["error"]["message"]
        # The connection stays, and what follows is delivered as valid JSON.
        (ok,) = await call(ws, {"id": 3, "publish": {"channel": "clean", "data": {"ok": 1}}})
        assert "error" not in ok
        push = await subscriber.push("pub", "clean")
        assert push["pub"]["data"] == {"ok": 1}
        (history,) = await call(ws, {"id": 4, "history": {"channel": "clean", "limit": -1}})
        assert [p["data"] for p in history["history"]["publications"]] == [{"ok": 1}]
        subscriber.stop()
    assert "Traceback" not in server.stderr()


@pytest.mark.parametrize(("name", "data"), NOT_RFC8259, ids=[n for n, _ in NOT_RFC8259])
async def test_api_publish_of_non_json_gets_400_with_107(
    server: ServerProcess, name: str, data: str
) -> None:
    body = f'{{"channel":"clean","data":{data}}}'
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/publish",
            data=body,
            headers={"X-API-Key": KEY, "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 400
        answer = strict(await resp.text())
    assert answer["error"]["code"] == 107
    assert "RFC 8259" in answer["error"]["message"] or "not JSON" in answer["error"]["message"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/history",
            json={"channel": "clean", "limit": -1},
            headers={"X-API-Key": KEY},
        ) as resp,
    ):
        assert strict(await resp.text())["result"]["publications"] == []


@pytest.mark.parametrize("depth", [980, 1000, 1023, 1030, 5000])
async def test_deeply_nested_data_is_refused_without_a_traceback(
    server: ServerProcess, depth: int
) -> None:
    """Nested past what the encoder can follow: 107 (or, past what the parser can follow,
    3501 bad request); never error 100, never a traceback in the log."""
    data = "[" * depth + "]" * depth
    async with raw_client(server) as ws:
        await call(ws, {"id": 1, "connect": {}})
        await ws.send_str(f'{{"id":2,"publish":{{"channel":"deep","data":{data}}}}}')
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            reply = strict(msg.data)
            assert reply["error"]["code"] == 107, reply
        else:
            assert ws.close_code == 3501, msg
    assert "Traceback" not in server.stderr()
