"""The HTTP API's bodies and queries: what the ``pusher`` library sends parses into typed
requests; what Pusher refuses is refused with its status (400, 413)."""

from __future__ import annotations

import json
from typing import Any

import pusher
import pytest

from hubbub.dialects.pusher import httpapi as h
from hubbub.dialects.pusher.errors import ApiError


@pytest.fixture
def client() -> pusher.Pusher:
    """The library's client; requests are built, never sent."""
    return pusher.Pusher(app_id="1", key="k", secret="s", host="127.0.0.1", port=9, ssl=False)


def _body(client: pusher.Pusher, method: str, *args: Any) -> bytes:
    request = getattr(client._pusher_client, method).make_request(*args)
    return request.body  # type: ignore[no-any-return]


def _status(body: dict[str, Any] | bytes, parse: Any = h.parse_trigger) -> int:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ApiError) as raised:
        parse(raw)
    return raised.value.status


def test_trigger_from_the_library(client: pusher.Pusher) -> None:
    """trigger(channels, name, data, socket_id): data arrives as the string the library made."""
    body = _body(client, "trigger", ["a", "presence-b"], "ev", {"x": 1}, "1.2")
    assert h.parse_trigger(body) == h.Trigger("ev", '{"x": 1}', ("a", "presence-b"), "1.2")


def test_trigger_with_one_channel_and_info() -> None:
    """'channel' instead of 'channels'; info as a comma-separated list."""
    body = {"name": "ev", "data": "d", "channel": "a", "info": "subscription_count,user_count"}
    trigger = h.parse_trigger(json.dumps(body).encode())
    assert trigger.channels == ("a",)
    assert trigger.info == {"subscription_count", "user_count"}


def test_trigger_repeated_channel_is_published_once() -> None:
    """A channel named twice gets the event once."""
    body = {"name": "ev", "data": "d", "channels": ["a", "b", "a"]}
    assert h.parse_trigger(json.dumps(body).encode()).channels == ("a", "b")


def test_trigger_limits() -> None:
    """100 channels and 10 KiB of data pass; 101 channels is 400, 10 KiB + 1 byte is 413."""
    channels = [f"c{i}" for i in range(100)]
    ok = {"name": "ev", "data": "x" * 10240, "channels": channels}
    assert len(h.parse_trigger(json.dumps(ok).encode()).channels) == 100
    assert _status({**ok, "channels": [*channels, "c100"]}) == 400
    assert _status({**ok, "data": "x" * 10241}) == 413
    # The limit is on UTF-8 bytes, not characters.
    assert _status({**ok, "data": "é" * 5121}) == 413


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"\xff",
        {"data": "d", "channel": "a"},
        {"name": "", "data": "d", "channel": "a"},
        {"name": "e" * 201, "data": "d", "channel": "a"},
        {"name": "ev", "channel": "a"},
        {"name": "ev", "data": {"not": "a string"}, "channel": "a"},
        {"name": "ev", "data": "d"},
        {"name": "ev", "data": "d", "channel": "a", "channels": ["b"]},
        {"name": "ev", "data": "d", "channels": []},
        {"name": "ev", "data": "d", "channels": "a"},
        {"name": "ev", "data": "d", "channel": "bad name"},
        {"name": "ev", "data": "d", "channel": "a", "socket_id": "nope"},
        {"name": "ev", "data": "d", "channel": "a", "info": "occupied_for_ever"},
    ],
)
def test_trigger_refused_with_400(body: dict[str, Any] | bytes) -> None:
    """Malformed, a missing or too long name, data not a string, channel(s) wrong, a bad
    socket id, an unknown info attribute."""
    assert _status(body) == 400


def test_batch_from_the_library(client: pusher.Pusher) -> None:
    """trigger_batch: one channel per event, socket_id kept per event."""
    batch = [
        {"channel": "a", "name": "e1", "data": {"n": 1}},
        {"channel": "private-b", "name": "e2", "data": "two", "socket_id": "3.4"},
    ]
    events = h.parse_batch(_body(client, "trigger_batch", batch))
    assert events == (
        h.Trigger("e1", '{"n": 1}', ("a",)),
        h.Trigger("e2", "two", ("private-b",), "3.4"),
    )


def test_batch_limits() -> None:
    """10 events pass, 11 are 400; one bad event refuses the batch; channels is refused."""
    event = {"channel": "a", "name": "e", "data": "d"}
    assert len(h.parse_batch(json.dumps({"batch": [event] * 10}).encode())) == 10
    assert _status({"batch": [event] * 11}, h.parse_batch) == 400
    assert _status({"batch": [event, {**event, "data": "x" * 10241}]}, h.parse_batch) == 413
    assert _status({"batch": [{**event, "channels": ["a"]}]}, h.parse_batch) == 400
    for bad in ({"batch": []}, {"batch": "x"}, {}, {"batch": [1]}):
        assert _status(bad, h.parse_batch) == 400


def test_channels_query() -> None:
    """filter_by_prefix and info; user_count only when the prefix is presence-."""
    query = h.parse_channels_query({"filter_by_prefix": "presence-", "info": "user_count"})
    assert query == h.ChannelsQuery("presence-", frozenset({"user_count"}))
    assert h.parse_channels_query({}) == h.ChannelsQuery()
    assert h.parse_channels_query({"info": "subscription_count"}).info == {"subscription_count"}
    for params in ({"info": "user_count"}, {"filter_by_prefix": "private-", "info": "user_count"}):
        with pytest.raises(ApiError) as raised:
            h.parse_channels_query(params)
        assert raised.value.status == 400


def test_channel_query_and_users() -> None:
    """One channel: user_count only on presence; users only of presence channels."""
    assert h.parse_channel_query("presence-a", {"info": "user_count"}).info == {"user_count"}
    assert h.parse_channel_query("a", {"info": "subscription_count"}) == h.ChannelQuery(
        "a", frozenset({"subscription_count"})
    )
    assert h.check_users_channel("presence-cache-a") == "presence-cache-a"
    refused = [
        lambda: h.parse_channel_query("a", {"info": "user_count"}),
        lambda: h.parse_channel_query("bad name", {}),
        lambda: h.check_users_channel("private-a"),
        lambda: h.check_user_id("bad id"),
        lambda: h.check_user_id(""),
    ]
    for call in refused:
        with pytest.raises(ApiError):
            call()
    assert h.check_user_id("u-1@example.com") == "u-1@example.com"
