"""hub.asgi() mounted in FastAPI (examples/fastapi_app.py's shape) and served by uvicorn in
the test's loop: the SDK through the mount, echo, raw rooms, hub.publish from a route, the
server API, /health, refusals as hubbub's own edge gives them, and the lifespan that leaves
nothing running."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

uvicorn = pytest.importorskip(
    "uvicorn", reason="uvicorn is a dev dependency (pip install -e .[dev])"
)
fastapi = pytest.importorskip("fastapi", reason="fastapi is a dev dependency")

from centrifuge import (  # noqa: E402
    Client,
    PublicationContext,
    SubscriptionEventHandler,
)

from hubbub.errors import HubbubError  # noqa: E402
from hubbub.hub import ConnectContext, ConnectResult, Hub  # noqa: E402
from hubbub.server import lifecycle  # noqa: E402
from tests.support import emulated, uni  # noqa: E402
from tests.support.hung_engine import HungBroker, hung_engines  # noqa: E402
from tests.support.sdk import SDK_GARBAGE  # noqa: E402
from tests.support.timing import eventually, scaled  # noqa: E402

pytestmark = SDK_GARBAGE  # centrifuge-python in this process (tests/support/sdk.py)

KEY = "asgi-test-key-0123456789abcdef"


def make_hub(tmp_path: Path, **settings: Any) -> Hub:
    return Hub(
        data_dir=str(tmp_path),
        demos=False,
        api_key=KEY,
        namespaces=[{"name": "news", "history_size": 10, "history_ttl": 60}],
        **settings,
    )


def make_app(hub: Hub) -> Any:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with hub.running():
            yield

    app = fastapi.FastAPI(lifespan=lifespan)
    app.mount("/rt", hub.asgi())

    @app.post("/announce")
    async def announce(text: str) -> dict[str, int]:
        return {"offset": await hub.publish("news:updates", {"text": text})}

    return app


@asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in this loop; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, 10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, scaled(15))
        sock.close()


@asynccontextmanager
async def hypercorn_serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with hypercorn on a free loopback port in this loop (lifespan on)."""
    hypercorn_asyncio = pytest.importorskip("hypercorn.asyncio", reason="hypercorn: dev set")
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_asyncio.serve(app, config, shutdown_trigger=stop.wait))
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(url + "/rt/health") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await eventually(up, 10)
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, scaled(15))


SERVERS = {"uvicorn": uvicorn_serving, "hypercorn": hypercorn_serving}


@pytest.fixture
async def mounted(tmp_path: Path) -> AsyncIterator[tuple[Hub, str]]:
    """The FastAPI app served by uvicorn."""
    hub = make_hub(tmp_path)
    async with uvicorn_serving(make_app(hub)) as url:
        yield hub, url


@pytest.fixture(params=list(SERVERS))
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Hub, str]]:
    """The FastAPI app served by uvicorn, then by hypercorn."""
    hub = make_hub(tmp_path)
    async with SERVERS[request.param](make_app(hub)) as url:
        yield hub, url


