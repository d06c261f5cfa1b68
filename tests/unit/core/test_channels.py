"""Channel name rules and namespace options."""

from __future__ import annotations

import pytest

from hubbub.config import ChannelOptions, Namespace
from hubbub.core.channels import ChannelRules, allowed, room_channel
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
