"""Room and channel name validation."""

from __future__ import annotations

import pytest

from hubbub.core.names import MAX_NAME_LENGTH, validate_name
from hubbub.errors import InvalidName


@pytest.mark.parametrize(
    "name", ["lobby", "chat:room1", "a", "user@example.com", "x" * 255, "A-b_c.d=e,f"]
)
def test_valid_names_pass(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("x" * (MAX_NAME_LENGTH + 1), "limit is 255"),
        ("has space", "contains ' '"),
        ("a/b", "contains '/'"),
        ("ünïcode", "contains 'ü'"),
        (":lead", "must not start with ':'"),
        ("tab\there", "contains '\\t'"),
    ],
)
def test_invalid_names_say_why(name: str, fragment: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_name(name)
    assert fragment in info.value.reason
    assert info.value.name == name


def test_kind_appears_in_the_message() -> None:
    with pytest.raises(InvalidName, match="channel name is empty"):
        validate_name("", kind="channel")


@pytest.mark.parametrize(
    "name",
    ["personal:#42", "dialog#42,43", "a/b", "x|y~z;+!", "$secret", "$chat:x", "a*b&c%d^e'f\"g"],
)
def test_channel_names_are_what_centrifugo_accepts(name: str) -> None:
    assert validate_name(name, kind="channel") == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("has space", "contains ' '"),
        ("ünïcode", "contains 'ü'"),
        (":lead", "must not start with ':'"),
        ("tab\there", "contains '\\t'"),
        ("x" * (MAX_NAME_LENGTH + 1), "limit is 255"),
    ],
)
def test_channel_names_are_printable_ascii(name: str, fragment: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_name(name, kind="channel")
    assert fragment in info.value.reason


def test_room_names_keep_their_url_safe_alphabet() -> None:
    with pytest.raises(InvalidName, match="contains '#'"):
        validate_name("a#b")
