"""The Pusher protocol codec: frames as pusher-js sends them (shapes from its source:
``Channel.subscribe``, ``Channel.trigger``, ``UserFacade._onAuthorize``,
``ConnectionManager``'s pong) parse into typed messages; the server's events decode the way
pusher-js's ``Protocol.decodeMessage`` reads them."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest

from hubbub.dialects.pusher import protocol as p
from hubbub.dialects.pusher.errors import ProtocolError


def decode_like_pusher_js(text: str) -> dict[str, Any]:
    """What pusher-js's decodeMessage makes of a frame: ``data`` parsed again if a string."""
    message = json.loads(text)
    data = message.get("data")
    if isinstance(data, str):
        with contextlib.suppress(ValueError):
            data = json.loads(data)
    event = {"event": message["event"], "channel": message.get("channel"), "data": data}
    if message.get("user_id"):
        event["user_id"] = message["user_id"]
    return event


# -- client frames ---------------------------------------------------------------------


def test_public_subscribe_as_pusher_js_sends_it() -> None:
    """A public channel: auth '' and no channel_data (JSON.stringify drops undefined)."""
    frame = '{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}'
    assert p.parse_client_frame(frame) == p.Subscribe("my-channel", auth="")


def test_presence_subscribe_as_pusher_js_sends_it() -> None:
    """A presence channel carries auth and channel_data, kept as the exact string signed."""
    channel_data = '{"user_id":"42","user_info":{"name":"Ada"}}'
    frame = json.dumps(
        {
            "event": "pusher:subscribe",
            "data": {"auth": "key:abc", "channel_data": channel_data, "channel": "presence-room"},
        }
    )
    assert p.parse_client_frame(frame) == p.Subscribe("presence-room", "key:abc", channel_data)


def test_data_as_a_json_string_is_accepted() -> None:
    """Clients that send data as a string of JSON get the same message."""
    frame = json.dumps(
        {"event": "pusher:subscribe", "data": json.dumps({"channel": "private-a", "auth": "k:s"})}
    )
    assert p.parse_client_frame(frame) == p.Subscribe("private-a", "k:s")


def test_unsubscribe_ping_pong_signin() -> None:
    """The other pusher:* events pusher-js sends."""
    assert p.parse_client_frame(
        b'{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}'
    ) == p.Unsubscribe("my-channel")
    assert p.parse_client_frame('{"event":"pusher:ping","data":{}}') == p.Ping()
    assert p.parse_client_frame('{"event":"pusher:pong","data":{}}') == p.Pong()
    signin = json.dumps(
        {"event": "pusher:signin", "data": {"auth": "k:s", "user_data": '{"id":"u-1"}'}}
    )
    assert p.parse_client_frame(signin) == p.Signin("k:s", '{"id":"u-1"}')


def test_client_event_as_pusher_js_sends_it() -> None:
    """channel.trigger('client-typing', {...}): data kept as the JSON value, with its size."""
    frame = '{"event":"client-typing","data":{"who":"Ada","n":1},"channel":"private-chat"}'
    message = p.parse_client_frame(frame)
    assert message == p.ClientEvent(
        "client-typing", "private-chat", {"who": "Ada", "n": 1}, len('{"who":"Ada","n":1}')
    )


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1,2]",
        '{"data":{}}',
        '{"event":"pusher:subscribe","data":{}}',
        '{"event":"pusher:subscribe","data":{"channel":"bad name"}}',
        '{"event":"pusher:subscribe","data":{"channel":"a","auth":5}}',
        '{"event":"pusher:subscribe","data":"{not json"}',
        '{"event":"pusher:subscribe","data":[1]}',
        '{"event":"pusher:signin","data":{"auth":"k:s"}}',
        '{"event":"pusher:unknown","data":{}}',
        '{"event":"client-x","data":{}}',
        '{"event":"typing","channel":"private-a","data":{}}',
    ],
)
def test_malformed_frames_are_refused_without_a_close_code(frame: str) -> None:
    """Each is a pusher:error the connection survives (no code)."""
    with pytest.raises(ProtocolError) as raised:
        p.parse_client_frame(frame)
    assert raised.value.code is None


def test_client_event_limits() -> None:
    """Data over 10 KiB and names over 200 characters are refused; 10 KiB exactly passes."""
    at_limit = "x" * p.MAX_EVENT_DATA
    ok = json.dumps({"event": "client-a", "channel": "private-a", "data": at_limit})
    assert isinstance(p.parse_client_frame(ok), p.ClientEvent)
    over = json.dumps({"event": "client-a", "channel": "private-a", "data": at_limit + "x"})
    with pytest.raises(ProtocolError, match="10240"):
        p.parse_client_frame(over)
    long_name = json.dumps({"event": "client-" + "a" * 194, "channel": "private-a", "data": 1})
    with pytest.raises(ProtocolError, match="200"):
        p.parse_client_frame(long_name)