class Pubs(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.pubs: asyncio.Queue[Any] = asyncio.Queue()

    async def on_publication(self, ctx: PublicationContext) -> None:
        await self.pubs.put(ctx.pub.data)


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_sdk_subscribes_and_publishes_through_the_mount(
    served: tuple[Hub, str], protobuf: bool
) -> None:
    """centrifuge-python over /rt/connection/websocket: subscribe, publish, get it back."""
    _, url = served
    ws = url.replace("http", "ws") + "/rt/connection/websocket"
    client = Client(ws, use_protobuf=protobuf)
    events = Pubs()
    sub = client.new_subscription("news:sdk", events=events)
    await client.connect()
    try:
        await sub.subscribe()
        await sub.ready(scaled(5))
        data = {"n": 1} if not protobuf else json.dumps({"n": 1}).encode()
        await sub.publish(data)
        got = await asyncio.wait_for(events.pubs.get(), scaled(5))
        assert (json.loads(got) if protobuf else got) == {"n": 1}
    finally:
        await client.disconnect()


async def test_the_fastapi_example_publishes_from_a_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/fastapi_app.py as it is: its /announce route's hub.publish reaches an SDK
    subscriber of /rt/connection/websocket."""
    monkeypatch.setenv("HUBBUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUBBUB_DEMOS", "false")
    from examples.fastapi_app import app

    async with uvicorn_serving(app) as url:
        client = Client(url.replace("http", "ws") + "/rt/connection/websocket")
        events = Pubs()
        sub = client.new_subscription("news:updates", events=events)
        await client.connect()
        try:
            await sub.subscribe()
            await sub.ready(scaled(5))
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{url}/announce", params={"text": "hello"}) as resp,
            ):
                assert resp.status == 200
                assert (await resp.json())["offset"] == 1
            assert await asyncio.wait_for(events.pubs.get(), scaled(5)) == {"text": "hello"}
        finally:
            await client.disconnect()


async def test_running_alone_publishes_and_refuses_a_second_entry(tmp_path: Path) -> None:
    """hub.running() without any server: hub.publish works inside (history kept), a second
    entry is refused, and hub.publish is refused again after it."""
    hub = make_hub(tmp_path)
    async with hub.running():
        assert await hub.publish("news:alone", {"n": 1}) == 1
        with pytest.raises(HubbubError, match="already running"):
            async with hub.running():
                pass
        assert await hub.publish("news:alone", {"n": 2}) == 2
    with pytest.raises(HubbubError, match="not running"):
        await hub.publish("news:alone", {"n": 3})


async def test_echo_and_rooms_through_the_mount(served: tuple[Hub, str]) -> None:
    """Echo at /rt/ (text and binary), a raw room between two members, 400 for a bad name."""
    _, url = served
    ws = url.replace("http", "ws")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws + "/rt/") as echo:
            await echo.send_str("hi")
            assert (await echo.receive(scaled(5))).data == "hi"
            await echo.send_bytes(b"\x00\x01")
            assert (await echo.receive(scaled(5))).data == b"\x00\x01"
        async with (
            http.ws_connect(ws + "/rt/rooms/lobby") as a,
            http.ws_connect(ws + "/rt/rooms/lobby") as b,
        ):
            await eventually(lambda: _members(url, "rooms:lobby", 2), 5)
            await a.send_str("hello room")
            assert (await b.receive(scaled(5))).data == "hello room"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws + "/rt/rooms/" + "x" * 300)
        assert refused.value.status == 400
        async with http.get(url + "/rt/") as resp:
            assert resp.status == 200 and "echo" in await resp.text()


async def _members(url: str, channel: str, n: int) -> bool:
    async with aiohttp.ClientSession() as http, http.get(url + "/rt/health") as resp:
        return bool((await resp.json())["subscriptions"] >= n)


async def test_server_api_and_health_through_the_mount(mounted: tuple[Hub, str]) -> None:
    """/rt/api/publish with the key (401 without, 413 over the body limit, legacy /rt/api),
    /rt/health."""
    _, url = mounted
    async with aiohttp.ClientSession() as http:
        body = {"channel": "news:api", "data": {"x": 1}}
        async with http.post(url + "/rt/api/publish", json=body, headers={"X-API-Key": KEY}) as r:
            assert r.status == 200
            assert (await r.json())["result"]["offset"] == 1
        async with http.post(url + "/rt/api/publish", json=body) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == 101
        big = b'{"channel":"news:api","data":"' + b"x" * (2 << 20) + b'"}'
        async with http.post(url + "/rt/api/publish", data=big, headers={"X-API-Key": KEY}) as r:
            assert r.status == 413
        legacy = json.dumps({"method": "publish", "params": body}) + "\n" + '{"method":"nope"}'
        async with http.post(url + "/rt/api", data=legacy, headers={"X-API-Key": KEY}) as r:
            lines = (await r.text()).split("\n")
            assert json.loads(lines[0])["result"]["offset"] == 2
            assert json.loads(lines[1])["error"]["code"] == 104
        async with http.post(url + "/rt/api/nope", json={}, headers={"X-API-Key": KEY}) as r:
            assert r.status == 404
        async with http.get(url + "/rt/health") as r:
            assert r.status == 200
            health = await r.json()
            assert health["status"] == "ok" and health["engine"]["kind"] == "memory"
        async with http.get(url + "/rt/nothing-here") as r:
            assert r.status == 404


async def test_methods_as_hubbub_serve_answers_them(mounted: tuple[Hub, str]) -> None:
    """HEAD wherever GET is served (the OpenAPI document too); another method on a GET page
    is 405 with Allow, not the page."""
    _, url = mounted
    async with aiohttp.ClientSession() as http:
        for path in ("/rt/", "/rt/health", "/rt/api/openapi.json"):
            async with http.head(url + path) as r:
                assert r.status == 200, path
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            async with http.request(method, url + "/rt/") as r:
                assert (r.status, r.headers.get("Allow")) == (405, "GET"), method


async def test_a_trickled_api_body_gets_a_json_408(tmp_path: Path) -> None:
    """Slowloris on /rt/api/publish (with the key): 408 at handshake_timeout, a JSON body as
    every refusal of the server API."""
    hub = make_hub(tmp_path, handshake_timeout=0.5)
    async with uvicorn_serving(make_app(hub)) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /rt/api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
            b"Content-Length: 1000\r\n\r\n{" % KEY.encode()
        )
        async with asyncio.timeout(scaled(5)):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            assert head.startswith("HTTP/1.1 408 ")
            assert "content-type: application/json" in head.lower()
            length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
            body = json.loads(await reader.readexactly(length))
        assert body["error"]["message"] == "the request body did not come in time"
        writer.close()
        await writer.wait_closed()


async def test_wrong_origin_is_refused_with_403(tmp_path: Path) -> None:
    """allowed_origins applies to the mount's WebSockets as to hubbub's own edge."""
    hub = make_hub(tmp_path, allowed_origins=["https://app.example"])
    async with uvicorn_serving(make_app(hub)) as url, aiohttp.ClientSession() as http:
        ws = url.replace("http", "ws") + "/rt/connection/websocket"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws, headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        async with http.ws_connect(ws, headers={"Origin": "https://app.example"}) as conn:
            await conn.send_str('{"id":1,"connect":{}}')
            reply = json.loads((await conn.receive(scaled(5))).data)
            assert "client" in reply["connect"]


async def test_garbage_frames_are_closed_with_a_code(mounted: tuple[Hub, str]) -> None:
    """A frame that is not the protocol closes with 3501, as on hubbub's own edge."""
    _, url = mounted
    async with aiohttp.ClientSession() as http:
        ws = url.replace("http", "ws") + "/rt/connection/websocket"
        async with http.ws_connect(ws) as conn:
            await conn.send_str("not json at all")
            msg = await conn.receive(scaled(5))
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert conn.close_code == 3501


async def test_connection_limit_refuses_with_503(tmp_path: Path) -> None:
    """client_connection_limit counts the mount's WebSockets: the next handshake gets 503."""
    hub = make_hub(tmp_path, client_connection_limit=1)
    async with uvicorn_serving(make_app(hub)) as url, aiohttp.ClientSession() as http:
        ws = url.replace("http", "ws") + "/rt/"
        async with http.ws_connect(ws) as first:
            await first.send_str("x")
            await first.receive(scaled(5))
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws)
            assert refused.value.status == 503


