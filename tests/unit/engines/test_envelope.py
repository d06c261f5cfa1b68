"""Publications between nodes (engines/envelope.py): this version's payloads and frame kinds,
and what nodes of the version before sent."""

from __future__ import annotations

import json

import pytest

from hubbub.core.types import FRAME_BINARY, FRAME_STRING, FRAME_TEXT, ClientInfo, Publication
from hubbub.dialects.raw import RAW
from hubbub.engines.envelope import frame_from_text, frame_text, pub_from_obj, pub_payload


def test_a_payload_keeps_verbatim_data_and_every_field() -> None:
    pub = Publication('{"a":  1,\n "b": [ ]}', 0, ClientInfo("c", "u", '{"n":1}'), {"k": "v"}, 5)
    back = pub_from_obj(json.loads(pub_payload(pub)), 7)
    assert (back.data, back.offset, back.info, back.tags, back.time_ms) == (
        pub.data,
        7,
        pub.info,
        {"k": "v"},
        5,
    )


def test_the_delta_mark_travels_in_the_payload() -> None:
    """Marked: ``"delta": true`` in the payload (a node of the version before reads the keys it
    knows and delivers the publication in full); unmarked: no key, as that version wrote."""
    marked = Publication("[1]", delta=True)
    payload = json.loads(pub_payload(marked))
    assert payload == {"d": "[1]", "delta": True}
    assert pub_from_obj(payload, 4).delta is True
    assert "delta" not in json.loads(pub_payload(Publication("[1]")))
    assert pub_from_obj({"d": "[1]"}, 4).delta is False
    assert pub_from_obj({"d": "[1]", "delta": "yes"}, 4).delta is False


@pytest.mark.parametrize("kind", [FRAME_TEXT, FRAME_STRING, FRAME_BINARY])
def test_frame_kinds_round_trip(kind: str) -> None:
    text = frame_text(kind)
    assert frame_from_text(None if text is None else json.loads(text)) == kind


@pytest.mark.parametrize(
    ("payload", "x", "frame"),
    [
        ({"data": "hello"}, "t:hello", "hello"),  # text that was not JSON: a JSON string
        ({"data": {"a": 1}}, 't:{"a":  1}', '{"a":1}'),  # JSON text, re-encoded back then
        ({"data": {"base64": "AQI="}}, "b:AQI=", b"\x01\x02"),
    ],
    ids=["text", "json-text", "binary"],
)
def test_what_the_version_before_sent_reaches_raw_members(
    payload: dict[str, object], x: str, frame: str | bytes
) -> None:
    """Issue 12 nodes sent the frame itself ("t:"/"b:") beside the data as a JSON value: a
    rolling upgrade still gives raw members the frame type and (but for re-encoded JSON text)
    the bytes."""
    pub = pub_from_obj(payload, 3, frame_from_text(x))
    assert RAW.publication("rooms:r", pub) == frame


@pytest.mark.parametrize(
    ("offset", "extra"),
    [
        (2**63, {}),  # past every store's offsets
        (-1, {}),
        (1, {"tags": ["team", "eng"]}),
        (1, {"tags": {"n": 1}}),
    ],
    ids=["huge-offset", "negative-offset", "tags-list", "tag-number"],
)
def test_what_no_node_sends_is_not_a_publication(offset: int, extra: dict[str, object]) -> None:
    """A message on an engine's channels that no node could have sent (anyone who may
    PUBLISH or NOTIFY can send one) is refused with ValueError, which the engines log and
    drop: an offset outside the stores' range would stand as the channel's newest on every
    node (blinding its gap detection, and making its positioned subscribers resubscribe),
    and tags that are not an object of strings would break the tags filters."""
    with pytest.raises(ValueError):
        pub_from_obj({"d": '"x"', **extra}, offset)
