"""Answering a peer's close frame."""

from __future__ import annotations

import pytest

from hubbub.core.closecode import NO_STATUS, CloseCode, close_reply, is_valid_wire_code


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_valid_codes_are_echoed(code: int) -> None:
    assert is_valid_wire_code(code)
    assert close_reply(code) == code


@pytest.mark.parametrize(
    "code", [1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_invalid_codes_get_protocol_error(code: int) -> None:
    assert not is_valid_wire_code(code)
    assert close_reply(code) == CloseCode.PROTOCOL_ERROR


def test_close_without_status_gets_normal() -> None:
    assert close_reply(NO_STATUS) == CloseCode.NORMAL
