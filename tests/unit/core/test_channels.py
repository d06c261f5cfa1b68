"""Channel name rules and namespace options."""

from __future__ import annotations

import pytest

from hubbub.config import ChannelOptions, Namespace
from hubbub.core.channels import ChannelRules, allowed, may_subscribe, restricted, room_channel
from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError


def rules() -> ChannelRules:
    return ChannelRules(ChannelOptions(), [Namespace(name="chat", history_size=10, history_ttl=60)])


def test_namespace_options_and_defaults() -> None:
    r = rules()
    assert r.options("chat:room1").history_size == 10
    assert r.options("lobby").history_size == 0
    assert r.options(room_channel("lobby")) is r.default  # rooms always exists


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        ("nope:x", ErrorCode.UNKNOWN_CHANNEL),
        ("bad name", ErrorCode.BAD_REQUEST),
        ("", ErrorCode.BAD_REQUEST),
    ],
)
def test_unknown_namespace_and_bad_names(channel: str, code: int) -> None:
    with pytest.raises(ClientError) as info:
        rules().options(channel)
    assert info.value.code == code


def test_permissions_depend_on_anonymity() -> None:
    opts = ChannelOptions(allow_publish_for_anonymous=False)
    assert allowed(opts, "publish", "ada")
    assert not allowed(opts, "publish", "")
    assert allowed(opts, "subscribe", "")


def test_the_private_prefix_is_not_part_of_the_namespace() -> None:
    r = rules()
    assert r.options("$chat:x").history_size == 10
    assert r.options("$lobby").history_size == 0
    with pytest.raises(ClientError) as info:
        r.options("$nope:x")
    assert info.value.code == ErrorCode.UNKNOWN_CHANNEL


LIMITED = ChannelOptions(allow_user_limited_channels=True, allow_subscribe_for_client=False)


@pytest.mark.parametrize(
    ("channel", "options", "user", "may"),
    [
        ("news", ChannelOptions(), "ada", True),
        ("news", ChannelOptions(allow_subscribe_for_client=False), "ada", False),
        ("$news", ChannelOptions(), "ada", False),  # private: a subscription token only
        ("dm:chat#alice,bob", LIMITED, "alice", True),  # listed: the flags are not asked
        ("dm:chat#alice,bob", LIMITED, "bob", True),
        ("dm:chat#alice,bob", LIMITED, "carol", False),
        ("dm:chat#alice,bob", LIMITED, "", False),  # anonymous is never listed
        ("dm:chat#alice,bob", LIMITED, "alice,bob", False),
        ("personal:#42", LIMITED, "42", True),
        ("a#b#c", LIMITED, "c", True),  # the users follow the last '#'
        ("a#b#c", LIMITED, "b", False),
        ("dm:chat#alice", ChannelOptions(), "alice", False),  # not allowed in the namespace
    ],
)
def test_who_may_subscribe_without_a_token(
    channel: str, options: ChannelOptions, user: str, may: bool
) -> None:
    assert may_subscribe(channel, options, user) is may


@pytest.mark.parametrize(
    ("channel", "is_restricted"),
    [("news", False), ("$news", True), ("dm:a#b", True), ("chat:x$y", False)],
)
def test_private_and_user_limited_channels_are_restricted(
    channel: str, is_restricted: bool
) -> None:
    assert restricted(channel) is is_restricted
