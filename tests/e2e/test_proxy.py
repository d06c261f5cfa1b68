"""The Centrifugo-compatible HTTP proxy end to end: one ``hubbub serve`` (with Python hooks,
tests/support/proxy_app.py) whose every proxy kind POSTs to a scripted aiohttp backend
(tests/support/proxy_backend.py); clients speak the JSON protocol by hand."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from centrifuge import Client, ClientEventHandler, ClientState

from hubbub import Hub
from hubbub.auth import mint
from hubbub.dialects.centrifuge import tokens
from tests.conftest import stop_all
from tests.support import protobuf, uni
from tests.support.inprocess import serving
from tests.support.proto import Observer
from tests.support.proxy_backend import Backend, Reply, closed_port
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

SECRET = "s" * 32
TIMEOUT = 0.5  # proxy_timeout
INTERNAL = {"code": 100, "message": "internal server error", "temporary": True}

CONFIG = """
proxy_connect_endpoint = "{b}connect"
proxy_refresh_endpoint = "{b}refresh"
proxy_subscribe_endpoint = "{b}subscribe"
proxy_publish_endpoint = "{b}publish"
proxy_sub_refresh_endpoint = "{b}sub_refresh"
proxy_rpc_endpoint = "{b}rpc"
proxy_timeout = {timeout}
proxy_http_headers = ["Cookie", "X-Custom"]
proxy_emulated_headers = ["Authorization"]
token_hmac_secret = "{secret}"
uni_http_stream = true
app = "tests.support.proxy_app:hub"

[[namespaces]]
name = "px"
proxy_subscribe = true
proxy_publish = true
proxy_sub_refresh = true
allow_subscribe_for_client = false
allow_publish_for_client = false
presence = true
history_size = 10
history_ttl = 300

[[namespaces]]
name = "own"
proxy_subscribe = true
proxy_subscribe_endpoint = "{b}ns/subscribe"

[[namespaces]]
name = "down"
proxy_subscribe = true
proxy_subscribe_endpoint = "http://127.0.0.1:{closed}/subscribe"

[[namespaces]]
name = "plain"
"""


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    b = Backend().start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def hubbub(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("proxy")
    cfg = tmp / "hubbub.toml"
    text = CONFIG.format(b=backend.url(""), timeout=TIMEOUT, secret=SECRET, closed=closed_port())
    cfg.write_text(text)
    server = ServerProcess(
        ["--config", str(cfg), "--data-dir", str(tmp / "data")], None, tmp / "server.log"
    )
    yield server
    stop_all([server])


@pytest.fixture(autouse=True)
def fresh(backend: Backend) -> None:
    backend.reset()


@asynccontextmanager
async def client(
    server: ServerProcess,
    connect: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Observer, dict[str, Any]]]:
    """A JSON client; yields it and the reply to its connect (``connect``: its params)."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws + "/connection/websocket", headers=headers) as ws,
    ):
        conn = Observer(ws)
        try:
            await ws.send_str(json.dumps({"id": 1, "connect": connect or {}}))
            await eventually(
                lambda: 1 in conn.replies or conn.closed is not None, 5, what="a connect reply"
            )
            yield conn, conn.replies.pop(1, {})
        finally:
            conn.stop()


def user(name: str, **result: Any) -> Any:
    """A connect responder admitting ``name`` with more ``result`` fields."""
    return lambda body: {"result": {"user": name, **result}}


async def closed_code(conn: Observer) -> int | None:
    await eventually(lambda: conn.closed is not None, 5, what="the server closing")
    return conn.ws.close_code


# -- connect ---------------------------------------------------------------------------------


async def test_connect_admits_who_the_backend_says(hubbub: ServerProcess, backend: Backend) -> None:
    backend.responders["connect"] = lambda body: {
        "result": {
            "user": body["data"]["me"],
            "info": {"name": "Ann"},
            "data": {"welcome": True},
            "meta": {"plan": "pro"},
            "channels": ["plain:news"],
        }
    }
    connect = {"data": {"me": "ann"}, "name": "app", "version": "1.2"}
    async with client(hubbub, connect) as (_, reply):
        result = reply["connect"]
        assert result["data"] == {"welcome": True}
        assert "plain:news" in result.get("subs", {})
        assert "expires" not in result
    (seen,) = backend.seen("connect")
    body = seen.body
    assert body == {
        "client": result["client"],
        "transport": "websocket",
        "protocol": "json",
        "encoding": "json",
        "data": {"me": "ann"},
        "name": "app",
        "version": "1.2",
    }
    assert seen.headers["content-type"] == "application/json"


