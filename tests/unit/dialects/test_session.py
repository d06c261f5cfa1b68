"""The session state machine."""

from __future__ import annotations

import pytest

from hubbub.core.codes import ErrorCode
from hubbub.dialects.centrifuge.session import Session, State
from hubbub.errors import ClientError, DisconnectError


def test_commands_before_connect_disconnect_with_bad_request() -> None:
    s = Session("c1", channel_limit=2)
    with pytest.raises(DisconnectError) as info:
        s.require_connected("subscribe")
    assert info.value.code == 3501


def test_second_connect_disconnects() -> None:
    s = Session("c1", channel_limit=2)
    s.connected("ada", None)
    assert s.state is State.CONNECTED
    with pytest.raises(DisconnectError):
        s.check_connect()


def test_duplicate_and_over_limit_subscriptions() -> None:
    s = Session("c1", channel_limit=2)
    s.connected("", None)
    s.begin_subscribe("a")
    with pytest.raises(ClientError) as dup:
        s.begin_subscribe("a")
    assert dup.value.code == ErrorCode.ALREADY_SUBSCRIBED
    s.begin_subscribe("b")
    with pytest.raises(ClientError) as limit:
        s.begin_subscribe("c")
    assert limit.value.code == ErrorCode.LIMIT_EXCEEDED


def test_subscribing_is_not_subscribed_until_confirmed() -> None:
    s = Session("c1", channel_limit=5)
    s.connected("", None)
    s.begin_subscribe("a")
    assert not s.is_subscribed("a")
    s.subscribed("a")
    assert s.is_subscribed("a")
    s.begin_subscribe("b")
    assert s.close() == ["a"]  # only confirmed subscriptions need cleaning up
    assert s.state is State.CLOSED
