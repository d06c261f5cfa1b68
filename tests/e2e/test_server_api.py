"""The server API driven by `cent` (PyPI, unchanged), effects checked through a client."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    BoolValue,
    BroadcastRequest,
    CentApiResponseError,
    ChannelOptionsOverride,
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    StreamPosition,
    SubscribeRequest,
    UnsubscribeRequest,
)

from tests.conftest import StartServer
from tests.support.proto import Observer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

KEY = "k" * 32
SECRET = "s" * 32
CONFIG = """
[[namespaces]]
name = "news"
history_size = 100
history_ttl = 3600
presence = true
join_leave = true
force_push_join_leave = true
"""


@pytest.fixture
def api_server(start_server: StartServer) -> ServerProcess:
    return start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)


@pytest.fixture
async def observer(api_server: ServerProcess) -> AsyncIterator[Observer]:
    """A client connected as user "ada" (with a token), subscribed to news:a."""
    from hubbub.auth import mint

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(api_server.ws + "/connection/websocket") as ws,
    ):
        await ws.send_str(json.dumps({"id": 1, "connect": {"token": mint(SECRET, "ada")}}))
        reply = json.loads((await asyncio.wait_for(ws.receive(), scaled(10))).data)
        assert reply["connect"]["client"]
        obs = Observer(ws)
        assert "error" not in await obs.command("subscribe", {"channel": "news:a"})
        yield obs
        obs.stop()


def cent(server: ServerProcess) -> AsyncClient:
    return AsyncClient(server.url + "/api", KEY)


async def test_publish_broadcast_history(api_server: ServerProcess, observer: Observer) -> None:
    async with cent(api_server) as client:
        result = await client.publish(
            PublishRequest(channel="news:a", data={"n": 1}, tags={"k": "v"}, idempotency_key="x")
        )
        assert result.offset == 1 and result.epoch
        again = await client.publish(
            PublishRequest(channel="news:a", data={"n": 1}, idempotency_key="x")
        )
        assert again.offset == 1
        push = await observer.push("pub", "news:a")
        assert push["pub"]["data"] == {"n": 1} and push["pub"]["tags"] == {"k": "v"}
        skipped = await client.publish(PublishRequest(channel="news:a", data=2, skip_history=True))
        assert skipped.offset == 0
        assert (await observer.push("pub", "news:a"))["pub"]["data"] == 2
        many = await client.broadcast(BroadcastRequest(channels=["news:a", "news:b"], data=3))
        assert [r.result.offset for r in many.responses if r.result] == [2, 1]
        assert (await observer.push("pub", "news:a"))["pub"]["data"] == 3
        history = await client.history(HistoryRequest(channel="news:a", limit=10))
        assert [p.data for p in history.publications] == [{"n": 1}, 3]
        since = await client.history(
            HistoryRequest(
                channel="news:a", limit=10, since=StreamPosition(offset=1, epoch=result.epoch)
            )
        )
        assert [p.offset for p in since.publications] == [2]
        await client.history_remove(HistoryRemoveRequest(channel="news:a"))
        empty = await client.history(HistoryRequest(channel="news:a", limit=10))
        assert empty.publications == [] and empty.epoch != result.epoch
        batch = await client.batch(
            BatchRequest(requests=[PublishRequest(channel="news:c", data=1), InfoRequest()])
        )
        assert len(batch.replies) == 2


async def test_presence_channels_info(api_server: ServerProcess, observer: Observer) -> None:
    async with cent(api_server) as client:
        presence = await client.presence(PresenceRequest(channel="news:a"))
        assert [c.user for c in presence.presence.values()] == ["ada"]
        stats = await client.presence_stats(PresenceStatsRequest(channel="news:a"))
        assert (stats.num_clients, stats.num_users) == (1, 1)
        channels = await client.channels(ChannelsRequest(pattern="news:*"))
        assert channels.channels["news:a"].num_clients == 1
        assert (await client.channels(ChannelsRequest(pattern="other:*"))).channels == {}
        info = await client.info(InfoRequest())
        (node,) = info.nodes
        assert (node.num_clients, node.num_users, node.num_subs) == (1, 1, 1)
        with pytest.raises(CentApiResponseError) as err:
            await client.presence(PresenceRequest(channel="nope:a"))
        assert err.value.code == 102


async def test_server_side_subscribe_unsubscribe_disconnect(
    api_server: ServerProcess, observer: Observer
) -> None:
    async with cent(api_server) as client:
        await client.subscribe(SubscribeRequest(user="ada", channel="news:b", info={"seat": 1}))
        await observer.push("subscribe", "news:b")
        await client.publish(PublishRequest(channel="news:b", data="hello"))
        assert (await observer.push("pub", "news:b"))["pub"]["data"] == "hello"
        await client.unsubscribe(UnsubscribeRequest(user="ada", channel="news:b"))
        gone = await observer.push("unsubscribe", "news:b")
        assert gone["unsubscribe"]["code"] == 2000
        await client.disconnect(
            DisconnectRequest(user="ada", disconnect=Disconnect(code=4100, reason="bye"))
        )
        for _ in range(int(scaled(200))):
            if observer.closed is not None:
                break
            await asyncio.sleep(0.01)
        assert observer.ws.close_code == 4100


async def test_a_server_side_subscribe_with_an_override(
    api_server: ServerProcess, observer: Observer
) -> None:
    """As a token's ``override``: presence and join/leave off for this one subscription in a
    namespace that has both; a bad override is 107."""
    async with cent(api_server) as client:
        quiet = ChannelOptionsOverride(
            presence=BoolValue(value=False), join_leave=BoolValue(value=False)
        )
        await client.subscribe(SubscribeRequest(user="ada", channel="news:o", override=quiet))
        push = await observer.push("subscribe", "news:o")
        assert push["subscribe"] is not None
        presence = await client.presence(PresenceRequest(channel="news:o"))
        assert presence.presence == {}, "not in presence: its override says so"
        await client.subscribe(SubscribeRequest(user="ada", channel="news:p"))
        await observer.push("subscribe", "news:p")
        presence = await client.presence(PresenceRequest(channel="news:p"))
        assert len(presence.presence) == 1, "without an override: the namespace's presence"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{api_server.url}/api/subscribe",
            json={"user": "ada", "channel": "news:q", "override": {"presence": {"value": 1}}},
            headers={"X-API-Key": KEY},
        ) as resp,
    ):
        body = await resp.json()
    assert body["error"]["code"] == 107 and "override.presence" in body["error"]["message"]


async def test_api_errors(api_server: ServerProcess) -> None:
    """401, 400, 404, 413 with JSON bodies; the server keeps serving."""
    async with aiohttp.ClientSession() as http:

        async def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
            data = io.BytesIO(body)  # aiohttp warns about large raw bodies
            async with http.post(api_server.url + path, data=data, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)

        key = {"X-API-Key": KEY}
        assert (await post("/api/info", b"{}", {}))[0] == 401
        status, body = await post("/api/info", b"{}", {"X-API-Key": "wrong" * 8})
        assert (status, body["error"]["code"]) == (401, 101)
        assert (await post("/api/info", b"{}", {"Authorization": f"apikey {KEY}"}))[0] == 200
        status, body = await post("/api/publish", b"{not json", key)
        assert (status, body["error"]["code"]) == (400, 107)
        assert (await post("/api/publish", b"[1, 2]", key))[0] == 400
        status, body = await post("/api/nope", b"{}", key)
        assert (status, body["error"]) == (404, {"code": 104, "message": "method not found: nope"})
        status, body = await post(
            "/api/publish", b'{"channel": "x", "data": "' + b"y" * 2_000_000 + b'"}', key
        )
        assert status == 413 and body["error"]["code"] == 106
        status, body = await post("/api/publish", b'{"channel": "bad name", "data": 1}', key)
        assert (status, body["error"]["code"]) == (200, 107)
        status, body = await post("/api/publish", b'{"channel": "x"}', key)
        assert (status, body["error"]["code"]) == (200, 107)
        # A key past the stores' index limit is refused here, not failed in (and with the rest
        # of) a group commit; the longest allowed key still publishes.
        for size, code in ((256, 107), (255, None)):
            text = json.dumps({"channel": "x", "data": 1, "idempotency_key": "k" * size})
            status, body = await post("/api/publish", text.encode(), key)
            assert status == 200 and (body.get("error") or {}).get("code") == code, body
        async with http.get(api_server.url + "/health") as resp:
            assert resp.status == 200


async def test_no_key_configured_says_how_to_set_one(start_server: StartServer) -> None:
    server = start_server()
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/api/info", json={}, headers={"X-API-Key": "anything"}) as resp,
    ):
        assert resp.status == 401
        body = await resp.json()
    assert "HUBBUB_API_KEY" in body["error"]["message"]


async def test_api_on_its_own_port(start_server: StartServer) -> None:
    """With api_port the API is served there and not on the public port."""
    server = start_server("--api-key", KEY, "--api-port", "0")
    line = server.read_line()
    api_url = line.rsplit(" ", 1)[1]
    async with aiohttp.ClientSession() as http:
        async with http.post(api_url + "/info", json={}, headers={"X-API-Key": KEY}) as resp:
            assert resp.status == 200
        async with http.post(server.url + "/api/info", json={}, headers={"X-API-Key": KEY}) as resp:
            assert resp.status == 404
    # the legacy POST /api too: at the printed address (it ends in /api), not on the public port
    command = gocent_body({"method": "info", "params": {}})
    status, _, text = await legacy_post(api_url, command)
    assert status == 200 and json.loads(text)["result"]["nodes"]
    assert (await legacy_post(server.url + "/api", command))[0] == 404


OUT_OF_RANGE_OFFSETS = [2**63, 2**64 + 5, str(2**63), -1]


async def test_since_offset_out_of_range_is_107(
    api_server: ServerProcess, observer: Observer
) -> None:
    """Offsets are 0 <= offset < 2**63: beyond (or negative) is a bad request (107) on the
    server API (HTTP 200, like other method errors; it was 500) and on the client protocol
    (it was error 100), for history and for a subscribe's recovery position."""
    async with aiohttp.ClientSession() as http:
        for offset in OUT_OF_RANGE_OFFSETS:
            body = {"channel": "news:a", "limit": 10, "since": {"offset": offset, "epoch": ""}}
            async with http.post(
                api_server.url + "/api/history", json=body, headers={"X-API-Key": KEY}
            ) as resp:
                assert (resp.status, (await resp.json())["error"]["code"]) == (200, 107), offset
    for offset in OUT_OF_RANGE_OFFSETS:
        since = {"offset": offset, "epoch": ""}
        reply = await observer.command("history", {"channel": "news:a", "since": since})
        assert reply["error"]["code"] == 107, offset
        reply = await observer.command(
            "subscribe", {"channel": "news:b", "recover": True, "offset": offset, "epoch": "x"}
        )
        assert reply["error"]["code"] == 107, offset
    assert "error" not in await observer.command("history", {"channel": "news:a"})