async def test_connect_error_and_disconnect_pass_through(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = lambda body: {
        "error": {"code": 4030, "message": "go away", "temporary": True}
    }
    async with client(hubbub) as (_, reply):
        assert reply["error"] == {"code": 4030, "message": "go away", "temporary": True}
    backend.responders["connect"] = lambda body: {"disconnect": {"code": 4501, "reason": "banned"}}
    async with client(hubbub) as (conn, _):
        assert await closed_code(conn) == 4501


async def test_a_slow_backend_is_a_temporary_error_within_the_timeout(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = lambda body: Reply(json={"result": {}}, delay=TIMEOUT * 8)
    started = time.monotonic()
    async with client(hubbub) as (_, reply):
        assert reply["error"] == INTERNAL
    assert time.monotonic() - started < TIMEOUT * 8  # (the backend had not answered)


@pytest.mark.usefixtures("sdk_garbage_collected")
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # (tests/support/sdk.py)
async def test_the_sdk_reconnects_through_a_failing_backend_until_it_answers(
    hubbub: ServerProcess, backend: Backend
) -> None:
    """centrifuge-python: a slow backend, then a 500, then an answer: connected, no hang."""
    failures = iter([Reply(json={"result": {}}, delay=TIMEOUT * 3), Reply(status=500, raw=b"")])
    backend.responders["connect"] = lambda body: next(failures, {"result": {"user": "sdk"}})
    sdk = Client(
        hubbub.ws + "/connection/websocket",
        events=ClientEventHandler(),
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.2,
    )
    try:
        await sdk.connect()
        await sdk.ready(scaled(10))
    finally:
        await sdk.disconnect()
    assert len(backend.seen("connect")) == 3
    # a disconnect code of 4500 and up: the SDK does not come back
    backend.responders["connect"] = lambda body: {"disconnect": {"code": 4503, "reason": "no"}}
    sdk = Client(hubbub.ws + "/connection/websocket", min_reconnect_delay=0.05)
    try:
        await sdk.connect()
        await eventually(lambda: sdk.state is ClientState.DISCONNECTED, 5)
        await asyncio.sleep(0.3)
        assert sdk.state is ClientState.DISCONNECTED
    finally:
        await sdk.disconnect()
    assert len(backend.seen("connect")) == 4


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, json={"result": {"user": "x"}}),
        Reply(raw=b"<html>not json</html>"),
        Reply(json={"result": {"user": 5}}),
        Reply(json={"disconnect": {"code": 200}}),
        Reply(json=["result"]),
    ],
    ids=["status-500", "not-json", "user-not-a-string", "bad-disconnect-code", "not-an-object"],
)
async def test_a_bad_answer_is_error_100_and_logged(
    hubbub: ServerProcess, backend: Backend, reply: Reply
) -> None:
    backend.responders["connect"] = lambda body: reply
    async with client(hubbub) as (_, answer):
        assert answer["error"]["code"] == 100 and answer["error"]["temporary"]


