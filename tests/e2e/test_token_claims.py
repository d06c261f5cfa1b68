"""Centrifugo's token claims over the JSON protocol against ``hubbub serve``: ``subs``
(server-side subscriptions with info, data and overrides), ``b64info``, a subscription
token's ``data`` and ``override`` (the options of that one subscription, on subscribe and on
leave alike)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.proto import Observer, call, closed_with, raw_client
from tests.support.server import ServerProcess
from tests.support.timing import eventually, scaled

pytestmark = pytest.mark.e2e

SECRET = "k" * 40
CONFIG = """
[[namespaces]]
name = "feed"
presence = true
join_leave = true
history_size = 10
history_ttl = 60

[[namespaces]]
name = "quiet"
history_size = 10
history_ttl = 60
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def on(value: bool) -> dict[str, bool]:
    return {"value": value}


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server("--token-hmac-secret", SECRET, config=CONFIG)


@asynccontextmanager
async def observer(server: ServerProcess, user: str, **claims: Any) -> AsyncIterator[Observer]:
    """A connected client of ``user`` whose connection token has ``claims``."""
    async with connected(server, user, **claims) as (watcher, _):
        yield watcher


@asynccontextmanager
async def connected(
    server: ServerProcess, user: str, **claims: Any
) -> AsyncIterator[tuple[Observer, dict[str, Any]]]:
    """As :func:`observer`, with the connect result."""
    async with raw_client(server) as ws:
        watcher = Observer(ws)
        try:
            reply = await watcher.command("connect", {"token": mint(SECRET, user, extra=claims)})
            assert "connect" in reply, reply
            yield watcher, reply["connect"]
        finally:
            watcher.stop()


async def presence(client: Observer, channel: str) -> dict[str, Any]:
    reply = await client.command("presence", {"channel": channel})
    return {e["user"]: e for e in reply["presence"]["presence"].values()}


async def subscribe(client: Observer, channel: str, **params: Any) -> dict[str, Any]:
    reply = await client.command("subscribe", {"channel": channel, **params})
    assert "subscribe" in reply, reply
    return reply["subscribe"]  # type: ignore[no-any-return]


def sub_token(user: str, channel: str, **claims: Any) -> str:
    return mint(SECRET, user, channel=channel, extra=claims)


async def test_subs_subscribe_with_their_info_data_and_overrides(server: ServerProcess) -> None:
    """A non-empty ``subs`` replaces ``channels`` (an unknown namespace there is not even
    looked at); each entry's data is in the connect reply, its info in presence, its
    override in effect; ``b64info`` is the connection's info."""
    subs = {
        "feed:a": {"info": {"seat": 1}, "data": {"hi": "a"}},
        "feed:b": {"b64data": b64('{"hi": "b"}'), "override": {"presence": on(False)}},
        "quiet:c": {"override": {"force_recovery": on(True)}},
    }
    async with (
        observer(server, "bob", channels=["feed:a", "feed:b"]) as bob,
        connected(
            server, "ada", subs=subs, channels=["nope:x"], b64info=b64('{"name": "Ada"}')
        ) as (_, result),
    ):
        assert set(result["subs"]) == {"feed:a", "feed:b", "quiet:c"}
        assert result["subs"]["feed:a"]["data"] == {"hi": "a"}
        assert result["subs"]["feed:b"]["data"] == {"hi": "b"}
        assert result["subs"]["quiet:c"]["recoverable"] is True
        assert "epoch" in result["subs"]["quiet:c"]
        here = await presence(bob, "feed:a")
        assert here["ada"]["chan_info"] == {"seat": 1}
        assert here["ada"]["conn_info"] == {"name": "Ada"}
        assert set(await presence(bob, "feed:b")) == {"bob"}  # ada left out by her override


async def test_bad_subs_fail_the_connect(server: ServerProcess) -> None:
    """A subs channel in no namespace is error 102, as in Centrifugo; a claim of the wrong
    type (here base64 that is not JSON) closes with 3500."""
    async with raw_client(server) as ws:
        token = mint(SECRET, "ada", extra={"subs": {"nope:x": {}}})
        (reply,) = await call(ws, {"id": 1, "connect": {"token": token}})
        assert reply["error"]["code"] == 102
        token = mint(SECRET, "ada", extra={"subs": {"feed:a": {"b64info": b64("not json")}}})
        await ws.send_str(json.dumps({"id": 2, "connect": {"token": token}}))
        code, reason = await closed_with(ws)
        assert code == 3500 and "subs.feed:a.b64info" in reason


