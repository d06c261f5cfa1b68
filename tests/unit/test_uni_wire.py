"""The unidirectional JSON format (uniwire) and the SSE event ids (eventids)."""

from __future__ import annotations

import json

import pytest

from hubbub.core import messages as m
from hubbub.core.types import Publication
from hubbub.dialects.centrifuge.eventids import (
    MAX_CHANNELS,
    SseFraming,
    line_framing,
    parse_event_id,
)
from hubbub.dialects.centrifuge.uniwire import (
    UNI_JSON,
    BadConnect,
    Positioned,
    connect_frame,
    disconnect_push,
)
from hubbub.errors import DisconnectError


def _connect_result(**subs: m.SubscribeResult) -> m.ConnectResult:
    return m.ConnectResult(client="c1", version="1.0", subs=subs, ping=25, pong=True)


def test_connect_push_lists_subs_without_pong() -> None:
    result = _connect_result(
        news=m.SubscribeResult(recoverable=True, positioned=True, epoch="e", offset=4),
        plain=m.SubscribeResult(),
    )
    push = json.loads(UNI_JSON.reply(m.Reply(1, result)))
    assert push == {
        "connect": {
            "client": "c1",
            "version": "1.0",
            "ping": 25,
            "subs": {
                "news": {"recoverable": True, "positioned": True, "epoch": "e", "offset": 4},
                "plain": {},
            },
        }
    }


@pytest.mark.parametrize(
    ("error", "code"), [(109, 3005), (110, 3005), (111, 3013), (103, 3507), (101, 3004)]
)
def test_error_reply_is_a_disconnect(error: int, code: int) -> None:
    with pytest.raises(DisconnectError) as info:
        UNI_JSON.reply(m.Reply(1, error=m.Error(error, "x")))
    assert info.value.code == code


def test_pushes_are_bare() -> None:
    pub = Publication(data='{"a":1}', offset=7)
    assert json.loads(UNI_JSON.publication("ch", pub)) == {
        "channel": "ch",
        "pub": {"data": {"a": 1}, "offset": 7},
    }
    text = UNI_JSON.push(m.Unsubscribed("ch", 2000, "gone"))
    assert json.loads(text) == {"channel": "ch", "unsubscribe": {"code": 2000, "reason": "gone"}}
    assert json.loads(disconnect_push(3001, "shutdown")) == {
        "disconnect": {"code": 3001, "reason": "shutdown"}
    }
    assert UNI_JSON.ping == "{}"


@pytest.mark.parametrize("text", ["{x", "[1]", '"s"', '{"token": 1}', b"\xff"])
def test_bad_connect_requests(text: str | bytes) -> None:
    with pytest.raises(BadConnect):
        connect_frame(text)


@pytest.mark.parametrize("text", ["", "null", "{}"])
def test_empty_connect_requests(text: str) -> None:
    frame = connect_frame(text)
    assert frame.request == m.Connect()


def test_sse_ids_track_every_channel() -> None:
    framing = SseFraming()
    connect = UNI_JSON.reply(
        m.Reply(
            1,
            _connect_result(
                a=m.SubscribeResult(recoverable=True, positioned=True, epoch="x", offset=2),
                b=m.SubscribeResult(recoverable=True, positioned=True, epoch="y", offset=5),
                c=m.SubscribeResult(),
            ),
        )
    )
    assert isinstance(connect, Positioned)
    event = framing(connect).decode()
    assert event.startswith('id: {"a":[2,"x"],"b":[5,"y"]}\ndata: {"connect":')
    event = framing(UNI_JSON.publication("a", Publication(data="1", offset=3))).decode()
    assert event.startswith('id: {"a":[3,"x"],"b":[5,"y"]}\ndata: ')
    assert event.endswith("\n\n")
    # no position, no id: the browser keeps the last one
    assert framing(UNI_JSON.publication("c", Publication(data="1"))) == (
        b'data: {"channel":"c","pub":{"data":1}}\n\n'
    )
    event = framing(UNI_JSON.push(m.Unsubscribed("b", 2000, "x"))).decode()
    assert event.startswith('id: {"a":[3,"x"]}\n')
    assert parse_event_id('{"a":[3,"x"]}') == {"a": (3, "x")}


def test_sse_id_is_empty_beyond_the_bound() -> None:
    framing = SseFraming()
    subs = {
        f"ch{i}": m.SubscribeResult(recoverable=True, positioned=True, epoch="e")
        for i in range(MAX_CHANNELS + 1)
    }
    event = framing(UNI_JSON.reply(m.Reply(1, _connect_result(**subs)))).decode()
    assert event.startswith("id: \ndata: ")


@pytest.mark.parametrize(
    "header",
    ["", "{", "[]", '{"a":[1]}', '{"a":[-1,"e"]}', '{"a":["1","e"]}', '{"a":[1,""]}', "x" * 5000],
)
def test_bad_last_event_ids_give_no_positions(header: str) -> None:
    assert parse_event_id(header) == {}


def test_line_framing() -> None:
    assert line_framing("{}") == b"{}\n"


def test_a_message_posted_to_many_streams_is_framed_once() -> None:
    message = UNI_JSON.publication("c", Publication(data='{"big":1}'))
    assert line_framing(message) is line_framing(message)
    first, second = SseFraming(), SseFraming()
    assert first(message) is second(message)
    other = UNI_JSON.publication("c", Publication(data='{"big":2}'))
    assert line_framing(other) == b'{"channel":"c","pub":{"data":{"big":2}}}\n'
