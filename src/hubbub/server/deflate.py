"""permessage-deflate (RFC 7692) negotiated by hubbub: context-free, so that a message is
compressed once for every connection, with bounded memory.

aiohttp accepts a client's offer with the server's window at whatever the client asked for
(15 bits when it asked nothing, which is what browsers do) and compresses for each connection
with a compressor of its own (zlib's default memory level 8: 262 KiB each). hubbub negotiates
itself:

- ``server_no_context_takeover`` is in every response, asked for or not: RFC 7692 §7.1.1.1
  lets a server include it "even if the extension negotiation offer being accepted ... didn't
  include" it. Clients accept it: Chromium (tests/browser), the ``websockets`` client (it
  refuses a response only for *leaving it out* when it asked for it) and aiohttp's (whose
  inflater keeps one stream, which context-free messages do not disturb). The server
  then compresses each message on its own, so its compressed frame is the same for every
  connection of one window and is built once (:class:`hubbub.server.sending.DeflateFramer`).
- ``server_max_window_bits`` is always sent, at most ``max_window_bits`` (the
  ``compression_window_bits`` setting, 12 by default) and at most what the client asked for.
  RFC 7692 §7.1.2.1 lets a server include it in every response.
- ``client_max_window_bits`` is not sent: the messages from the client are inflated by aiohttp,
  whose inflater always has a 15-bit window, so a smaller client window would cost
  compression and save nothing here.
- An offer that asks for ``server_max_window_bits=8`` (zlib cannot produce such a stream), or
  that is malformed (unknown or repeated parameter, bad value), is declined, and the next offer
  is tried; with none left the connection is made without compression (RFC 7692 §5).

The compressor uses the negotiated window and the memory level :func:`mem_level` pairs with
it; :func:`compressor_bytes` is its size, paid once per event loop and window, not per
connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import hdrs, web
from multidict import CIMultiDict

#: zlib writes raw deflate streams with windows of 9 to 15 bits (8 is refused).
MIN_WINDOW_BITS: Final = 9
#: Window bits a client may name in an offer (RFC 7692 §7.1.2).
_OFFER_BITS: Final = range(8, 16)
_KNOWN: Final = frozenset(
    (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    )
)


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What one connection's handshake agreed on for the server-to-client direction: the
    window; server_no_context_takeover always holds."""

    window_bits: int

    @property
    def header(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value of the response."""
        return (
            f"permessage-deflate; server_max_window_bits={self.window_bits}; "
            "server_no_context_takeover"
        )


def mem_level(window_bits: int) -> int:
    """The zlib memory level used with a window of ``window_bits``: a hash table of half the
    window's entries (zlib's default pairs 15 bits with level 8, a table as big as the window;
    for messages of a few KiB the smaller table costs no measurable ratio)."""
    return max(1, window_bits - 8)


def compressor_bytes(window_bits: int) -> int:
    """Bytes zlib (1.2.12+) allocates for one compressor with ``window_bits``: the window and
    its chain, 2 bytes per window slot each; the hash head and the pending buffer,
    ``2**(level + 8)`` bytes each; and the ~6 KiB state."""
    return (1 << (window_bits + 2)) + (1 << (mem_level(window_bits) + 9)) + 6 * 1024


def _params(offer: str) -> dict[str, str | None] | None:
    """The parameters of one ``permessage-deflate`` offer, or None when it is not one or is
    malformed."""
    name, *items = (part.strip() for part in offer.split(";"))
    if name.lower() != "permessage-deflate":
        return None
    params: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key not in _KNOWN or key in params:
            return None
        params[key] = value.strip().strip('"') if eq else None
    return params


def _window(value: str | None) -> int | None:
    """A window size named in an offer; None when it is not a valid one."""
    if value is None or not value.isdigit() or int(value) not in _OFFER_BITS:
        return None
    return int(value)


def negotiate(offers: str, max_window_bits: int) -> DeflateParams | None:
    """The first acceptable offer of a ``Sec-WebSocket-Extensions`` request value (several
    headers joined with commas), as accepted by a server whose window is at most
    ``max_window_bits``; None when no offer is acceptable."""
    for offer in offers.split(","):
        params = _params(offer)
        accepted = _accept(params, max_window_bits) if params is not None else None
        if accepted is not None:
            return accepted
    return None


def _accept(params: dict[str, str | None], max_window_bits: int) -> DeflateParams | None:
    if params.get("server_no_context_takeover") is not None:
        return None  # takes no value
    if params.get("client_no_context_takeover") is not None:
        return None
    client_bits = params.get("client_max_window_bits")
    if client_bits is not None and _window(client_bits) is None:
        return None  # (without a value it only says the client could use a smaller window)
    bits = max_window_bits
    if "server_max_window_bits" in params:
        asked = _window(params["server_max_window_bits"])
        if asked is None or asked < MIN_WINDOW_BITS:
            return None
        bits = min(bits, asked)
    return DeflateParams(bits)


class DeflateResponse(web.WebSocketResponse):
    """aiohttp's WebSocket response with hubbub's permessage-deflate negotiation
    (:func:`negotiate`); ``deflate`` holds the result once the handshake was made (None:
    no compression).

    aiohttp is told the negotiated window, so its reader inflates and its writer (which
    hubbub uses for control frames only) agrees with the response header."""

    def __init__(
        self,
        *,
        window_bits: int | None,
        autoclose: bool = True,
        autoping: bool = True,
        max_msg_size: int = 4 * 1024 * 1024,
        timeout: float = 10.0,
        protocols: tuple[str, ...] = (),
    ) -> None:
        """``window_bits``: the largest server window to accept an offer with; None offers
        no compression. The other arguments are aiohttp's."""
        super().__init__(
            protocols=protocols,
            autoclose=autoclose,
            autoping=autoping,
            compress=False,  # aiohttp negotiates nothing; _handshake below does
            max_msg_size=max_msg_size,
            timeout=timeout,
        )
        self._window_bits = window_bits
        self.deflate: DeflateParams | None = None

    def _handshake(
        self, request: web.BaseRequest
    ) -> tuple[CIMultiDict[str], str | None, int, bool]:
        headers, protocol, _, _ = super()._handshake(request)
        self.deflate = None
        if self._window_bits is not None:
            offers = ",".join(request.headers.getall(hdrs.SEC_WEBSOCKET_EXTENSIONS, ()))
            self.deflate = negotiate(offers, self._window_bits) if offers else None
        if self.deflate is None:
            return headers, protocol, 0, False
        headers[hdrs.SEC_WEBSOCKET_EXTENSIONS] = self.deflate.header
        return headers, protocol, self.deflate.window_bits, True
