"""Which Centrifugo codec a handshake gets: the one of the subprotocol aiohttp announces."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from hubbub.server.app import _offered_codec


@pytest.mark.parametrize(
    ("headers", "codec"),
    [
        ([], "json"),
        ([("Sec-WebSocket-Protocol", "centrifuge-protobuf")], "protobuf"),
        ([("Sec-WebSocket-Protocol", "other, centrifuge-protobuf")], "protobuf"),
        ([("Sec-WebSocket-Protocol", "centrifuge-json, centrifuge-protobuf")], "json"),
        # Two headers: aiohttp reads the first only, so hubbub must too (else it would speak
        # Protobuf on a connection whose handshake announced nothing).
        (
            [("Sec-WebSocket-Protocol", "foo"), ("Sec-WebSocket-Protocol", "centrifuge-protobuf")],
            "json",
        ),
    ],
)
def test_the_codec_follows_the_first_header(headers: list[tuple[str, str]], codec: str) -> None:
    request = make_mocked_request("GET", "/connection/websocket", headers=CIMultiDict(headers))
    assert _offered_codec(request).name == codec