async def test_b64data_and_b64info_carry_json_text(
    api_server: ServerProcess, observer: Observer
) -> None:
    """b64data (publish, broadcast, subscribe) and b64info (subscribe) are base64 of JSON text:
    JSON clients get the JSON value, Protobuf clients its bytes as published; bytes that are
    not JSON text are 107 (JSON subscribers could not read them)."""
    import base64

    from tests.support import protobuf

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    async def api(method: str, params: dict[str, Any]) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{api_server.url}/api/{method}", json=params, headers={"X-API-Key": KEY}
            ) as resp,
        ):
            return await resp.json()  # type: ignore[no-any-return]

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            api_server.ws + "/connection/websocket", protocols=(protobuf.SUBPROTOCOL,)
        ) as pb_ws,
    ):
        from hubbub.auth import mint

        await protobuf.call(pb_ws, (1, "connect", {"token": mint(SECRET, "bob")}))
        await protobuf.call(pb_ws, (2, "subscribe", {"channel": "news:a"}))
        pb = protobuf.PbObserver(pb_ws)
        sent = b'{"n":  1}'
        reply = await api("publish", {"channel": "news:a", "b64data": b64(sent)})
        assert reply["result"]["offset"] == 1, reply
        assert (await observer.push("pub", "news:a"))["pub"]["data"] == {"n": 1}
        assert (await pb.push("pub", "news:a"))["pub"]["data"] == sent
        reply = await api("broadcast", {"channels": ["news:a"], "b64data": b64(b"[2]")})
        assert reply["result"]["responses"][0]["result"]["offset"] == 2, reply
        assert (await pb.push("pub", "news:a"))["pub"]["data"] == b"[2]"
        for bad in (
            {"channel": "news:a", "b64data": b64(b"\xff\x00")},
            {"channel": "news:a", "b64data": "not base64!"},
            {"channel": "news:a", "b64data": b64(b"1"), "data": 1},
        ):
            reply = await api("publish", bad)
            assert reply["error"]["code"] == 107, (bad, reply)
        reply = await api(
            "subscribe",
            {
                "user": "ada",
                "channel": "news:b",
                "b64info": b64(b'{"role": "x"}'),
                "b64data": b64(b'{"hello": 1}'),
            },
        )
        assert "error" not in reply, reply
        push = await observer.push("subscribe", "news:b")
        assert push["subscribe"]["data"] == {"hello": 1}
        presence = await api("presence", {"channel": "news:b"})
        (entry,) = presence["result"]["presence"].values()
        assert entry["chan_info"] == {"role": "x"}
        pb.stop()


