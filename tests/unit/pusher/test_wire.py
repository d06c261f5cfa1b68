"""Pusher events as publications and back (dialects/pusher/wire.py), and where each app's
channels live (pushersettings.py)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from hubbub.config import Settings
from hubbub.core.channels import ChannelRules
from hubbub.core.types import ClientInfo, Publication
from hubbub.dialects.pusher.wire import (
    DEFAULT_EVENT,
    EVENT_TAG,
    PusherWire,
    api_data,
    client_data,
    event_data,
)
from hubbub.pushersettings import (
    CACHE_TTL,
    PusherApp,
    cache_options,
    implicit_namespaces,
    node_channel,
    pusher_channel,
)

APP = PusherApp(id="123", key="k", secret="s" * 16)
MAPPED = PusherApp(id="456", key="k2", secret="s" * 16, namespace="chat")


@pytest.mark.parametrize(
    "data",
    [
        '{"a": 1,  "b":[1 ,2]}',  # verbatim: spacing kept
        "[1,2]",
        "plain text",
        '"a JSON string"',
        "123",
        "",
        "{not json",
        '  {"x":1}',
        "ü€𝄞",
    ],
)
def test_an_api_data_string_comes_back_exactly(data: str) -> None:
    stored = api_data(data)
    json.loads(stored)  # always JSON text
    assert event_data(stored) == data


def test_objects_stay_objects_for_centrifugo_clients() -> None:
    assert json.loads(api_data('{"a":1}')) == {"a": 1}
    assert json.loads(api_data("hello")) == "hello"
    assert json.loads(api_data("5")) == "5"


@pytest.mark.parametrize("value", [{"a": 1}, [1], "text", 5, None, True])
def test_client_event_data_reaches_pusher_js_as_the_same_value(value: object) -> None:
    text = event_data(client_data(value))
    # pusher-js: JSON.parse of a string, the string itself when that fails.
    try:
        seen = json.loads(text)
    except ValueError:
        seen = text
    assert seen == value


def pub(data: str, event: str | None = None, info: ClientInfo | None = None) -> Publication:
    return Publication(data=data, info=info, tags={EVENT_TAG: event} if event else None)


def test_the_wire_writes_pusher_frames() -> None:
    wire = PusherWire(APP)
    channel = node_channel(APP, "news")
    frame = json.loads(wire.publication(channel, pub('{"a":1}', "up")))
    assert frame == {"event": "up", "channel": "news", "data": '{"a":1}'}
    frame = json.loads(wire.publication(channel, pub('"x"')))
    assert frame == {"event": DEFAULT_EVENT, "channel": "news", "data": "x"}
    presence = node_channel(APP, "presence-room")
    sender = ClientInfo(client="1.2", user="u1")
    frame = json.loads(wire.publication(presence, pub("1", "client-x", sender)))
    assert frame["user_id"] == "u1"
    # user_id only for client events on presence channels
    assert "user_id" not in json.loads(wire.publication(presence, pub("1", "server", sender)))
    private = node_channel(APP, "private-x")
    assert "user_id" not in json.loads(wire.publication(private, pub("1", "client-x", sender)))


def test_joins_and_leaves_only_on_presence_channels() -> None:
    wire = PusherWire(APP)
    info = ClientInfo(client="1.2", user="u1", chan_info='{"name":"A"}')
    added = json.loads(wire.join(node_channel(APP, "presence-r"), info) or "")
    assert added["event"] == "pusher_internal:member_added"
    assert json.loads(added["data"]) == {"user_id": "u1", "user_info": {"name": "A"}}
    removed = json.loads(wire.leave(node_channel(APP, "presence-r"), info) or "")
    assert json.loads(removed["data"]) == {"user_id": "u1"}
    assert wire.join(node_channel(APP, "private-r"), info) is None
    assert wire.join(node_channel(APP, "presence-r"), ClientInfo(client="c", user="")) is None


@pytest.mark.parametrize(
    "name",
    ["news", "private-a", "presence-b", "private-encrypted-c", "cache-d", "#server-to-user-7"],
)
@pytest.mark.parametrize("app", [APP, MAPPED])
def test_node_and_pusher_channels_are_inverse(app: PusherApp, name: str) -> None:
    channel = node_channel(app, name)
    assert pusher_channel(app, channel) == name
    authorized = name.startswith(("private-", "presence-", "#"))
    assert channel.startswith("$") == authorized
    other = MAPPED if app is APP else APP
    assert pusher_channel(other, channel) is None


def test_a_prefix_that_does_not_match_the_kind_is_not_the_apps() -> None:
    assert pusher_channel(APP, "pusher-123:private-a") is None  # private without "$"
    assert pusher_channel(APP, "$pusher-123:news") is None  # "$" on a public name
    assert pusher_channel(MAPPED, "chat:news") == "news"


def test_unmapped_apps_get_a_namespace_no_centrifugo_client_may_use() -> None:
    (ns,) = implicit_namespaces([APP, MAPPED], ["chat"])
    assert ns.name == "pusher-123"
    assert not any(
        getattr(ns, f"allow_{a}_for_{w}")
        for a in ("subscribe", "publish", "history", "presence")
        for w in ("client", "anonymous")
    )
    assert implicit_namespaces([APP], ["pusher-123"]) == []  # configured: the user's


def test_cache_channels_keep_their_last_event_whoever_publishes() -> None:
    settings = Settings(namespaces=[{"name": "chat", "history_size": 0}])
    adjust = cache_options([APP, MAPPED])
    rules = ChannelRules(
        settings.channel, [*settings.namespaces, *implicit_namespaces([APP], [])], adjust
    )
    for channel in ("pusher-123:cache-x", "$pusher-123:private-cache-y", "chat:cache-z"):
        options = rules.options(channel)
        assert options.history_size >= 1 and options.history_ttl >= CACHE_TTL, channel
    assert rules.options("pusher-123:news").history_size == 0
    assert rules.options("chat:news").history_size == 0
    assert rules.options("pusher-123:cache-a") is rules.options("pusher-123:cache-b")
    assert cache_options([]) is None


@pytest.mark.parametrize(
    "apps, namespaces, message",
    [
        ([{"id": "1", "key": "a"}, {"id": "1", "key": "b"}], [], "id '1' is used by two apps"),
        ([{"id": "1", "key": "a"}, {"id": "2", "key": "a"}], [], "key 'a' is used by two apps"),
        ([{"id": "1", "key": "a", "namespace": "nope"}], [], "which no [[namespaces]]"),
        (
            [
                {"id": "1", "key": "a", "namespace": "ns"},
                {"id": "2", "key": "b", "namespace": "ns"},
            ],
            ["ns"],
            "two apps map into namespace 'ns'",
        ),
        (
            [{"id": "1", "key": "a"}, {"id": "2", "key": "b", "namespace": "pusher-1"}],
            ["pusher-1"],
            "app 1's own",
        ),
        ([{"id": "x1", "key": "a"}], [], "id"),
        ([{"id": "1", "key": "a", "secret": "short"}], [], "secret"),
    ],
)
def test_bad_apps_are_refused(
    apps: list[dict[str, str]], namespaces: list[str], message: str
) -> None:
    full = [{"secret": "s" * 16, **app} for app in apps]
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings(pusher_apps=full, namespaces=[{"name": n} for n in namespaces])