async def next_join_or_leave(client: Observer, channel: str) -> tuple[str, str]:
    """The next join or leave push of ``channel``: its kind and whose."""
    while True:
        push = await asyncio.wait_for(client.pushes.get(), scaled(10))
        for kind in ("join", "leave"):
            if kind in push and push.get("channel") == channel:
                return kind, push[kind]["info"]["user"]


async def test_an_override_holds_from_subscribe_to_leave(server: ServerProcess) -> None:
    """join_leave turned on where the namespace has it off announces the join and, later,
    the leave; turned off where the namespace has it on announces neither; presence turned
    off keeps the subscriber out of presence."""
    async with (
        observer(server, "bob") as bob,
        observer(server, "ada") as ada,
        observer(server, "carol") as carol,
        observer(server, "dave") as dave,
    ):
        # In quiet (no join_leave) asking is not enough, as in Centrifugo: bob's token forces.
        await subscribe(carol, "quiet:room", join_leave=True)
        forced = sub_token("bob", "quiet:room", override={"force_push_join_leave": on(True)})
        await subscribe(bob, "quiet:room", token=forced)
        await subscribe(bob, "feed:room", join_leave=True)
        loud = sub_token("ada", "quiet:room", override={"join_leave": on(True)})
        await subscribe(ada, "quiet:room", token=loud)
        assert await next_join_or_leave(bob, "quiet:room") == ("join", "ada")
        await ada.command("unsubscribe", {"channel": "quiet:room"})
        assert await next_join_or_leave(bob, "quiet:room") == ("leave", "ada")
        assert carol.pushes.empty()  # she asked, in a namespace without join_leave

        hidden = sub_token(
            "carol", "feed:room", override={"join_leave": on(False), "presence": on(False)}
        )
        await subscribe(carol, "feed:room", token=hidden)
        assert set(await presence(bob, "feed:room")) == {"bob"}
        await carol.command("unsubscribe", {"channel": "feed:room"})
        await subscribe(dave, "feed:room")  # the next join or leave bob sees is dave's
        assert await next_join_or_leave(bob, "feed:room") == ("join", "dave")
        assert set(await presence(bob, "feed:room")) == {"bob", "dave"}


async def test_an_override_forces_pushes_recovery_and_position(server: ServerProcess) -> None:
    """force_push_join_leave gives joins to a subscriber that did not ask; force_recovery and
    force_positioning put the stream position in the reply; the token's data and b64info are
    the reply's data and the presence's chan_info."""
    async with observer(server, "ada") as ada, observer(server, "bob") as bob:
        pushed = sub_token("ada", "feed:pushed", override={"force_push_join_leave": on(True)})
        await subscribe(ada, "feed:pushed", token=pushed)
        assert await next_join_or_leave(ada, "feed:pushed") == ("join", "ada")  # her own
        await subscribe(bob, "feed:pushed")
        assert await next_join_or_leave(ada, "feed:pushed") == ("join", "bob")

        plain = await subscribe(ada, "quiet:plain")
        assert "epoch" not in plain and not plain.get("recoverable")
        recovery = sub_token("ada", "quiet:r", override={"force_recovery": on(True)})
        got = await subscribe(ada, "quiet:r", token=recovery)
        assert got["recoverable"] is True and got["positioned"] is True and got["epoch"]
        positioned = sub_token("ada", "quiet:p", override={"force_positioning": on(True)})
        got = await subscribe(ada, "quiet:p", token=positioned)
        assert got["positioned"] is True and got["epoch"] and not got.get("recoverable")

        token = sub_token("bob", "feed:data", data={"welcome": 1}, b64info=b64('{"seat": 9}'))
        assert (await subscribe(bob, "feed:data", token=token))["data"] == {"welcome": 1}
        assert (await presence(bob, "feed:data"))["bob"]["chan_info"] == {"seat": 9}


