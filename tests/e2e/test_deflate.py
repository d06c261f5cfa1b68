"""permessage-deflate as negotiated by ``hubbub serve``: the server's window is bounded
(``compression_window_bits``, 12 by default) whatever the client offers, and the frames it
sends keep to that window, on the echo path (``send``) and the fan-out path (``post``)."""

from __future__ import annotations

import json
import os
from base64 import b64encode

import pytest

from tests.conftest import StartServer
from tests.support.deflatepeer import BROWSER_OFFER, DeflatePeer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


def far_repeat() -> tuple[str, str]:
    """Two messages, the second repeating text 8 KiB back in the first: a server compressing
    with a window over 4 KiB refers back to it, which a 12-bit inflater refuses."""
    block = b64encode(os.urandom(3072)).decode()  # 4 KiB of incompressible text
    return block + b64encode(os.urandom(3072)).decode(), block


async def test_a_browser_offer_gets_a_12_bit_window_on_the_echo_path(
    server: ServerProcess,
) -> None:
    peer = await DeflatePeer.connect("127.0.0.1", server.port, "/", BROWSER_OFFER)
    try:
        assert (
            peer.extension
            == "permessage-deflate; server_max_window_bits=12; server_no_context_takeover"
        )
        for message in far_repeat():  # inflated with a 12-bit window: a wider one fails
            peer.send_text(message)
            assert await peer.recv_text() == message
    finally:
        peer.close()


async def test_pushes_keep_to_the_window_on_the_fan_out_path(server: ServerProcess) -> None:
    peer = await DeflatePeer.connect(
        "127.0.0.1", server.port, "/connection/websocket", BROWSER_OFFER
    )
    try:
        assert peer.window_bits == 12
        peer.send_text('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"c"}}')
        seen: set[int] = set()
        while seen != {1, 2}:
            seen |= {json.loads(line)["id"] for line in (await peer.recv_text()).split("\n")}
        first, second = far_repeat()
        for n, text in enumerate((first, second), start=3):
            peer.send_text(json.dumps({"id": n, "publish": {"channel": "c", "data": text}}))
        pushed: list[str] = []
        while len(pushed) < 2:
            for line in (await peer.recv_text()).split("\n"):
                reply = json.loads(line)
                if "pub" in reply.get("push", {}):
                    pushed.append(reply["push"]["pub"]["data"])
        assert pushed == [first, second]
    finally:
        peer.close()


async def test_a_smaller_window_and_no_context_takeover_are_granted(
    server: ServerProcess,
) -> None:
    offer = "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"
    peer = await DeflatePeer.connect("127.0.0.1", server.port, "/", offer)
    try:
        assert peer.extension == (
            "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"
        )
        for _ in range(3):  # each message inflated by a fresh 10-bit inflater
            peer.send_text("the same message " * 20)
            assert await peer.recv_text() == "the same message " * 20
    finally:
        peer.close()


async def test_an_offer_zlib_cannot_honour_falls_back_to_the_next(server: ServerProcess) -> None:
    for offer, expected in [
        ("permessage-deflate; server_max_window_bits=8", None),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            "permessage-deflate; server_max_window_bits=12; server_no_context_takeover",
        ),
    ]:
        peer = await DeflatePeer.connect("127.0.0.1", server.port, "/", offer)
        try:
            assert peer.extension == expected
            peer.send_text("hello")
            assert await peer.recv_text() == "hello"
        finally:
            peer.close()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "compression_window_bits = 15\n",
            "permessage-deflate; server_max_window_bits=15; server_no_context_takeover",
        ),
        ("compression = false\n", None),
    ],
)
async def test_the_window_follows_the_settings(
    start_server: StartServer, config: str, expected: str | None
) -> None:
    server = start_server(config=config)
    peer = await DeflatePeer.connect("127.0.0.1", server.port, "/", BROWSER_OFFER)
    try:
        assert peer.extension == expected
        for message in far_repeat():
            peer.send_text(message)
            assert await peer.recv_text() == message
    finally:
        peer.close()
