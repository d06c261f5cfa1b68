"""The JSON codec of the client protocol, on bytes and strings."""

from __future__ import annotations

import json

import pytest

from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError


def test_several_commands_in_one_frame() -> None:
    frame = b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"a"}}\n'
    cmds = p.decode_frame(frame)
    assert [(c.id, c.method) for c in cmds] == [(1, "connect"), (2, "subscribe")]
    assert cmds[1].params == {"channel": "a"}


def test_empty_command_is_a_pong_and_unknown_method_is_flagged() -> None:
    pong, unknown = p.decode_frame('{}\n{"id":3,"fly":{}}')
    assert (pong.method, pong.id) == ("", 0)
    assert (unknown.method, unknown.id) == (None, 3)


@pytest.mark.parametrize(
    "frame",
    [b"not json", b"[1,2]", b'{"id":-1,"ping":{}}', b'{"id":"7","ping":{}}', b"\xff\xfe", b"\n\n"],
)
def test_garbage_is_a_protocol_violation(frame: bytes) -> None:
    with pytest.raises(p.ProtocolViolation):
        p.decode_frame(frame)


def test_params_that_are_not_an_object_are_a_bad_command() -> None:
    (cmd,) = p.decode_frame('{"id":4,"subscribe":"chat"}')
    assert cmd.problem == "subscribe must be an object"


def test_field_readers_raise_bad_request() -> None:
    params = {"channel": 5, "offset": "12", "recover": "yes"}
    with pytest.raises(ClientError) as info:
        p.require_str(params, "channel")
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert p.optional_int(params, "offset") == 12  # 64-bit ints may come as strings
    with pytest.raises(ClientError):
        p.optional_bool(params, "recover")
    with pytest.raises(ClientError, match="data is required"):
        p.data_text({}, required=True)


def test_data_is_compact_single_line_json() -> None:
    text = p.data_text({"data": {"text": "line1\nline2", "n": [1, 2]}})
    assert "\n" not in text
    assert json.loads(text) == {"text": "line1\nline2", "n": [1, 2]}


def test_replies_and_pushes_are_valid_json() -> None:
    assert json.loads(p.reply(7, "publish")) == {"id": 7, "publish": {}}
    err = json.loads(p.error_reply(8, ClientError(ErrorCode.INTERNAL)))
    assert err == {
        "id": 8,
        "error": {"code": 100, "message": "internal server error", "temporary": True},
    }
    push = json.loads(p.push("chat:a", "pub", '{"data":{"x":1},"offset":3}'))
    assert push == {"push": {"channel": "chat:a", "pub": {"data": {"x": 1}, "offset": 3}}}
    assert json.loads(p.push("", "disconnect", '{"code":3001}')) == {
        "push": {"disconnect": {"code": 3001}}
    }


@pytest.mark.parametrize(
    "data", ["NaN", "Infinity", "-Infinity", "1e999", "[-1e400]", '"\\ud800"', '{"\\udfff":1}']
)
def test_commands_holding_what_json_cannot_are_answered_with_107(data: str) -> None:
    """RFC 8259 only: the command is kept (so it can be answered), its params are not."""
    (cmd,) = p.decode_frame(f'{{"id":7,"publish":{{"channel":"c","data":{data}}}}}')
    assert (cmd.id, cmd.method, dict(cmd.params)) == (7, "publish", {})
    assert cmd.problem is not None and "RFC 8259" in cmd.problem


def test_strict_loads_and_dumps_refuse_what_json_cannot_hold() -> None:
    with pytest.raises(p.NotJSON, match="NaN"):
        p.loads(b'{"a": NaN}')
    with pytest.raises(ValueError):
        p.dumps(float("nan"))
    assert p.loads('{"big": 1e308, "n": 18446744073709551616}')["big"] == 1e308