async def test_not_running_gets_503_and_1013(tmp_path: Path) -> None:
    """Mounted without hub.running() in the lifespan: HTTP 503, WebSockets closed with 1013."""
    hub = make_hub(tmp_path)
    app = fastapi.FastAPI()
    app.mount("/rt", hub.asgi())
    async with uvicorn_serving(app) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "/rt/health") as r:
            assert r.status == 503
            assert "hub.running()" in await r.text()
        async with http.ws_connect(url.replace("http", "ws") + "/rt/connection/websocket") as c:
            msg = await c.receive(scaled(5))
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert c.close_code == 1013


async def test_lifespan_starts_and_stops_the_node_leaving_no_task(tmp_path: Path) -> None:
    """hub.asgi() served alone: the ASGI lifespan starts the node (startup tasks run,
    hub.publish works) and stops it: engines closed, no task left, hub.publish refused."""
    hub = make_hub(tmp_path)
    ticks: list[int] = []

    @hub.on_startup
    async def ticker() -> None:
        while True:
            ticks.append(await hub.publish("news:tick", {"n": len(ticks)}))
            await asyncio.sleep(0.05)

    before = asyncio.all_tasks()
    async with uvicorn_serving(hub.asgi()) as url:
        await eventually(lambda: len(ticks) >= 2, 5)
        node = hub.node_run.node
        ws = url.replace("http", "ws") + "/connection/websocket"
        async with aiohttp.ClientSession() as http, http.ws_connect(ws) as c:
            await c.send_str('{"id":1,"connect":{}}')
            await c.receive(scaled(5))
            async with http.get(url + "/health") as r:
                assert (await r.json())["connections"] == 1
    assert hub.node_run is None
    assert node.closing
    with pytest.raises(Exception, match="not running"):
        await hub.publish("news:tick", {})
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    left.discard(asyncio.current_task())  # type: ignore[arg-type]
    assert not left, left