async def test_a_malformed_body_is_logged_with_the_endpoint(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = lambda body: Reply(json={"result": {"expire_at": "soon"}})
    async with client(hubbub) as (_, answer):
        assert answer["error"]["code"] == 100
    await eventually(lambda: "expire_at must be a JSON integer" in hubbub.stderr(), 5)
    assert backend.url("connect") in hubbub.stderr()


async def test_headers_cookie_emulated_headers_and_the_client_address_are_forwarded(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("hdr")
    headers = {"Cookie": "session=abc", "X-Custom": "1", "X-Other": "no", "X-Real-IP": "6.6.6.6"}
    connect = {"headers": {"Authorization": "Bearer t", "X-Custom": "forged"}}
    async with client(hubbub, connect, headers) as (conn, _):
        await conn.command("subscribe", {"channel": "px:h"})
    for kind in ("connect", "subscribe"):
        (seen,) = backend.seen(kind)
        assert seen.headers["cookie"] == "session=abc"
        assert seen.headers["x-custom"] == "1"  # the real header wins over the emulated one
        assert seen.headers["authorization"] == "Bearer t"
        assert seen.headers["x-real-ip"] == seen.headers["x-forwarded-for"] == "127.0.0.1"
        assert "x-other" not in seen.headers


async def test_unidirectional_connections_go_through_the_connect_proxy(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("uni", channels=["plain:uni"], data={"hi": 1})
    async with uni.connect(hubbub.url, "uni_http_stream", {"data": {"x": 1}}) as pushes:
        push = await pushes.next()
        assert push is not None
        assert push["connect"]["data"] == {"hi": 1}
        assert "plain:uni" in push["connect"]["subs"]
    (seen,) = backend.seen("connect")
    assert seen.body["transport"] == "uni_http_stream"
    assert seen.body["data"] == {"x": 1}


async def test_the_on_connect_hook_sees_the_proxy_user_and_meta(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("hooked", meta={"role": "admin"})
    async with client(hubbub) as (_, reply):
        assert reply["connect"]["data"] == {"hook_saw": "hooked", "meta": {"role": "admin"}}


async def test_a_protobuf_client_binary_data_goes_as_b64data(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = lambda body: {
        "result": {"user": "pb", "b64data": base64.b64encode(b"\x00\x01").decode()}
    }
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            hubbub.ws + "/connection/websocket", protocols=[protobuf.SUBPROTOCOL]
        ) as ws,
    ):
        (reply,) = await protobuf.call(ws, (1, "connect", {"data": b"\xff\xfe"}))
        assert reply["connect"]["data"] == b"\x00\x01"
    (seen,) = backend.seen("connect")
    assert seen.body["protocol"] == "protobuf" and seen.body["encoding"] == "binary"
    assert base64.b64decode(seen.body["b64data"]) == b"\xff\xfe" and "data" not in seen.body
    backend.responders["connect"] = lambda body: {"result": {"b64data": "/w=="}}
    async with client(hubbub) as (_, reply):  # bytes that are not JSON: not for a JSON client
        assert reply["error"] == INTERNAL


async def test_server_side_subs_of_the_connect_answer_carry_their_options(
    hubbub: ServerProcess, backend: Backend
) -> None:
    subs = {"px:srv": {"info": {"seat": 1}, "data": {"first": True}}}
    backend.responders["connect"] = user("srv", info={"n": 1}, subs=subs)
    async with client(hubbub) as (conn, reply):
        assert reply["connect"]["subs"]["px:srv"]["data"] == {"first": True}
        presence = await conn.command("presence", {"channel": "px:srv"})
        (entry,) = presence["presence"]["presence"].values()
        assert entry == {"client": reply["connect"]["client"], "user": "srv",
                         "conn_info": {"n": 1}, "chan_info": {"seat": 1}}  # fmt: skip
    assert backend.seen("subscribe") == []  # the backend's own channels are not asked about


# -- subscribe -------------------------------------------------------------------------------


async def test_subscribe_asks_the_proxy_instead_of_the_flags(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("sub", meta={"m": 1})
    backend.responders["subscribe"] = lambda body: {
        "result": {
            "info": {"seat": 3},
            "data": {"hello": body["channel"]},
            "override": {"presence": {"value": False}},
        }
    }
    async with client(hubbub) as (conn, _):
        reply = await conn.command("subscribe", {"channel": "px:a", "data": {"want": 1}})
        assert reply["subscribe"]["data"] == {"hello": "px:a"}
        presence = await conn.command("presence", {"channel": "px:a"})
        assert presence["presence"]["presence"] == {}  # the override: not in presence
        plain = await conn.command("subscribe", {"channel": "plain:a"})
        assert "error" not in plain
    (seen,) = backend.seen("subscribe")  # plain: is not asked
    assert seen.body == {
        "client": seen.body["client"],
        "transport": "websocket",
        "protocol": "json",
        "encoding": "json",
        "user": "sub",
        "channel": "px:a",
        "meta": {"m": 1},
        "data": {"want": 1},
    }


async def test_on_subscribe_runs_after_the_proxy_allowed(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("hs", meta={"k": 2})
    backend.responders["subscribe"] = lambda body: {"result": {"data": {"proxy": 1}}}
    async with client(hubbub) as (conn, _):
        reply = await conn.command("subscribe", {"channel": "px:hooked"})
        assert reply["subscribe"]["data"] == {"hook_saw": "hs", "meta": {"k": 2}}
        backend.responders["subscribe"] = lambda body: {"error": {"code": 4403, "message": "no"}}
        await conn.command("unsubscribe", {"channel": "px:hooked"})
        reply = await conn.command("subscribe", {"channel": "px:hooked"})
        assert reply["error"] == {"code": 4403, "message": "no"}


async def test_subscribe_refusals_pass_through(hubbub: ServerProcess, backend: Backend) -> None:
    backend.responders["connect"] = user("sub")
    backend.responders["subscribe"] = lambda body: {"error": {"code": 4403, "message": "no"}}
    async with client(hubbub) as (conn, _):
        reply = await conn.command("subscribe", {"channel": "px:b"})
        assert reply["error"] == {"code": 4403, "message": "no"}
        backend.responders["subscribe"] = lambda body: {
            "disconnect": {"code": 4000, "reason": "again"}
        }
        with pytest.raises(TimeoutError):
            await conn.command("subscribe", {"channel": "px:b"})
        assert await closed_code(conn) == 4000


async def test_a_token_decides_alone_and_a_namespace_may_have_its_own_endpoint(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("tok")
    async with client(hubbub) as (conn, _):
        token = mint(SECRET, "tok", channel="px:t")
        assert "error" not in await conn.command("subscribe", {"channel": "px:t", "token": token})
        assert backend.seen("subscribe") == []
        assert "error" not in await conn.command("subscribe", {"channel": "own:x"})
    assert [s.body["channel"] for s in backend.seen("ns/subscribe")] == ["own:x"]


async def test_a_backend_that_is_down_is_a_temporary_error(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("down")
    async with client(hubbub) as (conn, _):
        reply = await conn.command("subscribe", {"channel": "down:x"})
        assert reply["error"] == INTERNAL
        # and the connection goes on
        assert "error" not in await conn.command("subscribe", {"channel": "plain:x"})


# -- publish ---------------------------------------------------------------------------------


async def test_publish_rewritten_refused_and_seen_by_the_hook(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("pub")
    backend.responders["publish"] = lambda body: {
        "result": {"data": {"clean": body["data"]["text"].upper()}}
    }
    async with client(hubbub) as (conn, _):
        for channel in ("px:p", "px:hooked"):
            await conn.command("subscribe", {"channel": channel})
            assert "error" not in await conn.command(
                "publish", {"channel": channel, "data": {"text": "hi"}}
            )
        push = await conn.push("pub", "px:p")
        assert push["pub"]["data"] == {"clean": "HI"}
        push = await conn.push("pub", "px:hooked")  # on_publish saw the proxy's data
        assert push["pub"]["data"] == {"hook": {"clean": "HI"}}
        backend.responders["publish"] = lambda body: {
            "error": {"code": 4001, "message": "spam", "temporary": True}
        }
        reply = await conn.command("publish", {"channel": "px:p", "data": {"text": "x"}})
        assert reply["error"] == {"code": 4001, "message": "spam", "temporary": True}
    seen = backend.seen("publish")[0]
    assert seen.body["channel"] == "px:p" and seen.body["user"] == "pub"
    assert seen.body["data"] == {"text": "hi"}


async def test_publish_may_skip_the_history(hubbub: ServerProcess, backend: Backend) -> None:
    backend.responders["connect"] = user("hist")
    async with client(hubbub) as (conn, _):
        await conn.command("subscribe", {"channel": "px:h1"})
        backend.responders["publish"] = lambda body: {"result": {"skip_history": True}}
        await conn.command("publish", {"channel": "px:h1", "data": {"n": 1}})
        backend.responders["publish"] = lambda body: {"result": {}}
        await conn.command("publish", {"channel": "px:h1", "data": {"n": 2}})
        history = await conn.command("history", {"channel": "px:h1", "limit": 10})
        assert [p["data"] for p in history["history"]["publications"]] == [{"n": 2}]


# -- rpc -------------------------------------------------------------------------------------


async def test_rpc_goes_to_the_proxy_unless_python_has_the_method(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("rpc")
    backend.responders["rpc"] = lambda body: {
        "result": {"b64data": base64.b64encode(json.dumps({"m": body["method"]}).encode()).decode()}
    }
    async with client(hubbub) as (conn, _):
        reply = await conn.command("rpc", {"method": "sum", "data": [1, 2]})
        assert reply["rpc"]["data"] == {"m": "sum"}
        reply = await conn.command("rpc", {"method": "py", "data": {}})
        assert reply["rpc"]["data"] == {"from": "python"}
        backend.responders["rpc"] = lambda body: {"error": {"code": 4404, "message": "nope"}}
        reply = await conn.command("rpc", {"method": "sum"})
        assert reply["error"] == {"code": 4404, "message": "nope"}
    (seen,) = [s for s in backend.seen("rpc") if s.body.get("data")]
    assert seen.body["method"] == "sum" and seen.body["data"] == [1, 2]
    assert seen.body["user"] == "rpc"


COMMANDS = {
    "subscribe": ("subscribe", {"channel": "px:grid"}),
    "publish": ("publish", {"channel": "px:grid", "data": {"n": 1}}),
    "rpc": ("rpc", {"method": "grid", "data": {}}),
}


@pytest.mark.parametrize("kind", sorted(COMMANDS))
async def test_each_command_kind_times_out_and_passes_disconnects(
    hubbub: ServerProcess, backend: Backend, kind: str
) -> None:
    backend.responders["connect"] = user("grid")
    backend.responders["subscribe"] = lambda body: {"result": {}}
    method, params = COMMANDS[kind]
    async with client(hubbub) as (conn, _):
        if kind == "publish":
            await conn.command("subscribe", {"channel": "px:grid"})
        backend.responders[kind] = lambda body: Reply(json={"result": {}}, delay=TIMEOUT * 8)
        started = time.monotonic()
        assert (await conn.command(method, params))["error"] == INTERNAL
        assert time.monotonic() - started < TIMEOUT * 8  # (the backend had not answered)
        backend.responders[kind] = lambda body: {"disconnect": {"code": 4002, "reason": kind}}
        await conn.ws.send_str(json.dumps({"id": 99, method: params}))
        assert await closed_code(conn) == 4002


# -- refresh and sub_refresh -----------------------------------------------------------------


def extend_once() -> Any:
    """A refresh responder: two seconds more the first time (from when it is asked), then
    expired."""
    asked = 0

    def answer(body: dict[str, Any]) -> Any:
        nonlocal asked
        asked += 1
        if asked == 1:
            return {"result": {"expire_at": int(time.time()) + 2}}
        return {"result": {"expired": True}}

    return answer


async def test_the_refresh_proxy_extends_then_expires_a_connection(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = lambda body: {
        "result": {"user": "ref", "expire_at": int(time.time()) + 2}
    }
    backend.responders["refresh"] = extend_once()
    async with client(hubbub) as (conn, reply):
        assert "expires" not in reply["connect"]  # the server refreshes, not the client
        assert await asyncio.wait_for(closed_code(conn), scaled(10)) == 3005
    bodies = [s.body for s in backend.seen("refresh")]
    assert len(bodies) == 2
    assert bodies[0]["user"] == "ref" and bodies[0]["client"] == reply["connect"]["client"]


async def test_the_sub_refresh_proxy_extends_then_expires_a_subscription(
    hubbub: ServerProcess, backend: Backend
) -> None:
    backend.responders["connect"] = user("sr")
    backend.responders["subscribe"] = lambda body: {"result": {"expire_at": int(time.time()) + 2}}
    backend.responders["sub_refresh"] = extend_once()
    async with client(hubbub) as (conn, _):
        reply = await conn.command("subscribe", {"channel": "px:sr"})
        assert "expires" not in reply["subscribe"]
        push = await asyncio.wait_for(conn.push("unsubscribe", "px:sr"), scaled(10))
        assert push["unsubscribe"]["code"] == 2501
    bodies = [s.body for s in backend.seen("sub_refresh")]
    assert len(bodies) == 2 and bodies[0]["channel"] == "px:sr" and bodies[0]["user"] == "sr"


# -- metrics ---------------------------------------------------------------------------------


async def test_proxy_requests_are_counted(hubbub: ServerProcess, backend: Backend) -> None:
    backend.responders["connect"] = user("m")
    async with client(hubbub):
        pass
    async with aiohttp.ClientSession() as http, http.get(hubbub.url + "/metrics") as resp:
        text = await resp.text()
    assert 'hubbub_proxy_requests_total{kind="connect",outcome="ok"}' in text
    assert 'hubbub_proxy_duration_seconds_count{kind="connect"}' in text


# -- the README's examples -------------------------------------------------------------------

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_examples() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each proxy kind's request (the curl's body) and answer in the README's section."""
    start = README.index("## HTTP proxy")
    text = README[start : README.index("<!-- end of the HTTP proxy section -->", start)]
    pairs = re.findall(r"```sh\n(curl .*?)\n```\n```json\n(.*?)\n```", text, re.S)
    out = {}
    for curl, answer in pairs:
        url = re.search(r"curl -s (\S+)", curl)
        body = re.search(r"-d '(.*)'", curl)
        assert url is not None and body is not None, curl
        out[url.group(1).rsplit("/", 1)[1]] = (json.loads(body.group(1)), json.loads(answer))
    return out


def as_readme_shows(body: dict[str, Any]) -> dict[str, Any]:
    """A request as the README writes it: its client id, and chat: for this test's px:."""
    text = json.dumps(body).replace('"px:', '"chat:')
    return {**json.loads(text), "client": "9336a229-2400-4ebc-8c50-0a643d22e8a0"}


async def test_the_readme_requests_are_what_hubbub_sends_and_its_answers_work(
    hubbub: ServerProcess, backend: Backend
) -> None:
    examples = readme_examples()
    assert sorted(examples) == sorted(
        ["connect", "refresh", "subscribe", "sub_refresh", "publish", "rpc"]
    )
    for kind, (_, answer) in examples.items():
        backend.responders[kind] = lambda body, answer=answer: answer
    connect = {"data": {"app": "web"}, "name": "js", "version": "5.0.0"}
    async with client(hubbub, connect) as (conn, reply):
        assert reply["connect"]["client"]
        assert "error" not in await conn.command(
            "subscribe", {"channel": "px:index", "data": {"seat": 3}}
        )
        await conn.command("publish", {"channel": "px:index", "data": {"text": "hello"}})
        push = await conn.push("pub", "px:index")
        assert push["pub"]["data"] == {"text": "hello", "checked": True}
        reply = await conn.command("rpc", {"method": "getCurrentYear", "data": {}})
        assert reply["rpc"]["data"] == {"year": 2026}
    # refresh and sub_refresh: expiring in a second or two, the README's answers extend them
    soon = int(time.time()) + 2
    for kind in ("connect", "subscribe"):
        result = {**examples[kind][1]["result"], "expire_at": soon}
        backend.responders[kind] = lambda body, result=result: {"result": result}
    async with client(hubbub) as (conn, _):
        await conn.command("subscribe", {"channel": "px:index", "data": {"seat": 3}})
        await eventually(lambda: backend.seen("refresh") and backend.seen("sub_refresh"), 10)
        assert "error" not in await conn.command("presence", {"channel": "px:index"})
        assert conn.closed is None and conn.pushes.empty()
    for kind, (request, _) in examples.items():
        sent = as_readme_shows(backend.seen(kind)[0].body)
        assert list(sent.items()) == list(request.items()), kind


# -- refresh failures (in process: a retry shortened) ---------------------------------------


async def test_a_refresh_backend_that_fails_is_asked_again_and_may_disconnect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Down or slow at the connection's expiry: the connection stays and the backend is asked
    again (after a minute, as Centrifugo; here 0.3 s); its disconnect then closes with its
    code."""
    monkeypatch.setattr(tokens, "PROXY_RETRY", 0.3)
    answers = [
        web.json_response({"result": {}}, status=503),
        "slow",
        web.json_response({"disconnect": {"code": 4100, "reason": "later"}}),
    ]
    asked: list[float] = []

    async def refresh(request: web.Request) -> web.StreamResponse:
        asked.append(time.monotonic())
        answer = answers.pop(0)
        if answer == "slow":
            await asyncio.sleep(1)
            return web.json_response({"result": {"expire_at": int(time.time()) + 60}})
        assert isinstance(answer, web.StreamResponse)
        return answer

    async def connect(request: web.Request) -> web.StreamResponse:
        return web.json_response({"result": {"user": "r", "expire_at": int(time.time()) + 2}})

    app = web.Application()
    app.router.add_post("/connect", connect)
    app.router.add_post("/refresh", refresh)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    hub = Hub(
        port=0,
        proxy_connect_endpoint=base + "/connect",
        proxy_refresh_endpoint=base + "/refresh",
        proxy_timeout=0.3,
    )
    try:
        async with (
            serving(hub, tmp_path) as url,
            aiohttp.ClientSession() as http,
            http.ws_connect(url.replace("http", "ws") + "/connection/websocket") as ws,
        ):
            conn = Observer(ws)
            try:
                assert "connect" in await conn.command("connect", {})
                assert await asyncio.wait_for(closed_code(conn), scaled(10)) == 4100
            finally:
                conn.stop()
    finally:
        await runner.cleanup()
    assert len(asked) == 3 and answers == []
