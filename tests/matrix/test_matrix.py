"""Scenarios where features meet, on every deployment of the matrix (see conftest.py): raw
rooms (text and binary) and the channel protocol, publish and delivery byte for byte, history
and recovery, presence and join/leave, server API control of users on other nodes.

Clients are spread round robin over the deployment's nodes, half of them with
permessage-deflate (browsers always offer it)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from centrifuge.fossil import apply_delta

from hubbub.auth import mint
from tests.matrix.conftest import PUSHER_APP, PUSHER_SHARED, SECRET, Deployment, token, unique
from tests.support import emulated, protobuf, pusherws, uni
from tests.support.lossy import store_unannounced
from tests.support.proto import Observer, call
from tests.support.proxy_backend import Backend
from tests.support.rawws import OP_CLOSE, OP_TEXT, non_reader
from tests.support.timing import scaled
from tests.support.webhook_receiver import ThreadedReceiver

pytestmark = pytest.mark.e2e

Frame = tuple[aiohttp.WSMsgType, str | bytes]


@asynccontextmanager
async def sockets(
    deployment: Deployment, path: str, count: int
) -> AsyncIterator[list[aiohttp.ClientWebSocketResponse]]:
    """``count`` WebSockets to ``path``, round robin over the nodes, every other one with
    permessage-deflate."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        out = []
        for i in range(count):
            ws = await stack.enter_async_context(
                http.ws_connect(deployment.ws(i, path), compress=15 if i % 2 else 0)
            )
            out.append(ws)
        yield out


async def frames_until(
    ws: aiohttp.ClientWebSocketResponse, count: int, quiet: float = 0.3
) -> list[Frame]:
    """``count`` data frames, then whatever else arrives within ``quiet`` seconds."""
    got: list[Frame] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(15)
    while True:
        timeout = deadline - loop.time() if len(got) < count else quiet
        try:
            msg = await asyncio.wait_for(ws.receive(), max(timeout, 0.01))
        except TimeoutError:
            if len(got) < count:
                raise AssertionError(f"got {len(got)} of {count} frames: {got[:10]}") from None
            return got
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            got.append((msg.type, msg.data))
        else:
            raise AssertionError(f"connection ended: {msg}")


TEXT, BINARY = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY


def messages_of(sender: int) -> list[Frame]:
    """What member ``sender`` sends: plain text, JSON text with odd spacing (must not be
    re-encoded), text with quotes and non-ASCII, binary with bytes that are not UTF-8, and
    (member 0 only, so that every frame has one sender) an empty binary frame."""
    empty: list[Frame] = [(BINARY, b"")] if sender == 0 else []
    return [
        (TEXT, f"hello {sender}"),
        (TEXT, f'{{"n":  {sender}, "list":[1 ,2]}}'),
        (TEXT, f'"quoted" \\ {sender} ü€𝄞'),
        (BINARY, bytes([sender, 0, 255, 10])),
        *empty,
    ]