async def test_running_closes_connections_with_the_shutdown_code(tmp_path: Path) -> None:
    """Leaving hub.running() closes the mount's channel connections with 3001 and raw ones
    with 1001, and on_disconnect sees 3001."""
    hub = make_hub(tmp_path)
    seen: list[int] = []

    @hub.on_disconnect
    async def gone(ctx: Any) -> None:
        seen.append(ctx.code)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(hub.asgi(), lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    async with hub.running():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await eventually(lambda: server.started, 10)
        http = aiohttp.ClientSession()
        chan = await http.ws_connect(f"ws://127.0.0.1:{port}/connection/websocket")
        await chan.send_str('{"id":1,"connect":{}}')
        await chan.receive(scaled(5))
        raw = await http.ws_connect(f"ws://127.0.0.1:{port}/")
        await raw.send_str("x")
        await raw.receive(scaled(5))
    chan_close = await chan.receive(scaled(5))
    raw_close = await raw.receive(scaled(5))
    assert (chan_close.type, chan.close_code) == (aiohttp.WSMsgType.CLOSE, 3001)
    assert (raw_close.type, raw.close_code) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert seen == [3001]
    await chan.close()
    await raw.close()
    await http.close()
    server.should_exit = True
    await asyncio.wait_for(task, scaled(15))
    sock.close()


def stream_hub(tmp_path: Path, **settings: Any) -> Hub:
    """A hub whose on_connect gives every client the server-side channel news:uni."""
    hub = make_hub(tmp_path, **settings)

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult:
        return ConnectResult(user="ada", channels=["news:uni"])

    return hub


@pytest.mark.parametrize("transport", uni.TRANSPORTS)
async def test_unidirectional_streams_through_the_mount(tmp_path: Path, transport: str) -> None:
    """uni_sse, uni_http_stream, uni_websocket under /rt: the connect push, a publication
    from hub.publish, and a server API disconnect as the last push."""
    hub = stream_hub(tmp_path)
    async with (
        uvicorn_serving(make_app(hub)) as url,
        uni.connect(url + "/rt", transport, {}) as pushes,
    ):
        first = await pushes.next()
        assert first is not None and set(first["connect"]["subs"]) == {"news:uni"}
        await hub.publish("news:uni", {"n": 1})
        pub = await pushes.next()
        assert pub is not None and pub["pub"]["data"] == {"n": 1}
        body = {"user": "ada", "disconnect": {"code": 4100, "reason": "bye"}}
        async with (
            aiohttp.ClientSession() as http,
            http.post(url + "/rt/api/disconnect", json=body, headers={"X-API-Key": KEY}) as r,
        ):
            assert r.status == 200
        assert await pushes.next() == {"disconnect": {"code": 4100, "reason": "bye"}}
        assert await pushes.next() is None


@pytest.mark.parametrize("transport", ["websocket", *uni.TRANSPORTS, *emulated.TRANSPORTS])
async def test_on_connect_sees_the_address_the_asgi_server_gives(
    tmp_path: Path, transport: str
) -> None:
    """ConnectContext.address through the mount is the ASGI scope's client (uvicorn reads
    proxy headers itself, with its own --forwarded-allow-ips), on every transport."""
    hub = make_hub(tmp_path)
    seen: list[str] = []

    @hub.on_connect
    async def connect(ctx: ConnectContext) -> ConnectResult:
        seen.append(ctx.address)
        return ConnectResult(user="ada")

    async with uvicorn_serving(make_app(hub)) as url:
        if transport == "websocket":
            client = Client(url.replace("http", "ws") + "/rt/connection/websocket")
            await client.connect()
            await client.disconnect()
        elif transport in uni.TRANSPORTS:
            async with uni.connect(url + "/rt", transport, {}) as pushes:
                assert await pushes.next() is not None
        else:
            async with emulated.connect(url + "/rt", transport) as em:
                assert em.session
    assert seen == ["127.0.0.1"]


@pytest.mark.parametrize("transport", emulated.TRANSPORTS)
async def test_emulation_through_the_mount(served: tuple[Hub, str], transport: str) -> None:
    """http_stream and sse out, /rt/emulation in: subscribe, a publication, publish back."""
    hub, url = served
    async with emulated.connect(url + "/rt", transport) as client:
        assert client.session and client.connected["client"]
        sub = await client.call("subscribe", {"channel": "news:em"})
        assert "subscribe" in sub, sub
        await hub.publish("news:em", {"n": 1})
        push = await client.push()
        assert push is not None and push["pub"]["data"] == {"n": 1}
        assert "publish" in await client.call("publish", {"channel": "news:em", "data": {"n": 2}})
        push = await client.push()
        assert push is not None and push["pub"]["data"] == {"n": 2}
        assert await client.post([{"id": 99, "ping": {}}]) == 204
    async with aiohttp.ClientSession() as http:
        gone = {"session": client.session, "node": client.node, "data": "{}"}
        async with http.post(url + "/rt/emulation", json=gone) as r:
            assert r.status == 404


async def test_stream_refusals_through_the_mount(tmp_path: Path) -> None:
    """Streams refuse as hubbub's own edge: wrong origin 403, a bad connect 400 (with CORS
    for an allowed origin), a body over max_message_size 413, a preflight 204."""
    hub = stream_hub(tmp_path, allowed_origins=["https://app.example"], max_message_size=1000)
    async with uvicorn_serving(make_app(hub)) as url, aiohttp.ClientSession() as http:
        base = url + "/rt/connection/uni_http_stream"
        evil = {"Origin": "https://evil.example"}
        async with http.post(base, data="{}", headers=evil) as r:
            assert r.status == 403
        good = {"Origin": "https://app.example"}
        async with http.post(base, data="[1]", headers=good) as r:
            assert r.status == 400
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
        async with http.post(base, data=b"{" + b" " * 2000 + b"}", headers=good) as r:
            assert r.status == 413
        async with http.options(base, headers=good) as r:
            assert r.status == 204
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
        async with http.post(url + "/rt/emulation", data="not json", headers=good) as r:
            assert r.status == 400


async def test_the_django_example_routes_rt_to_hubbub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/django_asgi.py: /rt/ is hubbub (echo, the channel protocol), the rest Django;
    a Django view's hub.publish reaches a subscriber; the lifespan starts and stops the node."""
    pytest.importorskip("django", reason="a dev dependency: pip install -e '.[dev]'")
    monkeypatch.setenv("HUBBUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUBBUB_DEMOS", "false")
    from examples import django_asgi

    async with uvicorn_serving(django_asgi.application) as url:
        ws = url.replace("http", "ws")
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(ws + "/rt/") as echo:
                await echo.send_str("hi")
                assert (await echo.receive(scaled(5))).data == "hi"
            async with http.get(url + "/rt/health") as r:
                assert r.status == 200
            async with http.get(url + "/nowhere") as r:
                assert r.status == 404  # Django's
            client = Client(ws + "/rt/connection/websocket")
            events = Pubs()
            sub = client.new_subscription("news:updates", events=events)
            await client.connect()
            try:
                await sub.subscribe()
                await sub.ready(scaled(5))
                async with http.get(url + "/hello", params={"text": "from django"}) as r:
                    assert r.status == 200
                got = await asyncio.wait_for(events.pubs.get(), scaled(5))
                assert got == {"text": "from django"}
            finally:
                await client.disconnect()
    assert django_asgi.hub.node_run is None


async def test_a_message_over_max_message_size_is_closed_with_1009(tmp_path: Path) -> None:
    """max_message_size counts UTF-8 bytes: 600 two-byte characters over a 1000-byte limit
    close the WebSocket with 1009; a message within it is echoed."""
    hub = make_hub(tmp_path, max_message_size=1000)
    async with (
        uvicorn_serving(make_app(hub)) as url,
        aiohttp.ClientSession() as http,
        http.ws_connect(url.replace("http", "ws") + "/rt/") as conn,
    ):
        await conn.send_str("é" * 400)
        assert (await conn.receive(scaled(5))).data == "é" * 400
        await conn.send_str("é" * 600)
        msg = await conn.receive(scaled(5))
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert conn.close_code == 1009


async def test_pings_through_the_mount_and_a_silent_client_gets_3012(tmp_path: Path) -> None:
    """The channel protocol's {} pings over the ASGI edge: a client that answers stays, one
    that stays silent is closed with 3012 "no pong"."""
    hub = make_hub(tmp_path, ping_interval=0.3, pong_timeout=0.3)
    async with uvicorn_serving(make_app(hub)) as url, aiohttp.ClientSession() as http:
        ws = url.replace("http", "ws") + "/rt/connection/websocket"
        polite, silent = await http.ws_connect(ws), await http.ws_connect(ws)
        for conn in (polite, silent):
            await conn.send_str('{"id":1,"connect":{}}')
            assert "connect" in json.loads((await conn.receive(scaled(5))).data)

        async def answer_pings() -> None:
            while (msg := await polite.receive()).type == aiohttp.WSMsgType.TEXT:
                if msg.data == "{}":
                    await polite.send_str("{}")

        answering = asyncio.create_task(answer_pings())
        msg = await silent.receive(scaled(5))
        while msg.type == aiohttp.WSMsgType.TEXT:  # the pings it does not answer
            msg = await silent.receive(scaled(5))
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 3012, "no pong")
        await asyncio.sleep(1.0)  # three more pings answered
        assert not polite.closed
        answering.cancel()
        await polite.close()
        await silent.close()


