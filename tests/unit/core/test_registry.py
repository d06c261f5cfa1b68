"""The pure subscription registry."""

from __future__ import annotations

from hubbub.core.registry import Registry


def test_first_subscriber_and_last_unsubscriber_are_reported() -> None:
    """subscribe says 'first', unsubscribe says 'now empty'."""
    reg: Registry[str] = Registry()
    assert reg.subscribe("ch", "a") is True
    assert reg.subscribe("ch", "b") is False
    assert reg.unsubscribe("ch", "a") is False
    assert reg.unsubscribe("ch", "b") is True
    assert list(reg.channels()) == []


def test_subscribers_in_join_order() -> None:
    """Members come back in the order they joined, even after a member leaves and rejoins."""
    reg: Registry[str] = Registry()
    for member in "cab":
        reg.subscribe("ch", member)
    assert list(reg.subscribers("ch")) == ["c", "a", "b"]
    reg.unsubscribe("ch", "c")
    reg.subscribe("ch", "c")
    assert list(reg.subscribers("ch")) == ["a", "b", "c"]


def test_duplicate_subscribe_and_unknown_unsubscribe_change_nothing() -> None:
    """Idempotent operations keep the counts right."""
    reg: Registry[str] = Registry()
    reg.subscribe("ch", "a")
    assert reg.subscribe("ch", "a") is False
    assert reg.subscription_count() == 1
    assert reg.unsubscribe("ch", "zzz") is False
    assert reg.unsubscribe("nope", "a") is False
    assert reg.is_subscribed("ch", "a")


def test_remove_member_reports_emptied_channels() -> None:
    """Removing a member takes it out everywhere and lists channels left empty."""
    reg: Registry[str] = Registry()
    reg.subscribe("x", "a")
    reg.subscribe("y", "a")
    reg.subscribe("y", "b")
    assert reg.channels_of("a") == {"x", "y"}
    assert reg.remove("a") == ["x"]
    assert reg.channels_of("a") == frozenset()
    assert list(reg.subscribers("y")) == ["b"]
    assert (reg.channel_count(), reg.member_count(), reg.subscription_count()) == (1, 1, 1)
    assert reg.remove("a") == []


def test_unknown_channel_has_no_subscribers() -> None:
    reg: Registry[str] = Registry()
    assert list(reg.subscribers("none")) == []
    assert not reg.is_subscribed("none", "a")