async def test_a_bad_subscription_claim_closes_with_3500(server: ServerProcess) -> None:
    async with raw_client(server) as ws:
        await call(ws, {"id": 1, "connect": {"token": mint(SECRET, "ada")}})
        bad = sub_token("ada", "feed:x", override={"presence": True})
        await ws.send_str(json.dumps({"id": 2, "subscribe": {"channel": "feed:x", "token": bad}}))
        code, reason = await closed_with(ws)
        assert code == 3500 and "override.presence" in reason


async def test_a_refresh_token_brings_new_info_and_a_changed_channel_list_reconnects(
    server: ServerProcess,
) -> None:
    """As Centrifugo: a refresh token's ``info`` becomes the conn info (presence shows it at
    once); a refresh token whose server-side channels differ from the subscribed ones makes
    the client reconnect (3010) to take them."""
    async with observer(server, "rae", channels=["feed:r"], info={"v": 1}) as rae:
        assert (await presence(rae, "feed:r"))["rae"]["conn_info"] == {"v": 1}
        fresh = mint(SECRET, "rae", ttl=600, extra={"channels": ["feed:r"], "info": {"v": 2}})
        reply = await rae.command("refresh", {"token": fresh})
        assert reply["refresh"]["expires"] is True
        assert (await presence(rae, "feed:r"))["rae"]["conn_info"] == {"v": 2}
        other = mint(SECRET, "rae", ttl=600, extra={"channels": ["feed:r", "feed:new"]})
        await rae.ws.send_str(json.dumps({"id": 50, "refresh": {"token": other}}))
        await eventually(lambda: rae.closed is not None, 5, what="the close")
        assert rae.ws.close_code == 3010
    async with observer(server, "ray", channels=["feed:a", "feed:b"]) as ray:
        fewer = mint(SECRET, "ray", ttl=600, extra={"channels": ["feed:a"]})
        await ray.ws.send_str(json.dumps({"id": 50, "refresh": {"token": fewer}}))
        await eventually(lambda: ray.closed is not None, 5, what="the close")
        assert ray.ws.close_code == 3010


async def test_a_sub_refresh_token_brings_new_chan_info(server: ServerProcess) -> None:
    async with observer(server, "sid") as sid:
        first = sub_token("sid", "feed:s", info={"seat": 1})
        assert "error" not in await sid.command("subscribe", {"channel": "feed:s", "token": first})
        assert (await presence(sid, "feed:s"))["sid"]["chan_info"] == {"seat": 1}
        second = sub_token("sid", "feed:s", info={"seat": 2})
        reply = await sid.command("sub_refresh", {"channel": "feed:s", "token": second})
        assert "error" not in reply, reply
        assert (await presence(sid, "feed:s"))["sid"]["chan_info"] == {"seat": 2}


async def test_an_expired_refresh_token_changes_nothing(server: ServerProcess) -> None:
    async with observer(server, "eve", channels=["feed:e"], info={"v": 1}) as eve:
        # A valid token (no exp) whose session ends in the past (expire_at: 1970).
        claims = {"channels": ["feed:e"], "info": {"v": 2}, "expire_at": 1000}
        stale = mint(SECRET, "eve", extra=claims)
        reply = await eve.command("refresh", {"token": stale})
        assert reply["error"]["code"] == 109
        assert (await presence(eve, "feed:e"))["eve"]["conn_info"] == {"v": 1}


async def test_an_unsubscribed_tokens_deadline_does_not_hit_the_next_subscription(
    server: ServerProcess,
) -> None:
    """A subscription token's expiry belongs to that subscription: once the client left the
    channel, a later subscription to it (here without a token) is not unsubscribed (2501)."""
    async with observer(server, "una") as una:
        token = mint(SECRET, "una", channel="feed:u", ttl=1)
        assert "error" not in await una.command("subscribe", {"channel": "feed:u", "token": token})
        assert "error" not in await una.command("unsubscribe", {"channel": "feed:u"})
        assert "error" not in await una.command("subscribe", {"channel": "feed:u"})
        await asyncio.sleep(scaled(2.0))
        pushes = [una.pushes.get_nowait() for _ in range(una.pushes.qsize())]
        assert not [p for p in pushes if "unsubscribe" in p], pushes