# -- the legacy format: POST /api, {"method", "params"} commands one per line (gocent v3) -----


def gocent_body(*commands: Any) -> bytes:
    """What gocent v3 sends: each command through Go's json.Encoder (a line each); a str is
    sent as it is, for lines no client would write."""
    return b"".join(
        (c if isinstance(c, str) else json.dumps(c, separators=(",", ":"))).encode() + b"\n"
        for c in commands
    )


async def legacy_post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """POST ``body`` to ``url`` as gocent does; (status, Content-Type, text)."""
    sent = {"Authorization": f"apikey {KEY}", "Content-Type": "application/json"}
    if headers is not None:
        sent = headers
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=io.BytesIO(body), headers=sent) as resp,
    ):
        return resp.status, resp.content_type, await resp.text()


async def test_legacy_pipe_replies_line_by_line(
    api_server: ServerProcess, observer: Observer
) -> None:
    """publish, presence, an unknown method, a bad line, history: one reply line each, in
    order; the bad ones do not stop the others; the subscriber gets the publication."""
    body = gocent_body(
        {"method": "publish", "params": {"channel": "news:a", "data": {"n": 1}}},
        "",  # a blank line is skipped
        {"method": "presence", "params": {"channel": "news:a"}},
        {"method": "nope", "params": {}},
        "{not json",
        "[1, 2]",
        {"method": "batch", "params": {"commands": []}},  # not a legacy method
        {"id": 7, "method": "history", "params": {"channel": "news:a", "limit": 10}},
    )
    status, ctype, text = await legacy_post(api_server.url + "/api", body)
    assert (status, ctype) == (200, "application/json")
    assert not text.endswith("\n")  # "\n" between replies, as Centrifugo writes them
    lines = text.split("\n")
    assert len(lines) == 7, text
    publish, presence, unknown, not_json, not_object, batch, history = map(json.loads, lines)
    assert publish["result"]["offset"] == 1 and publish["result"]["epoch"]
    assert "error" not in publish and "id" not in publish
    assert [c["user"] for c in presence["result"]["presence"].values()] == ["ada"]
    assert unknown == {"error": {"code": 104, "message": "method not found: nope"}}
    assert not_json["error"]["code"] == 107 and "not JSON" in not_json["error"]["message"]
    assert not_object["error"] == {
        "code": 107,
        "message": "bad request: a command must be a JSON object",
    }
    assert batch["error"]["code"] == 104
    assert history["id"] == 7
    assert [p["data"] for p in history["result"]["publications"]] == [{"n": 1}]
    assert history["result"]["epoch"] == publish["result"]["epoch"]
    assert (await observer.push("pub", "news:a"))["pub"]["data"] == {"n": 1}