@pytest.fixture
async def hung_engine(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """hub.running() gets an engine whose close ignores every cancellation (released when
    the test is done, in the test's loop before it closes, so that the abandoned close ends
    with it)."""
    made: list[HungBroker] = []
    monkeypatch.setattr(lifecycle, "build_engines", hung_engines(made))
    yield
    for broker in made:
        broker.release()


@pytest.mark.usefixtures("hung_engine")
async def test_leaving_running_is_bounded_when_an_engine_close_hangs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """hub.running()'s exit (the host app's lifespan shutdown) ends within about
    shutdown_timeout even when the engine's close ignores every cancellation: it is cut off
    and logged, not awaited for ever."""
    hub = make_hub(tmp_path, shutdown_timeout=1)
    loop = asyncio.get_running_loop()
    async with hub.running():
        await hub.publish("news:x", {"n": 1})
        left_at = loop.time()
    assert loop.time() - left_at < 1 + scaled(2)
    assert "stopping the engines did not finish within" in caplog.text
    with pytest.raises(HubbubError):
        await hub.publish("news:x", {"n": 2})


async def test_uvicorns_access_log_gets_no_connection_token(tmp_path: Path) -> None:
    """uvicorn logs every request's path and query by default: hub.asgi() makes it write a
    uni_sse client's cf_connect (its token inside) and a ?token= as REDACTED."""
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    hub = stream_hub(tmp_path)
    app = make_app(hub)  # hub.asgi() first, then uvicorn configures its logging (dictConfig)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="info"))
    access = logging.getLogger("uvicorn.access")
    keep = Keep()
    access.addHandler(keep)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, 10)
        url = f"http://127.0.0.1:{port}"
        async with uni.connect(url + "/rt", "uni_sse", {"token": "SECRET-TOKEN-1"}) as pushes:
            await pushes.next()
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/rt/health?token=SECRET-TOKEN-2&x=1") as r,
        ):
            assert r.status == 200
        await eventually(lambda: any("/rt/health" in r.getMessage() for r in records), 5)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, scaled(15))
        sock.close()
        access.removeHandler(keep)
    text = "\n".join(record.getMessage() for record in records)
    assert "uni_sse?cf_connect=REDACTED" in text, text
    assert "/rt/health?token=REDACTED&x=1" in text, text
    assert "SECRET-TOKEN" not in text