# -- channels, ids, codes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("news", p.ChannelKind.PUBLIC),
        ("private-a", p.ChannelKind.PRIVATE),
        ("presence-a", p.ChannelKind.PRESENCE),
        ("private-encrypted-a", p.ChannelKind.PRIVATE_ENCRYPTED),
        ("cache-a", p.ChannelKind.CACHE),
        ("private-cache-a", p.ChannelKind.PRIVATE_CACHE),
        ("presence-cache-a", p.ChannelKind.PRESENCE_CACHE),
        ("private-encrypted-cache-a", p.ChannelKind.PRIVATE_ENCRYPTED_CACHE),
        ("#server-to-user-u1", p.ChannelKind.SERVER_TO_USER),
    ],
)
def test_channel_kinds(name: str, kind: p.ChannelKind) -> None:
    """The prefix decides the kind, the longest prefix first."""
    assert p.channel_kind(name) is kind
    assert p.channel_name_problem(name) is None


def test_channel_kind_properties() -> None:
    """Which kinds need auth, track members, encrypt, cache, allow client events."""
    k = p.ChannelKind
    assert {x for x in k if x.needs_auth} == {
        k.PRIVATE,
        k.PRESENCE,
        k.PRIVATE_ENCRYPTED,
        k.PRIVATE_CACHE,
        k.PRESENCE_CACHE,
        k.PRIVATE_ENCRYPTED_CACHE,
    }
    assert {x for x in k if x.is_presence} == {k.PRESENCE, k.PRESENCE_CACHE}
    assert {x for x in k if x.is_encrypted} == {k.PRIVATE_ENCRYPTED, k.PRIVATE_ENCRYPTED_CACHE}
    assert {x for x in k if x.allows_client_events} == {
        k.PRIVATE,
        k.PRESENCE,
        k.PRIVATE_CACHE,
        k.PRESENCE_CACHE,
    }


@pytest.mark.parametrize(
    "name", ["", "a b", "a/b", "é", "#other", "#server-to-user-", "x" * 201, None, 5]
)
def test_invalid_channel_names(name: object) -> None:
    """Empty, a character outside the set, a bare '#', over 200 characters, not a string."""
    assert p.channel_name_problem(name) is not None


def test_longest_channel_name_is_valid() -> None:
    """200 characters of the allowed set pass."""
    assert p.channel_name_problem("-_=@,.;aZ9" * 20) is None


def test_socket_ids() -> None:
    """Generated ids have the form the server libraries check (\\d+\\.\\d+)."""
    rng = random.Random(7)
    ids = {p.new_socket_id(rng.randrange) for _ in range(200)}
    assert len(ids) == 200
    assert all(p.is_valid_socket_id(i) for i in ids)
    assert p.new_socket_id(lambda n: 0) == "1000000000.1000000000"
    for bad in ("1.", ".1", "a.b", "1.2.3", "12", 1.2):
        assert not p.is_valid_socket_id(bad)


def test_error_codes_and_reconnect_ranges() -> None:
    """Each code has a message; 4000-4099 never, 4100-4199 back off, 4200-4299 at once."""
    assert set(p.ERROR_MESSAGES) == set(p.ErrorCode)
    assert p.reconnect_policy(p.ErrorCode.APP_NOT_FOUND) is p.Reconnect.NEVER
    assert p.reconnect_policy(p.ErrorCode.UNAUTHORIZED) is p.Reconnect.NEVER
    assert p.reconnect_policy(p.ErrorCode.OVER_CAPACITY) is p.Reconnect.BACKOFF
    assert p.reconnect_policy(p.ErrorCode.PONG_NOT_RECEIVED) is p.Reconnect.IMMEDIATELY
    assert p.reconnect_policy(4299) is p.Reconnect.IMMEDIATELY
    assert p.reconnect_policy(4300) is p.Reconnect.NEVER


def test_channel_data_and_user_data() -> None:
    """Presence members and signed-in users; a number user_id (Laravel's) becomes a string."""
    assert p.parse_channel_data('{"user_id":"7","user_info":{"n":1}}') == p.Member("7", {"n": 1})
    assert p.parse_channel_data('{"user_id":7}') == p.Member("7")
    for bad in (None, "", "[]", '{"user_id":""}', '{"user_id":true}', "{bad"):
        with pytest.raises(ProtocolError):
            p.parse_channel_data(bad)
    assert p.parse_user_data('{"id":"u-1","name":"A"}').id == "u-1"
    for bad in ("[]", '{"id":1}', '{"name":"A"}', "nope"):
        with pytest.raises(ProtocolError):
            p.parse_user_data(bad)


# -- server events as pusher-js reads them ---------------------------------------------