async def send(ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> None:
    kind, data = frame
    if kind is TEXT:
        assert isinstance(data, str)
        await ws.send_str(data)
    else:
        assert isinstance(data, bytes)
        await ws.send_bytes(data)


async def test_raw_room_frames_arrive_byte_for_byte(deployment: Deployment) -> None:
    """Every member gets every other member's frames exactly as sent (type and bytes), in
    each sender's order, and never its own, wherever the members are connected."""
    room = unique("room")
    members = 4
    async with sockets(deployment, f"/rooms/{room}", members) as socks:
        await deployment.wait_subscribers(f"rooms:{room}", members)
        for i, ws in enumerate(socks):
            for frame in messages_of(i):
                await send(ws, frame)
        sent = [len(messages_of(i)) for i in range(members)]
        received = await asyncio.gather(
            *(frames_until(ws, sum(sent) - sent[i]) for i, ws in enumerate(socks))
        )
    for i, got in enumerate(received):
        expected = {j: messages_of(j) for j in range(members) if j != i}
        by_sender: dict[int, list[Frame]] = {j: [] for j in expected}
        for frame in got:
            owner = [j for j, frames in expected.items() if frame in frames]
            assert owner, f"member {i} got a frame nobody sent: {frame!r}"
            by_sender[owner[0]].append(frame)
        assert by_sender == expected, f"member {i}"


async def test_rooms_and_channel_protocol_meet(deployment: Deployment) -> None:
    """Room frames reach channel subscribers as publication data; channel publications reach
    room members as the data's JSON text."""
    room = unique("meet")
    channel = f"rooms:{room}"
    async with (
        sockets(deployment, f"/rooms/{room}", 1) as (member,),
        sockets(deployment, "/connection/websocket", 2) as (_, proto),
    ):
        await call(proto, {"id": 1, "connect": {}})
        (reply,) = await call(proto, {"id": 2, "subscribe": {"channel": channel}})
        assert "error" not in reply, reply
        observer = Observer(proto)
        await deployment.wait_subscribers(channel, 2)
        await member.send_str("plain")
        await member.send_str('{"a":  1}')
        await member.send_bytes(b"\x00\x01")
        datas = [(await observer.push("pub", channel))["pub"]["data"] for _ in range(3)]
        assert datas == ["plain", {"a": 1}, {"base64": base64.b64encode(b"\x00\x01").decode()}]
        await deployment.api("publish", {"channel": channel, "data": {"from": "api"}}, node=1)
        (frame,) = await frames_until(member, 1)
        assert frame[0] is TEXT and json.loads(frame[1]) == {"from": "api"}
        observer.stop()


async def test_raw_json_and_protobuf_members_meet(deployment: Deployment) -> None:
    """A raw-room member, a JSON client and a Protobuf client of one room, each on another
    node where there are several: each gets the right bytes from each other (encoded once per
    format), and a Protobuf publisher's JSON reaches history and Protobuf byte for byte."""
    room = unique("wires")
    channel = f"rooms:{room}"
    async with aiohttp.ClientSession() as http:
        member = await http.ws_connect(deployment.ws(0, f"/rooms/{room}"))
        json_ws = await http.ws_connect(deployment.ws(1, "/connection/websocket"), compress=15)
        pb_ws = await http.ws_connect(
            deployment.ws(2, "/connection/websocket"), protocols=(protobuf.SUBPROTOCOL,)
        )
        await call(json_ws, {"id": 1, "connect": {}})
        (reply,) = await call(json_ws, {"id": 2, "subscribe": {"channel": channel}})
        assert "error" not in reply, reply
        json_client = Observer(json_ws)
        (reply,) = await protobuf.call(pb_ws, (1, "connect", {}))
        assert "connect" in reply, reply
        (reply,) = await protobuf.call(pb_ws, (2, "subscribe", {"channel": channel}))
        assert "error" not in reply, reply
        pb_client = protobuf.PbObserver(pb_ws)
        await deployment.wait_subscribers(channel, 3)

        # From the room: text, JSON text with odd spacing, binary.
        await member.send_str("plain")
        await member.send_str('{"a":  1}')
        await member.send_bytes(b"\x00\x01")
        b64 = base64.b64encode(b"\x00\x01").decode()
        json_datas = [(await json_client.push("pub", channel))["pub"]["data"] for _ in range(3)]
        assert json_datas == ["plain", {"a": 1}, {"base64": b64}]
        pb_datas = [(await pb_client.push("pub", channel))["pub"]["data"] for _ in range(3)]
        assert [json.loads(d) for d in pb_datas] == json_datas

        # From the JSON client.
        await json_client.command("publish", {"channel": channel, "data": {"from": "json"}})
        assert (await pb_client.push("pub", channel))["pub"]["data"] == b'{"from":"json"}'
        assert (await frames_until(member, 1)) == [(TEXT, '{"from":"json"}')]
        assert (await json_client.push("pub", channel))["pub"]["data"] == {"from": "json"}

        # From the Protobuf client: JSON with its own spacing, kept byte for byte.
        sent = b'{"from":  "pb",\n "n": [1, 2]}'
        reply = await pb_client.command("publish", {"channel": channel, "data": sent})
        assert "error" not in reply, reply
        assert (await pb_client.push("pub", channel))["pub"]["data"] == sent
        assert (await json_client.push("pub", channel))["pub"]["data"] == {
            "from": "pb",
            "n": [1, 2],
        }
        assert (await frames_until(member, 1)) == [(TEXT, sent.decode())]
        history = await pb_client.command("history", {"channel": channel, "limit": -1})
        stored = [p["data"] for p in history["history"]["publications"]]  # rooms keep history
        assert stored[-1] == sent and len(stored) == 5, stored

        # Bytes that are not JSON: JSON subscribers could not read them (107).
        refused = await pb_client.command("publish", {"channel": channel, "data": b"\xff\x00"})
        assert refused["error"]["code"] == 107, refused
        json_client.stop()
        pb_client.stop()
        for ws in (member, json_ws, pb_ws):
            await ws.close()


async def test_protobuf_history_and_recovery_byte_for_byte(deployment: Deployment) -> None:
    """A Protobuf client's publications come back from history and recovery as sent, on
    another node, and reach JSON clients' history as the same JSON values."""
    channel = unique("pbhist")
    sent = [b'{"n": 0}', b"[1,  2]", b'"text"']
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(
            deployment.ws(0, "/connection/websocket"), protocols=(protobuf.SUBPROTOCOL,)
        )
        (reply,) = await protobuf.call(first, (1, "connect", {"token": token(unique("u"))}))
        (reply,) = await protobuf.call(
            first, (2, "subscribe", {"channel": channel, "recoverable": True})
        )
        position = reply["subscribe"]
        await first.close()
        publisher = await http.ws_connect(
            deployment.ws(1, "/connection/websocket"), protocols=(protobuf.SUBPROTOCOL,)
        )
        await protobuf.call(publisher, (1, "connect", {"token": token(unique("u"))}))
        for n, data in enumerate(sent):
            (reply,) = await protobuf.call(
                publisher, (10 + n, "publish", {"channel": channel, "data": data})
            )
            assert "error" not in reply, reply
        await publisher.close()
        history = await deployment.api("history", {"channel": channel, "limit": -1}, node=1)
        assert [p["data"] for p in history["publications"]] == [json.loads(d) for d in sent]
        second = await http.ws_connect(
            deployment.ws(1, "/connection/websocket"), protocols=(protobuf.SUBPROTOCOL,)
        )
        await protobuf.call(second, (1, "connect", {"token": token(unique("u"))}))
        recover = {
            "channel": channel,
            "recover": True,
            "epoch": position["epoch"],
            "offset": int(position.get("offset", 0)),
        }
        (reply,) = await protobuf.call(second, (2, "subscribe", recover))
        await second.close()
    recovered = reply["subscribe"]
    assert recovered.get("recovered") is True, recovered
    assert [p["data"] for p in recovered["publications"]] == sent


async def connect_as(ws: aiohttp.ClientWebSocketResponse, user: str) -> Observer:
    (reply,) = await call(ws, {"id": 1, "connect": {"token": token(user)}})
    assert "connect" in reply, reply
    return Observer(ws)


async def test_publications_reach_every_subscriber_once_in_one_order(
    deployment: Deployment,
) -> None:
    channel = unique("news")
    async with sockets(deployment, "/connection/websocket", 4) as socks:
        observers = [await connect_as(ws, unique("u")) for ws in socks]
        for obs in observers:
            assert "error" not in await obs.command("subscribe", {"channel": channel})
        await deployment.wait_subscribers(channel, 4)

        async def publish_from(k: int) -> None:
            for n in range(10):
                if k < 2:
                    reply = await observers[k].command(
                        "publish", {"channel": channel, "data": {"k": k, "n": n}}
                    )
                    assert "error" not in reply, reply
                else:
                    await deployment.api(
                        "publish", {"channel": channel, "data": {"k": k, "n": n}}, k
                    )

        await asyncio.gather(*(publish_from(k) for k in range(4)))
        seen = []
        for obs in observers:
            pubs = [(await obs.push("pub", channel))["pub"] for _ in range(40)]
            seen.append([(p["data"]["k"], p["data"]["n"], p.get("offset")) for p in pubs])
            obs.stop()
    assert all(s == seen[0] for s in seen), "one order for every subscriber"
    assert sorted((k, n) for k, n, _ in seen[0]) == [(k, n) for k in range(4) for n in range(10)]
    assert [o for _, _, o in seen[0]] == list(range(1, 41)), "offsets 1..N in delivery order"


async def test_centrifugo_channel_names_across_nodes(deployment: Deployment) -> None:
    """Channel names with Centrifugo's characters (and a private one, with a subscription
    token) carry publications and history between nodes on every engine: Redis keys,
    PostgreSQL notification channels and SQLite rows take them as they are."""
    user = unique("u")
    odd, private = unique("a/b|c~d;e+f!g*h&i%"), unique("$secret.")
    async with sockets(deployment, "/connection/websocket", 2) as (_, ws):
        obs = await connect_as(ws, user)
        assert "error" not in await obs.command("subscribe", {"channel": odd})
        refused = await obs.command("subscribe", {"channel": private})
        assert refused["error"]["code"] == 103, refused
        sub_token = mint(SECRET, user, channel=private)
        reply = await obs.command("subscribe", {"channel": private, "token": sub_token})
        assert "error" not in reply, reply
        await deployment.wait_subscribers(odd, 1)
        await deployment.wait_subscribers(private, 1)
        for channel in (odd, private):
            await deployment.api("publish", {"channel": channel, "data": {"to": channel}})
            push = await obs.push("pub", channel)
            assert push["pub"]["data"] == {"to": channel}
            history = await deployment.api("history", {"channel": channel, "limit": -1}, node=1)
            assert [p["data"] for p in history["publications"]] == [{"to": channel}]
        obs.stop()


async def test_history_and_recovery_across_nodes(deployment: Deployment) -> None:
    """A client that saw offset N recovers what was published after it, on another node."""
    channel = unique("hist")
    async with sockets(deployment, "/connection/websocket", 2) as (first, second):
        obs = await connect_as(first, unique("u"))
        reply = await obs.command("subscribe", {"channel": channel, "recoverable": True})
        sub = reply["subscribe"]
        epoch, offset = sub["epoch"], sub.get("offset", 0)
        obs.stop()
        for n in range(3):
            await deployment.api("publish", {"channel": channel, "data": {"n": n}}, node=1)
        history = await deployment.api("history", {"channel": channel, "limit": -1})
        assert [p["data"]["n"] for p in history["publications"]] == [0, 1, 2]
        other = await connect_as(second, unique("u"))
        params = {"channel": channel, "recover": True, "offset": offset, "epoch": epoch}
        recovered = (await other.command("subscribe", params))["subscribe"]
        other.stop()
    assert recovered["recovered"] is True, recovered
    assert [p["data"]["n"] for p in recovered["publications"]] == [0, 1, 2]


async def test_unidirectional_transports_and_sse_recovery_across_nodes(
    deployment: Deployment,
) -> None:
    """A token's channel on uni_sse, uni_http_stream and uni_websocket spread over the nodes:
    every member gets each publication once; an SSE stream that dropped reconnects to another
    node with its Last-Event-ID and recovers what it missed."""
    channel = unique("uni:c")
    request = {"token": mint(SECRET, unique("u"), channels=[channel])}
    async with AsyncExitStack() as stack:
        members = [
            await stack.enter_async_context(uni.connect(deployment.node(i).url, kind, request))
            for i, kind in enumerate(uni.TRANSPORTS)
        ]
        for pushes in members:
            assert channel in ((await pushes.next()) or {})["connect"]["subs"]
        await deployment.wait_subscribers(channel, len(members))
        for n in range(2):
            await deployment.api("publish", {"channel": channel, "data": {"n": n}}, node=1)
        for pushes in members:
            got = [await pushes.next() for _ in range(2)]
            assert [(p or {})["pub"]["data"]["n"] for p in got] == [0, 1]
        last_id = members[0].ids[-1]
    for n in range(2, 5):
        await deployment.api("publish", {"channel": channel, "data": {"n": n}}, node=0)
    again = uni.connect(deployment.node(1).url, "uni_sse", request, {"Last-Event-ID": last_id})
    async with again as pushes:
        sub = ((await pushes.next()) or {})["connect"]["subs"][channel]
    assert sub["recovered"] is True, sub
    assert [p["data"]["n"] for p in sub["publications"]] == [2, 3, 4]


async def test_emulated_transports_wherever_their_requests_land(deployment: Deployment) -> None:
    """centrifuge-js's fallback transports: an http_stream client whose /emulation requests
    go to another node (or, with workers, to any of them) and an sse client the other way
    round: the commands reach their sessions, publications reach both once and in order, and
    a later subscribe recovers from history what it missed."""
    channel = unique("uni:e")
    users = [unique("u"), unique("u")]
    url = deployment.node
    async with (
        emulated.connect(url(0).url, "http_stream", {"token": token(users[0])}) as first,
        emulated.connect(url(1).url, "sse", {"token": token(users[1])}) as second,
    ):
        first.emulation_base, second.emulation_base = url(1).url, url(0).url
        replies = [await c.call("subscribe", {"channel": channel}) for c in (first, second)]
        assert all("subscribe" in r for r in replies), replies
        await deployment.wait_subscribers(channel, 2)
        for n in range(3):
            reply = await first.call("publish", {"channel": channel, "data": {"n": n}})
            assert "publish" in reply, reply
        for client in (first, second):
            got = [await client.push() for _ in range(3)]
            assert [(p or {})["pub"]["data"]["n"] for p in got] == [0, 1, 2]
        history = await second.call("history", {"channel": channel, "limit": -1})
        top = history["history"]
        assert [p["data"]["n"] for p in top["publications"]] == [0, 1, 2]
    for n in range(3, 5):
        await deployment.api("publish", {"channel": channel, "data": {"n": n}}, node=1)
    async with emulated.connect(url(1).url, "http_stream", {"token": token(users[0])}) as again:
        again.emulation_base = url(0).url
        since = {"recover": True, "offset": top["offset"], "epoch": top["epoch"]}
        sub = (await again.call("subscribe", {"channel": channel, **since}))["subscribe"]
    assert sub["recovered"] is True, sub
    assert [p["data"]["n"] for p in sub["publications"]] == [3, 4]


async def test_tags_filters_and_cache_recovery_across_nodes(deployment: Deployment) -> None:
    """Each subscriber gets what its tags filter lets through, whichever node it is on and
    the publisher uses (tags travel through every engine); a cache-mode channel gives the
    latest publication to a subscriber on another node."""
    tagged, cached = f"tagged:{unique('t')}", f"cached:{unique('c')}"
    filters: list[dict[str, Any] | None] = [
        {"key": "team", "cmp": "eq", "val": "eng"},
        {"op": "not", "nodes": [{"key": "team", "cmp": "in", "vals": ["eng", "ops"]}]},
        None,
    ]
    async with sockets(deployment, "/connection/websocket", 4) as wss:
        observers = []
        for ws, tf in zip(wss, filters, strict=False):
            obs = await connect_as(ws, unique("u"))
            params: dict[str, Any] = {"channel": tagged} | ({"tf": tf} if tf else {})
            assert "error" not in await obs.command("subscribe", params)
            observers.append(obs)
        await deployment.wait_subscribers(tagged, 3)
        teams = ["eng", "ops", None, "eng", "sales"]
        for n, team in enumerate(teams):
            params = {"channel": tagged, "data": {"n": n}} | (
                {"tags": {"team": team}} if team else {}
            )
            await deployment.api("publish", params, node=n)
        expected = [[0, 3], [2, 4], [0, 1, 2, 3, 4]]
        for obs, want in zip(observers, expected, strict=True):
            got = [(await obs.push("pub", tagged))["pub"]["data"]["n"] for _ in want]
            assert got == want
            await asyncio.sleep(0.2)
            assert not any("pub" in p for p in obs.pushes._queue)  # type: ignore[attr-defined]
            obs.stop()
        for price in (10, 11, 12):
            await deployment.api("publish", {"channel": cached, "data": {"price": price}})
        late = await connect_as(wss[3], unique("u"))
        reply = await late.command("subscribe", {"channel": cached, "recover": True})
        result = reply["subscribe"]
        assert [p["data"] for p in result["publications"]] == [{"price": 12}], result
        assert result["recovered"] and result["offset"] == 3
        late.stop()


async def test_a_lost_publication_is_recovered_by_positioned_subscribers(
    deployment: Deployment,
) -> None:
    """A publication that never reaches the nodes (stored, its pub/sub message lost, see
    tests/support/lossy.py) makes every positioned subscriber resubscribe and recover it:
    each sees every publication once, in order."""
    if deployment.engine_url is None:
        pytest.skip("one process with a local broker: nothing is lost between engine and node")
    channel = unique("lossy")
    epoch = (await deployment.api("publish", {"channel": channel, "data": {"n": 1}}))["epoch"]
    async with sockets(deployment, "/connection/websocket", 2) as wss:
        observers = []
        for ws in wss:
            obs = await connect_as(ws, unique("u"))
            reply = await obs.command("subscribe", {"channel": channel, "recoverable": True})
            assert reply["subscribe"]["offset"] == 1
            observers.append(obs)
        await deployment.wait_subscribers(channel, 2)
        lost = await store_unannounced(
            deployment.engine_url, channel, '{"n":2}', prefix=deployment.prefix
        )
        assert lost == 2
        await deployment.api("publish", {"channel": channel, "data": {"n": 3}}, node=1)
        for obs in observers:
            push = await obs.push("unsubscribe", channel)
            assert push["unsubscribe"]["code"] == 2500
            params = {"channel": channel, "recover": True, "offset": 1, "epoch": epoch}
            result = (await obs.command("subscribe", params))["subscribe"]
            assert result["recovered"]
            assert [p["data"]["n"] for p in result["publications"]] == [2, 3]
        await deployment.api("publish", {"channel": channel, "data": {"n": 4}})
        for obs in observers:
            assert (await obs.push("pub", channel))["pub"]["data"] == {"n": 4}
            assert not any("pub" in p for p in obs.pushes._queue)  # type: ignore[attr-defined]
            obs.stop()


async def test_presence_and_join_leave_across_nodes(deployment: Deployment) -> None:
    channel = unique("room")
    alice, bob = unique("alice"), unique("bob")
    async with sockets(deployment, "/connection/websocket", 2) as (a_ws, b_ws):
        a = await connect_as(a_ws, alice)
        assert "error" not in await a.command("subscribe", {"channel": channel, "join_leave": True})
        b = await connect_as(b_ws, bob)
        assert "error" not in await b.command("subscribe", {"channel": channel})
        join = await a.push("join", channel)
        if join["join"]["info"]["user"] == alice:  # her own join may come first
            join = await a.push("join", channel)
        assert join["join"]["info"]["user"] == bob
        for node in range(len(deployment.servers)):
            present = await deployment.api("presence", {"channel": channel}, node=node)
            assert sorted(i["user"] for i in present["presence"].values()) == sorted([alice, bob])
        await b_ws.close()
        b.stop()
        leave = await a.push("leave", channel)
        assert leave["leave"]["info"]["user"] == bob
        present = await deployment.api("presence", {"channel": channel})
        assert [i["user"] for i in present["presence"].values()] == [alice]
        a.stop()


async def test_token_subs_and_overrides_across_nodes(deployment: Deployment) -> None:
    """A connection token's ``subs``: each subscription's info is in presence on every node
    and in its join; one whose override turns presence and join/leave off is in neither; its
    leave, on disconnect, takes the others out of presence everywhere."""
    shown, hidden = unique("shown"), unique("hidden")
    ada, bob = unique("ada"), unique("bob")
    off = {"value": False}
    subs = {
        shown: {"info": {"seat": 1}},
        hidden: {"override": {"presence": off, "join_leave": off}},
    }
    async with sockets(deployment, "/connection/websocket", 2) as (b_ws, a_ws):
        b = await connect_as(b_ws, bob)
        for channel in (shown, hidden):
            reply = await b.command("subscribe", {"channel": channel, "join_leave": True})
            assert "error" not in reply, reply
        (reply,) = await call(
            a_ws, {"id": 1, "connect": {"token": mint(SECRET, ada, extra={"subs": subs})}}
        )
        assert set(reply["connect"]["subs"]) == {shown, hidden}, reply
        a = Observer(a_ws)
        join = await b.push("join", shown)
        if join["join"]["info"]["user"] == bob:  # his own join may come first
            join = await b.push("join", shown)
        assert (join["join"]["info"]["user"], join["join"]["info"]["chan_info"]) == (
            ada,
            {"seat": 1},
        )
        for node in range(len(deployment.servers)):
            present = await deployment.api("presence", {"channel": shown}, node=node)
            entries = {i["user"]: i for i in present["presence"].values()}
            assert sorted(entries) == sorted([ada, bob]) and entries[ada]["chan_info"] == {
                "seat": 1
            }
            present = await deployment.api("presence", {"channel": hidden}, node=node)
            assert [i["user"] for i in present["presence"].values()] == [bob]
        await a_ws.close()
        a.stop()
        assert (await b.push("leave", shown))["leave"]["info"]["user"] == ada
        await eventually(
            lambda: _users_are(deployment, shown, [bob]), "ada out of presence everywhere"
        )
        b.stop()


async def _users_are(deployment: Deployment, channel: str, users: list[str]) -> bool:
    for node in range(len(deployment.servers)):
        present = await deployment.api("presence", {"channel": channel}, node=node)
        if sorted(i["user"] for i in present["presence"].values()) != users:
            return False
    return True


async def users_present(deployment: Deployment, channel: str) -> list[str]:
    result = await deployment.api("presence", {"channel": channel})
    return sorted(i["user"] for i in result["presence"].values())


async def eventually(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(10)
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.05)


async def test_server_api_controls_users_on_every_node(deployment: Deployment) -> None:
    """subscribe, unsubscribe and disconnect sent to one node reach the user's connections
    on every node (and each node's presence follows)."""
    carol = unique("carol")
    channel = unique("ctl")
    async with sockets(deployment, "/connection/websocket", 4) as socks:
        observers = [await connect_as(ws, carol) for ws in socks]  # on every node
        for node in range(len(deployment.servers)):
            await deployment.api("subscribe", {"user": carol, "channel": channel}, node=node)
            for obs in observers:
                await obs.push("subscribe", channel)
            await deployment.api("publish", {"channel": channel, "data": node}, node=node)
            for obs in observers:
                assert (await obs.push("pub", channel))["pub"]["data"] == node
            await deployment.api("unsubscribe", {"user": carol, "channel": channel}, node=node)
            for obs in observers:
                await obs.push("unsubscribe", channel)

        async def nobody_present() -> bool:
            return await users_present(deployment, channel) == []

        await eventually(nobody_present, "presence empty after unsubscribe")
        spared = await observers[1].command("rpc", {"method": "none"})  # still connected
        assert spared["error"]["code"] == 104
        await deployment.api(
            "disconnect", {"user": carol, "disconnect": {"code": 4321, "reason": "bye"}}, node=0
        )

        async def all_closed() -> bool:
            return all(obs.closed is not None for obs in observers)

        await eventually(all_closed, "every connection of the user closed")
        assert [ws.close_code for ws in socks] == [4321] * len(socks)


async def test_refresh_and_connections_reach_every_node(deployment: Deployment) -> None:
    """``connections`` asked on any node lists the user's connections on every node, with
    their channels, and sees a server-side subscribe sent to the same node just before it;
    ``refresh`` sent to
    another node than the clients' pushes the new expiry to all of them, replaces their conn
    info (presence on every node shows it) and closes at expiry those that do not refresh
    their token; ``expired`` closes at once."""
    erin = unique("erin")
    channel, later = unique("refr"), unique("refr")
    async with sockets(deployment, "/connection/websocket", 4) as socks:
        ids, observers = [], []
        for ws in socks:  # on every node
            (reply,) = await call(ws, {"id": 1, "connect": {"token": token(erin)}})
            ids.append(reply["connect"]["client"])
            observers.append(Observer(ws))
        for obs in observers:
            assert "error" not in await obs.command("subscribe", {"channel": channel})
        for node in range(len(deployment.servers)):
            listed = (await deployment.api("connections", {"user": erin}, node=node))["connections"]
            assert sorted(listed) == sorted(ids)
            assert all(c["state"]["channels"] == {channel: {}} for c in listed.values())
            assert {c["user"] for c in listed.values()} == {erin}
        await deployment.api("subscribe", {"user": erin, "channel": later}, node=0)

        async def both_channels() -> bool:
            listed = (await deployment.api("connections", {"user": erin}, node=0))["connections"]
            return all(set(c["state"]["channels"]) == {channel, later} for c in listed.values())

        if deployment.row.workers == 1:  # both calls on one node: the question follows the
            assert await both_channels()  # subscribe on every node
        else:  # the workers share a port: the calls may land on different nodes
            await eventually(both_channels, "the server-side subscription listed")

        # 2 to 3 s (scaled) to see the refresh and refresh one token; the wait for the others'
        # expiry is this test's longest.
        ttl = round(scaled(3))
        expire_at = int(time.time()) + ttl
        params = {"user": erin, "expire_at": expire_at, "info": {"badge": "gold"}}
        await deployment.api("refresh", params, node=1)
        for obs in observers:
            refresh = await obs.push("refresh")
            assert refresh["refresh"]["expires"] is True and refresh["refresh"]["ttl"] <= ttl

        async def all_gold() -> bool:
            result = await deployment.api("presence", {"channel": channel})
            infos = [i.get("conn_info") for i in result["presence"].values()]
            return infos == [{"badge": "gold"}] * len(ids)

        await eventually(all_gold, "the new conn info in presence")
        refreshed = await observers[0].command("refresh", {"token": token(erin)})
        assert refreshed["refresh"].get("expires") is not True  # its new token never expires

        async def expired_but_one() -> bool:
            return [o.closed is not None for o in observers] == [False, True, True, True]

        await eventually(expired_but_one, "the three that did not refresh closed at expiry")
        assert [ws.close_code for ws in socks[1:]] == [3005] * 3
        await deployment.api("refresh", {"user": erin, "expired": True}, node=1)

        async def all_closed() -> bool:
            return observers[0].closed is not None

        await eventually(all_closed, "the refreshed one closed by expired")
        assert socks[0].close_code == 3005

        async def none_listed() -> bool:
            result = await deployment.api("connections", {"user": erin}, node=1)
            return result == {"connections": {}}

        await eventually(none_listed, "no connection of the user listed")


async def test_pipelined_publishes_keep_their_order(deployment: Deployment) -> None:
    """One connection sends publishes without waiting for replies: replies in command order,
    publications in that order with consecutive offsets, on every node."""
    channel = unique("pipe")
    count = 300
    async with sockets(deployment, "/connection/websocket", 3) as (pub_ws, *sub_socks):
        subscribers = [await connect_as(ws, unique("u")) for ws in sub_socks]
        for obs in subscribers:
            assert "error" not in await obs.command("subscribe", {"channel": channel})
        await deployment.wait_subscribers(channel, len(subscribers))
        await call(pub_ws, {"id": 1, "connect": {}})
        for i in range(count):
            cmd = {"id": 10 + i, "publish": {"channel": channel, "data": i}}
            await pub_ws.send_str(json.dumps(cmd))
        ids: list[int] = []
        while len(ids) < count:
            msg = await asyncio.wait_for(pub_ws.receive(), scaled(15))
            for line in msg.data.split("\n"):
                answer = json.loads(line)
                assert "error" not in answer, answer
                ids.append(answer["id"])
        assert ids == [10 + i for i in range(count)]
        for obs in subscribers:
            pubs = [(await obs.push("pub", channel))["pub"] for _ in range(count)]
            assert [p["data"] for p in pubs] == list(range(count))
            assert [p["offset"] for p in pubs] == list(range(1, count + 1))
            obs.stop()


async def test_a_slow_consumer_is_cut_off_and_the_others_get_everything(
    deployment: Deployment,
) -> None:
    """A subscriber that stops reading is closed with 3008 once its unsent data passes
    write_buffer_limit (64 KiB here); the readers on every node get every publication."""
    channel = unique("slow")
    host, port = deployment.node(0).url.split("//")[1].rsplit(":", 1)
    slow = await non_reader(host, int(port), "/connection/websocket")
    slow.send_frame(
        OP_TEXT,
        f'{{"id":1,"connect":{{}}}}\n{{"id":2,"subscribe":{{"channel":"{channel}"}}}}'.encode(),
    )
    count, pad = 200, "s" * 50_000
    async with sockets(deployment, "/connection/websocket", 2) as socks:
        readers = [await connect_as(ws, unique("u")) for ws in socks]
        for obs in readers:
            assert "error" not in await obs.command("subscribe", {"channel": channel})
        await deployment.wait_subscribers(channel, 3)

        async def publish_all() -> None:
            for n in range(count):  # 10 MB: more than the slow one's socket buffers hold
                data = {"n": n, "pad": pad}
                await deployment.api("publish", {"channel": channel, "data": data}, n)

        cuts_before = deployment.node(0).stderr().count("closing slow consumer")

        async def cut() -> bool:
            return deployment.node(0).stderr().count("closing slow consumer") > cuts_before

        publishing = asyncio.create_task(publish_all())
        await eventually(cut, "the slow consumer cut off")
        async with asyncio.timeout(scaled(10)):  # read it now: its close frame is under way
            while (frame := await slow.recv_frame()).opcode != OP_CLOSE:
                pass
        slow.close()
        assert (frame.close_code, frame.payload[2:]) == (3008, b"slow")
        await publishing
        for obs in readers:
            got = [(await obs.push("pub", channel))["pub"]["data"]["n"] for _ in range(count)]
            assert got == list(range(count))
            obs.stop()


class DeltaDecoder:
    """What an SDK with delta negotiated makes of a channel's publications (JSON protocol:
    data as a JSON string; Protobuf: bytes): deltas apply to the data held, the rest replaces
    it. ``kinds``: "full" or "delta" per publication."""

    def __init__(self) -> None:
        self.base: bytes | None = None
        self.kinds: list[str] = []

    def __call__(self, pub: dict[str, Any]) -> Any:
        data = pub["data"]
        assert isinstance(data, str | bytes), f"not delta-form data: {data!r}"
        raw = data.encode() if isinstance(data, str) else data
        if pub.get("delta"):
            assert self.base is not None
            raw = bytes(apply_delta(self.base, raw))
        self.kinds.append("delta" if pub.get("delta") else "full")
        self.base = raw
        return json.loads(raw)


def delta_document(n: int) -> dict[str, Any]:
    return {"n": n, "rows": [{"id": i, "label": f"row {i}", "v": i * n} for i in range(25)]}


async def test_delta_compression_across_nodes(deployment: Deployment) -> None:
    """Subscribers with delta (JSON and Protobuf) and without, on different nodes, publishers
    on others: the delta mark travels with the publication to every node, each node makes
    the deltas for its own subscribers, and every subscriber reconstructs the exact data; a
    client recovering on another node gets the missed ones in full and deltas after them;
    delta_publish marks a client's publications too."""
    channel, auto = f"delta:{unique('d')}", f"deltapub:{unique('d')}"
    marks = [True, True, False, True]
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        json_ws = await stack.enter_async_context(
            http.ws_connect(deployment.ws(0, "/connection/websocket"), compress=15)
        )
        pb_ws = await stack.enter_async_context(
            http.ws_connect(
                deployment.ws(1, "/connection/websocket"), protocols=(protobuf.SUBPROTOCOL,)
            )
        )
        plain_ws = await stack.enter_async_context(
            http.ws_connect(deployment.ws(2, "/connection/websocket"))
        )
        json_client = await connect_as(json_ws, unique("u"))
        (reply,) = await protobuf.call(pb_ws, (1, "connect", {"token": token(unique("u"))}))
        assert "connect" in reply, reply
        pb_client = protobuf.PbObserver(pb_ws)
        plain = await connect_as(plain_ws, unique("u"))
        position = {}
        for target in (channel, auto):
            reply = await json_client.command("subscribe", {"channel": target, "delta": "fossil"})
            assert reply["subscribe"]["delta"] is True, reply
            position[target] = reply["subscribe"]
            reply = await pb_client.command("subscribe", {"channel": target, "delta": "fossil"})
            assert reply["subscribe"]["delta"] is True, reply
            assert "error" not in await plain.command("subscribe", {"channel": target})
            await deployment.wait_subscribers(target, 3)

        for n, mark in enumerate(marks):
            params = {"channel": channel, "data": delta_document(n), "delta": mark}
            await deployment.api("publish", params, node=n + 1)
        expected = [delta_document(n) for n in range(len(marks))]
        for observer in (json_client, pb_client):
            decode = DeltaDecoder()
            pubs = [(await observer.push("pub", channel))["pub"] for _ in marks]
            assert [decode(p) for p in pubs] == expected
            assert decode.kinds == ["full", "delta", "full", "delta"]
        plain_pubs = [(await plain.push("pub", channel))["pub"] for _ in marks]
        assert [p["data"] for p in plain_pubs] == expected
        assert not any("delta" in p for p in plain_pubs)

        # delta_publish: a client's publications on another node are marked too.
        for n in range(3):
            reply = await plain.command(
                "publish", {"channel": auto, "data": delta_document(10 + n)}
            )
            assert "error" not in reply, reply
        for observer in (json_client, pb_client):
            decode = DeltaDecoder()
            pubs = [(await observer.push("pub", auto))["pub"] for _ in range(3)]
            assert [decode(p) for p in pubs] == [delta_document(10 + n) for n in range(3)]
            assert decode.kinds == ["full", "delta", "delta"]

        # Recovery on another node: the missed ones in full, then a delta from the last.
        await json_ws.close()
        json_client.stop()
        for n in range(4, 6):
            params = {"channel": channel, "data": delta_document(n), "delta": True}
            await deployment.api("publish", params, node=n)
        other = await stack.enter_async_context(
            http.ws_connect(deployment.ws(1, "/connection/websocket"))
        )
        again = await connect_as(other, unique("u"))
        recover = {
            "channel": channel,
            "delta": "fossil",
            "recover": True,
            "epoch": position[channel]["epoch"],
            "offset": len(marks),
        }
        reply = (await again.command("subscribe", recover))["subscribe"]
        assert (reply["recovered"], reply["delta"]) == (True, True), reply
        decode = DeltaDecoder()
        assert [decode(p) for p in reply["publications"]] == [delta_document(4), delta_document(5)]
        await deployment.wait_subscribers(channel, 3)
        params = {"channel": channel, "data": delta_document(6), "delta": True}
        await deployment.api("publish", params, node=0)
        assert decode((await again.push("pub", channel))["pub"]) == delta_document(6)
        assert decode.kinds == ["full", "full", "delta"]
        for observer in (pb_client, plain, again):
            observer.stop()


async def test_subscribe_and_publish_through_the_http_proxy(
    deployment: Deployment, proxy_backend: Backend
) -> None:
    """The ``proxied`` namespace asks the proxy's backend: it admits one user with chan info
    and refuses another, rewrites what is published; subscribers on every node get the
    rewritten data, presence shows the backend's info."""
    channel, allowed, refused = unique("proxied:c"), unique("u"), unique("u")
    proxy_backend.responders["subscribe"] = lambda body: (
        {"result": {"info": {"seat": body["user"]}}}
        if body["user"] != refused
        else {"error": {"code": 4403, "message": "not you"}}
    )
    proxy_backend.responders["publish"] = lambda body: {"result": {"data": {"via": body["data"]}}}
    async with sockets(deployment, "/connection/websocket", 3) as socks:
        first, second, third = [
            await connect_as(ws, u)
            for ws, u in zip(socks, (allowed, allowed, refused), strict=True)
        ]
        try:
            for obs in (first, second):
                reply = await obs.command("subscribe", {"channel": channel})
                assert "error" not in reply, reply
            reply = await third.command("subscribe", {"channel": channel})
            assert reply["error"] == {"code": 4403, "message": "not you"}
            await deployment.wait_subscribers(channel, 2)
            assert "error" not in await third.command("publish", {"channel": channel, "data": 1})
            for obs in (first, second):
                push = await obs.push("pub", channel)
                assert push["pub"]["data"] == {"via": 1}
            presence = await deployment.api("presence", {"channel": channel}, node=1)
            infos = [e.get("chan_info") for e in presence["presence"].values()]
            assert infos == [{"seat": allowed}, {"seat": allowed}]
        finally:
            for obs in (first, second, third):
                obs.stop()


async def test_webhooks_arrive_once_per_fact_across_nodes(
    deployment: Deployment, webhook_receiver: ThreadedReceiver
) -> None:
    """Two users on different nodes (where there are several) subscribe to one channel and
    leave: each connect, subscribe, unsubscribe and disconnect arrives, signed, once per
    connection, and the channel is occupied once and vacated once for the whole cluster."""
    channel, users = unique("hooked"), [unique("wh"), unique("wh")]
    async with sockets(deployment, "/connection/websocket", 2) as socks:
        observers = [await connect_as(ws, user) for ws, user in zip(socks, users, strict=True)]
        for obs in observers:
            assert "error" not in await obs.command("subscribe", {"channel": channel})
        await deployment.wait_subscribers(channel, 2)
        for obs in observers:
            obs.stop()
    expected = {"connect": 2, "subscribe": 2, "unsubscribe": 2, "disconnect": 2}

    def per_user() -> dict[str, list[str]]:
        return {
            kind: sorted(e["user"] for e in webhook_receiver.of_type(kind) if e["user"] in users)
            for kind in expected
        }

    def transitions() -> list[str]:
        return [
            kind
            for kind in ("channel_occupied", "channel_vacated")
            for _ in webhook_receiver.of_type(kind, channel=channel)
        ]

    async def arrived() -> bool:
        done = all(len(seen) == expected[kind] for kind, seen in per_user().items())
        return done and transitions() == ["channel_occupied", "channel_vacated"]

    await eventually(arrived, f"the webhooks of {channel}")
    await asyncio.sleep(scaled(0.5))  # a doubled event would come by now
    assert per_user() == {kind: sorted(users) for kind in expected}
    assert transitions() == ["channel_occupied", "channel_vacated"]
    for kind in ("subscribe", "unsubscribe"):
        assert {e["channel"] for e in webhook_receiver.of_type(kind) if e["user"] in users} == {
            channel
        }
    assert webhook_receiver.bad_signatures == 0


# -- the Pusher protocol (docs/pusher.md) ----------------------------------------------------


def pusher(deployment: Deployment, i: int, app: tuple[str, str, str] = PUSHER_APP) -> Any:
    """A Pusher connection to node ``i`` (round robin), every other one with deflate."""
    _, key, secret = app
    return pusherws.connect(deployment.ws(i, ""), key, secret, compress=15 if i % 2 else 0)


async def pusher_event(
    deployment: Deployment, channel: str, event: str, data: Any, node: int = 0
) -> None:
    """An event on the plain app's ``channel`` through the server API (the Pusher HTTP API is
    tested with the pusher library: tests/e2e/test_pusher_api.py)."""
    prefix = "$" if channel.startswith(("private-", "presence-", "#")) else ""
    await deployment.api(
        "publish",
        {
            "channel": f"{prefix}pusher-{PUSHER_APP[0]}:{channel}",
            "data": data,
            "tags": {"pusher_event": event},
        },
        node=node,
    )


async def test_pusher_presence_and_client_events_across_nodes(deployment: Deployment) -> None:
    """Presence members once per user on every node (two tabs of one user on two nodes: one
    member_added, member_removed when the last leaves); client events reach the others on
    every node, with user_id, never the sender; server events reach all."""
    channel = unique("presence-room")
    u1, u2 = unique("u"), unique("u")
    async with pusher(deployment, 0) as a, pusher(deployment, 1) as b:
        reply = await a.subscribe(channel, {"user_id": u1, "user_info": {"name": "one"}})
        assert reply["data"]["presence"]["ids"] == [u1], reply
        reply = await b.subscribe(channel, {"user_id": u2})
        assert sorted(reply["data"]["presence"]["ids"]) == sorted([u1, u2])
        assert reply["data"]["presence"]["hash"][u1] == {"name": "one"}
        added = await a.expect("pusher_internal:member_added")
        assert added["data"] == {"user_id": u2, "user_info": None}
        async with pusher(deployment, 2) as c:  # u2's second tab, on another node than b's
            reply = await c.subscribe(channel, {"user_id": u2})
            assert reply["data"]["presence"]["count"] == 2
            await b.send("client-typing", {"who": u2}, channel=channel)
            for other in (a, c):
                got = await other.expect("client-typing")
                assert got["data"] == {"who": u2} and got["user_id"] == u2, got
            await pusher_event(deployment, channel, "server-event", {"n": 1}, node=1)
            for each in (a, b, c):
                assert (await each.expect("server-event"))["data"] == {"n": 1}
            await b.nothing(0.3)  # nor its own client event
        await a.nothing(0.5)  # c left, b is still there: no member_removed
        await b.ws.close()
        removed = await a.expect("pusher_internal:member_removed")
        assert removed["data"] == {"user_id": u2}


async def test_pusher_cache_channels_and_server_to_user_across_nodes(
    deployment: Deployment,
) -> None:
    """A cache channel's last event, published on one node, is what a subscriber on another
    gets on subscribe; a signed-in user's events reach it on whichever node it is."""
    channel, user = unique("cache-score"), unique("user")
    async with pusher(deployment, 0) as first:
        await first.subscribe(channel)
        assert (await first.recv())["event"] == "pusher:cache_miss"
    await pusher_event(deployment, channel, "score", {"goals": 1}, node=1)
    await pusher_event(deployment, channel, "score", {"goals": 2}, node=1)
    async with pusher(deployment, 2) as later:
        await later.subscribe(channel)
        assert (await later.expect("score"))["data"] == {"goals": 2}
    async with pusher(deployment, 1) as c:
        assert (await c.signin({"id": user}))["event"] == "pusher:signin_success"
        reply = await c.subscribe(f"#server-to-user-{user}")
        assert reply["event"] == "pusher_internal:subscription_succeeded"
        await deployment.wait_subscribers(f"$pusher-{PUSHER_APP[0]}:#server-to-user-{user}", 1)
        await pusher_event(deployment, f"#server-to-user-{user}", "note", "hi", node=0)
        assert (await c.expect("note"))["data"] == "hi"


async def test_pusher_and_centrifugo_clients_meet(deployment: Deployment) -> None:
    """The shared app's ``news`` is Centrifugo's ``pshared:news``: what either side publishes
    reaches the other, across nodes; a Centrifugo publication is event ``message``."""
    name = unique("news")
    channel = f"pshared:{name}"
    async with (
        pusher(deployment, 0, PUSHER_SHARED) as p,
        sockets(deployment, "/connection/websocket", 2) as (_, ws),
    ):
        await p.subscribe(name)
        obs = await connect_as(ws, unique("cf"))
        assert "error" not in await obs.command("subscribe", {"channel": channel})
        await deployment.wait_subscribers(channel, 2)
        assert "error" not in await obs.command("publish", {"channel": channel, "data": {"a": 1}})
        got = await p.expect("message")
        assert got == {"event": "message", "channel": name, "data": {"a": 1}}
        await deployment.api(
            "publish",
            {"channel": channel, "data": {"b": 2}, "tags": {"pusher_event": "update"}},
            node=1,
        )
        assert (await p.expect("update"))["data"] == {"b": 2}
        pushes = [await obs.push("pub", channel) for _ in range(2)]
        assert [push["pub"]["data"] for push in pushes] == [{"a": 1}, {"b": 2}]
        obs.stop()