async def test_legacy_commands_one_by_one(api_server: ServerProcess, observer: Observer) -> None:
    """Method errors are 200 with an error line (as Centrifugo's docs show); names in any
    case and Centrifugo's method numbers work; bad method or params are 107; a single
    command written over several lines is one command; X-API-Key is taken too."""
    url = api_server.url + "/api"

    async def one(command: Any, headers: dict[str, str] | None = None) -> Any:
        status, _, text = await legacy_post(url, gocent_body(command), headers)
        assert status == 200, text
        assert "\n" not in text
        return json.loads(text)

    reply = await one({"method": "publish", "params": {"channel": "nope:a", "data": 1}})
    assert reply["error"]["code"] == 102
    reply = await one({"method": "PUBLISH", "params": {"channel": "news:a", "data": 2}})
    assert reply["result"]["offset"] == 1
    assert (await observer.push("pub", "news:a"))["pub"]["data"] == 2
    (node,) = (await one({"method": 9, "params": {}}))["result"]["nodes"]  # 9: info
    assert node["num_clients"] == 1
    assert (await one({"method": "info"}))["result"]["nodes"]  # params may be left out
    assert (await one({"method": 13, "params": {}}))["error"]["code"] == 104
    for bad in ({"params": {}}, {"method": None}, {"method": ["info"]}):
        assert (await one(bad))["error"]["code"] == 107, bad
    reply = await one({"method": "presence", "params": ["news:a"]})
    assert reply["error"] == {"code": 107, "message": "bad request: params must be an object"}
    assert (await one({"method": "publish", "params": {"channel": "news:a"}}))["error"][
        "code"
    ] == 107
    pretty = json.dumps({"method": "presence_stats", "params": {"channel": "news:a"}}, indent=2)
    status, _, text = await legacy_post(url, pretty.encode())
    assert status == 200 and json.loads(text)["result"] == {"num_clients": 1, "num_users": 1}
    reply = await one({"method": "history", "params": {"channel": "news:a"}}, {"X-API-Key": KEY})
    assert reply["result"]["offset"] == 1


