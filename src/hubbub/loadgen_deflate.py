"""The load generator's permessage-deflate (RFC 7692) client side (:mod:`hubbub.loadgen`): the
JSON dialect offering the extension as a browser does and inflating what comes compressed.

Each connection has its own inflater with a 15-bit window, kept from message to message, so it
reads both a server that keeps its compression context and one that granted
``server_no_context_takeover`` (a context-free message refers to nothing before it). The
generator's own frames go uncompressed (RFC 7692 lets each message choose). An answer without
the extension fails the handshake: a "deflate" figure is never a plain one by mistake.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from hubbub.loadgen import HubbubDialect

#: What browsers offer.
BROWSER_OFFER: Final = "permessage-deflate; client_max_window_bits"
#: The empty stored block a flushed message ends with, which the sender leaves out.
_TAIL: Final = b"\x00\x00\xff\xff"


class DeflateHubbubDialect(HubbubDialect):
    """:class:`hubbub.loadgen.HubbubDialect` with permessage-deflate; one instance per
    connection (the inflater is the connection's)."""

    name = "hubbub+deflate"

    def __init__(self, token: str = "") -> None:
        super().__init__(token)
        self.headers: Sequence[tuple[str, str]] = (("Sec-WebSocket-Extensions", BROWSER_OFFER),)
        self._inflater: zlib._Decompress | None = None

    def check_handshake(self, response: bytes) -> str | None:
        if b"permessage-deflate" not in response.lower():
            return "the server did not accept permessage-deflate"
        return super().check_handshake(response)

    def inflate(self, payload: bytes) -> bytes:
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-15)
        return inflater.decompress(payload + _TAIL)
