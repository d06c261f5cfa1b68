"""The token flow end to end: anonymous refused, tokens for connections and protected
channels, expiry and refresh, per-user and rate limits."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import jwt
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.proto import call, closed_with, raw_client
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

SECRET = "t" * 40
GRACE = 1.5
CONFIG = f"""
client_expired_close_delay = {GRACE}
client_expired_sub_close_delay = {GRACE}
client_user_connection_limit = 2
[[namespaces]]
name = "private"
allow_subscribe_for_client = false
allow_subscribe_for_anonymous = false
"""


@pytest.fixture
def secured(start_server: StartServer) -> ServerProcess:
    return start_server("--token-hmac-secret", SECRET, "--no-allow-anonymous", config=CONFIG)


async def test_anonymous_refused_token_accepted(secured: ServerProcess) -> None:
    async with raw_client(secured) as ws:
        (reply,) = await call(ws, {"id": 1, "connect": {}})
        assert reply["error"]["code"] == 101
    async with raw_client(secured) as ws:
        token = mint(SECRET, "ada", ttl=3600)
        (reply,) = await call(ws, {"id": 1, "connect": {"token": token}})
        result = reply["connect"]
        assert result["expires"] is True and 3500 < result["ttl"] <= 3600
    async with raw_client(secured) as ws:
        (reply,) = await call(ws, {"id": 1, "connect": {"token": mint(SECRET, "ada", ttl=-5)}})
        assert reply["error"]["code"] == 109
    async with raw_client(secured) as ws:
        await ws.send_str(json.dumps({"id": 1, "connect": {"token": mint("x" * 40, "ada")}}))
        code, reason = await closed_with(ws)
        assert code == 3500 and reason.startswith("invalid token")


async def test_protected_namespace_needs_a_subscription_token(secured: ServerProcess) -> None:
    async with raw_client(secured) as ws:
        await call(ws, {"id": 1, "connect": {"token": mint(SECRET, "ada")}})
        (denied,) = await call(ws, {"id": 2, "subscribe": {"channel": "private:1"}})
        assert denied["error"]["code"] == 103
        token = mint(SECRET, "ada", channel="private:1", info={"role": "member"}, ttl=600)
        (ok,) = await call(ws, {"id": 3, "subscribe": {"channel": "private:1", "token": token}})
        assert ok["subscribe"]["expires"] is True
        (public,) = await call(ws, {"id": 4, "subscribe": {"channel": "open"}})
        assert "error" not in public
        other = mint(SECRET, "ada", channel="private:2")
        await ws.send_str(
            json.dumps({"id": 5, "subscribe": {"channel": "private:3", "token": other}})
        )
        assert (await closed_with(ws))[0] == 3500


async def test_expiry_without_refresh_disconnects(secured: ServerProcess) -> None:
    """A connection whose token expires is closed with 3005 unless refreshed in time; in time
    means up to ``client_expired_close_delay`` past its ttl (the SDKs refresh when the ttl
    runs out: the grace is Centrifugo's, so that their refresh never races the close)."""
    async with raw_client(secured) as lazy, raw_client(secured) as diligent:
        started = time.monotonic()
        short = mint(SECRET, "ada", ttl=2)
        (reply,) = await call(lazy, {"id": 1, "connect": {"token": short}})
        ttl = reply["connect"]["ttl"]
        assert ttl <= 2
        (bob,) = await call(diligent, {"id": 1, "connect": {"token": mint(SECRET, "bob", ttl=2)}})
        await asyncio.sleep(bob["connect"]["ttl"] + 0.2)  # its ttl is over: within the grace
        (refreshed,) = await call(
            diligent, {"id": 2, "refresh": {"token": mint(SECRET, "bob", ttl=600)}}
        )
        assert refreshed["refresh"]["expires"] is True and refreshed["refresh"]["ttl"] > 500
        assert (await closed_with(lazy))[0] == 3005
        elapsed = time.monotonic() - started
        assert ttl + GRACE - 0.5 <= elapsed < scaled(ttl + GRACE + 3), elapsed
        (ping,) = await call(diligent, {"id": 3, "ping": {}})
        assert ping == {"id": 3, "ping": {}}
        await diligent.send_str(
            json.dumps({"id": 4, "refresh": {"token": mint(SECRET, "eve", ttl=600)}})
        )
        assert (await closed_with(diligent))[0] == 3500


async def test_a_subscription_token_expires_after_its_grace_unless_refreshed(
    secured: ServerProcess,
) -> None:
    """2501 (the SDK resubscribes with a fresh token) only ``client_expired_sub_close_delay``
    past the token's ttl; a sub_refresh within the grace keeps the subscription."""
    async with raw_client(secured) as ws:
        (reply,) = await call(ws, {"id": 1, "connect": {"token": mint(SECRET, "ada")}})
        assert "connect" in reply
        started = time.monotonic()
        lazy = mint(SECRET, "ada", channel="private:lazy", ttl=2)
        kept = mint(SECRET, "ada", channel="private:kept", ttl=2)
        replies = await call(
            ws,
            {"id": 2, "subscribe": {"channel": "private:lazy", "token": lazy}},
            {"id": 3, "subscribe": {"channel": "private:kept", "token": kept}},
        )
        ttl = replies[0]["subscribe"]["ttl"]
        await asyncio.sleep(replies[1]["subscribe"]["ttl"] + 0.2)  # over: within the grace
        fresh = mint(SECRET, "ada", channel="private:kept", ttl=600)
        (refreshed,) = await call(
            ws, {"id": 4, "sub_refresh": {"channel": "private:kept", "token": fresh}}
        )
        assert refreshed["sub_refresh"]["expires"] is True
        while True:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            pushes = [json.loads(line).get("push", {}) for line in msg.data.split("\n")]
            gone = [p for p in pushes if "unsubscribe" in p]
            if gone:
                break
        assert gone == [
            {
                "channel": "private:lazy",
                "unsubscribe": {"code": 2501, "reason": "subscription expired"},
            }
        ]
        assert time.monotonic() - started >= ttl + GRACE - 0.5


async def test_per_user_connection_limit(secured: ServerProcess) -> None:
    token = mint(SECRET, "ada")
    async with raw_client(secured) as a, raw_client(secured) as b, raw_client(secured) as c:
        for ws in (a, b):
            (reply,) = await call(ws, {"id": 1, "connect": {"token": token}})
            assert "connect" in reply
        await c.send_str(json.dumps({"id": 1, "connect": {"token": token}}))
        assert await closed_with(c) == (3504, "connection limit")


async def test_command_flood_gets_111_then_3013(start_server: StartServer) -> None:
    server = start_server(
        config="client_command_rate = 5\nclient_command_burst = 5\nclient_refusal_limit = 5\n"
    )
    async with raw_client(server) as ws:
        await call(ws, {"id": 1, "connect": {}})
        await ws.send_str("\n".join(json.dumps({"id": 10 + i, "ping": {}}) for i in range(8)))
        codes = []
        while len(codes) < 8:
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            for line in msg.data.split("\n"):
                reply = json.loads(line)
                if reply.get("id"):
                    codes.append(reply.get("error", {}).get("code"))
        assert codes.count(None) == 4 and codes.count(111) == 4  # the burst, then refusals
        # The allowance of 5 refusals (per 10 s) is nearly used up: 2 more end the connection.
        await ws.send_str("\n".join(json.dumps({"id": 30 + i, "ping": {}}) for i in range(10)))
        assert (await closed_with(ws))[0] == 3013


#: Time claims of the wrong type or out of range: each makes the token invalid (3500), none
#: is accepted without expiry or turned into an internal error (100).
BAD_TIME_CLAIMS = [
    {"exp": "99999999999"},  # a numeric string: PyJWT took it, and it never expired
    {"exp": True},
    {"exp": float("nan")},
    {"exp": float("inf")},
    {"exp": 10**30},
    {"expire_at": float("nan")},  # PyJWT's JSON reads NaN: it was error 100
    {"expire_at": float("-inf")},
    {"expire_at": "2000000000"},
    {"expire_at": 1e300},
    {"nbf": "0"},
    {"iat": False},
    {"iat": 2**64},
]


async def test_badly_typed_time_claims_are_invalid_tokens(secured: ServerProcess) -> None:
    outcomes = {}
    for extra in BAD_TIME_CLAIMS:
        claims = {"sub": "ada", "iat": int(time.time()), **extra}
        token = jwt.encode(claims, SECRET, algorithm="HS256")
        async with raw_client(secured) as ws:
            await ws.send_str(json.dumps({"id": 1, "connect": {"token": token}}))
            msg = await asyncio.wait_for(ws.receive(), scaled(10))
            if msg.type == aiohttp.WSMsgType.TEXT:
                outcomes[json.dumps(extra)] = json.loads(msg.data)
            else:
                outcomes[json.dumps(extra)] = (ws.close_code, msg.extra or "")
    assert all(
        isinstance(outcome, tuple) and outcome[0] == 3500 and outcome[1].startswith("invalid token")
        for outcome in outcomes.values()
    ), outcomes


@pytest.mark.parametrize("demos", ["true", "false"])
async def test_a_token_without_token_keys_is_refused(start_server: StartServer, demos: str) -> None:
    """With no token key configured a token cannot be verified: disconnect 3500 (as
    Centrifugo), whether or not the demos' display-name hook is in place; a connect without a
    token is still anonymous."""
    server = start_server(env={"HUBBUB_DEMOS": demos})
    async with raw_client(server) as ws:
        await ws.send_str(json.dumps({"id": 1, "connect": {"token": mint(SECRET, "ada")}}))
        code, reason = await closed_with(ws)
        assert (code, reason) == (3500, "invalid token: no token keys are configured")
    async with raw_client(server) as ws:
        (reply,) = await call(ws, {"id": 1, "connect": {"data": {"name": "Ada"}}})
        assert "client" in reply["connect"]


async def test_the_demos_take_a_verified_token(start_server: StartServer) -> None:
    """With a key and the demos on, a token names the user and the display name is kept."""
    server = start_server("--token-hmac-secret", SECRET)
    async with raw_client(server) as ws:
        connect = {"token": mint(SECRET, "ada"), "data": {"name": "Ada L."}}
        await call(ws, {"id": 1, "connect": connect})
        (reply,) = await call(ws, {"id": 2, "subscribe": {"channel": "chat:t"}})
        assert "error" not in reply
        (reply,) = await call(ws, {"id": 3, "presence": {"channel": "chat:t"}})
        (entry,) = reply["presence"]["presence"].values()
        assert entry["user"] == "ada" and entry["conn_info"] == {"name": "Ada L."}