def test_connection_established_as_pusher_js_reads_it() -> None:
    """processHandshake needs data.socket_id and data.activity_timeout (seconds)."""
    event = decode_like_pusher_js(p.encode_connection_established("123.456", 120))
    assert event["event"] == "pusher:connection_established"
    assert event["data"] == {"socket_id": "123.456", "activity_timeout": 120}


def test_presence_subscription_succeeded_as_pusher_js_reads_it() -> None:
    """Members.onSubscription reads data.presence.hash and data.presence.count."""
    members = {"1": {"name": "Ada"}, "2": None}
    event = decode_like_pusher_js(p.encode_subscription_succeeded("presence-r", members))
    assert event == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "presence-r",
        "data": {"presence": {"ids": ["1", "2"], "hash": members, "count": 2}},
    }
    public = decode_like_pusher_js(p.encode_subscription_succeeded("news"))
    assert public["data"] == {}


def test_member_events_as_pusher_js_reads_them() -> None:
    """Members.addMember reads user_id and user_info; removeMember reads user_id."""
    added = decode_like_pusher_js(p.encode_member_added("presence-r", p.Member("1", {"n": 1})))
    assert added["event"] == "pusher_internal:member_added"
    assert added["data"] == {"user_id": "1", "user_info": {"n": 1}}
    removed = decode_like_pusher_js(p.encode_member_removed("presence-r", "1"))
    assert removed["event"] == "pusher_internal:member_removed"
    assert removed["data"] == {"user_id": "1"}


def test_other_server_events() -> None:
    """error (code, message), pong, ping, cache_miss, signin_success, subscription_count."""
    error = decode_like_pusher_js(p.encode_error("Application does not exist", 4001))
    assert error == {
        "event": "pusher:error",
        "channel": None,
        "data": {"code": 4001, "message": "Application does not exist"},
    }
    assert decode_like_pusher_js(p.encode_error("bad"))["data"] == {"code": None, "message": "bad"}
    assert decode_like_pusher_js(p.encode_pong())["event"] == "pusher:pong"
    assert decode_like_pusher_js(p.encode_ping())["event"] == "pusher:ping"
    miss = decode_like_pusher_js(p.encode_cache_miss("cache-a"))
    assert (miss["event"], miss["channel"]) == ("pusher:cache_miss", "cache-a")
    # UserFacade._onSigninSuccess JSON-parses data.user_data again.
    signin = decode_like_pusher_js(p.encode_signin_success('{"id":"u-1"}'))
    assert json.loads(signin["data"]["user_data"]) == {"id": "u-1"}
    count = decode_like_pusher_js(p.encode_subscription_count("news", 3))
    assert count["data"] == {"subscription_count": 3}


def test_events_on_channels() -> None:
    """An HTTP API event keeps its data string; a relayed client event its value and user_id."""
    api = decode_like_pusher_js(p.encode_event("ev", "news", '{"a":1}'))
    assert api == {"event": "ev", "channel": "news", "data": {"a": 1}}
    assert json.loads(p.encode_event("ev", "news", "plain"))["data"] == "plain"
    relayed = decode_like_pusher_js(p.encode_event("client-t", "presence-r", {"x": 1}, "u-1"))
    assert relayed == {
        "event": "client-t",
        "channel": "presence-r",
        "data": {"x": 1},
        "user_id": "u-1",
    }


def test_server_to_user_channel() -> None:
    """pusher-js listens on #server-to-user-{id} after sign-in."""
    assert p.server_to_user_channel("u-1") == "#server-to-user-u-1"
    assert p.channel_kind(p.server_to_user_channel("u-1")) is p.ChannelKind.SERVER_TO_USER


def test_presence_member_limits() -> None:
    """A user_id of 128 characters and channel_data of 1 KiB pass; one more is refused."""
    assert p.parse_channel_data(json.dumps({"user_id": "u" * 128})).user_id == "u" * 128
    with pytest.raises(ProtocolError, match="128"):
        p.parse_channel_data(json.dumps({"user_id": "u" * 129}))
    padding = p.MAX_PRESENCE_MEMBER - len(json.dumps({"user_id": "1", "user_info": ""}))
    at_limit = json.dumps({"user_id": "1", "user_info": "x" * padding})
    assert len(at_limit) == p.MAX_PRESENCE_MEMBER
    assert p.parse_channel_data(at_limit).user_id == "1"
    with pytest.raises(ProtocolError, match="1024"):
        p.parse_channel_data(json.dumps({"user_id": "1", "user_info": "x" * (padding + 1)}))


@pytest.mark.parametrize("user_id", ["auth0|123", "a b", "ü", "x" * 185])
def test_a_user_id_that_cannot_name_its_channel_is_refused(user_id: str) -> None:
    with pytest.raises(ProtocolError, match="user_data id must be"):
        p.parse_user_data(json.dumps({"id": user_id}))
    assert p.parse_user_data(json.dumps({"id": "x" * 184})).id == "x" * 184