async def test_legacy_key_and_limits(api_server: ServerProcess) -> None:
    """401 without the right key, 413 over api_max_body_size or over 1000 commands (none of
    them run), 400 for a body with no command; the server keeps serving."""
    from hubbub.server.api import LEGACY_MAX_COMMANDS

    url = api_server.url + "/api"
    info = gocent_body({"method": "info", "params": {}})
    status, ctype, text = await legacy_post(url, info, {})
    assert (status, ctype, json.loads(text)["error"]["code"]) == (401, "application/json", 101)
    status, _, text = await legacy_post(url, info, {"Authorization": "apikey " + "w" * 32})
    assert (status, json.loads(text)["error"]["code"]) == (401, 101)
    big = {"method": "publish", "params": {"channel": "news:z", "data": "y" * 2_000_000}}
    status, _, text = await legacy_post(url, gocent_body(big))
    assert (status, json.loads(text)["error"]["code"]) == (413, 106)
    publish = {"method": "publish", "params": {"channel": "news:z", "data": 1}}
    status, _, text = await legacy_post(url, gocent_body(*[publish] * (LEGACY_MAX_COMMANDS + 1)))
    assert (status, json.loads(text)["error"]) == (
        413,
        {"code": 106, "message": "more than 1000 commands in one request"},
    )
    history = gocent_body({"method": "history", "params": {"channel": "news:z", "limit": 10}})
    status, _, text = await legacy_post(url, history)
    assert (status, json.loads(text)["result"].get("publications", [])) == (200, [])
    status, _, text = await legacy_post(url, gocent_body(*[publish] * LEGACY_MAX_COMMANDS))
    assert status == 200
    offsets = [json.loads(line)["result"]["offset"] for line in text.split("\n")]
    assert offsets == list(range(1, LEGACY_MAX_COMMANDS + 1))
    for empty in (b"", b"\n \n"):
        status, _, text = await legacy_post(url, empty)
        assert (status, json.loads(text)["error"]["code"]) == (400, 107), empty
    status, _, _ = await legacy_post(url, info)
    assert status == 200