@pytest.mark.usefixtures("hung_engine")
async def test_leaving_running_counts_the_connections_close_in_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The time spent waiting for connection handlers that do not end comes out of
    shutdown_timeout: the engines' stop gets what is left (at least lifecycle.STOP_MIN), as
    under hubbub serve, not a fresh shutdown_timeout after the handlers' wait."""
    timeout = 3.0
    hub = make_hub(tmp_path, shutdown_timeout=timeout)
    loop = asyncio.get_running_loop()
    stuck = asyncio.ensure_future(asyncio.sleep(3600))  # a handler that does not end
    try:
        async with hub.running():
            assert hub.node_run is not None
            hub.node_run.handlers.add(stuck)
            left_at = loop.time()
        took = loop.time() - left_at
        # shutdown_timeout, STOP_MIN and the cut-off's grace; a fresh budget would be ~5.9 s
        assert took < timeout + lifecycle.STOP_MIN + 0.5 + scaled(0.5), took
        assert "stopping the engines did not finish within" in caplog.text
    finally:
        stuck.cancel()


async def test_a_host_that_cancels_the_exit_still_gets_the_node_stopped(tmp_path: Path) -> None:
    """The host's lifespan cancelled again while hub.running() is exiting (here: while a
    startup task that ignores its cancellation is being stopped): the engines are still
    closed and the hub unbound, then the cancellation goes on."""
    import contextlib

    released = False

    hub = make_hub(tmp_path, shutdown_timeout=5)

    @hub.on_startup
    async def stubborn() -> None:
        while not released:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    entered = asyncio.Event()
    closed: list[bool] = []

    async def host() -> None:
        async with hub.running():
            broker = hub._node.broker
            close = broker.close

            async def tracked() -> None:
                closed.append(True)
                await close()

            broker.close = tracked
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(host())
    try:
        await asyncio.wait_for(entered.wait(), scaled(10))
        task.cancel()  # the host's shutdown: running() begins its exit
        await asyncio.sleep(0.1)  # ... and waits for the stubborn startup task
        task.cancel()  # the host gives up on the exit
        done, _ = await asyncio.wait({task}, timeout=scaled(10))
        assert task in done and task.cancelled()
        assert closed == [True]
        with pytest.raises(HubbubError):
            await hub.publish("news:x", {"n": 1})
    finally:
        released = True
