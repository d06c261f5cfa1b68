"""WebSocket close codes (RFC 6455 §7.4) and how hubbub answers a peer's close frame.

The codes hubbub itself sends are named here; :func:`close_reply` decides the code of the
close frame that answers a peer's close, including the case a plain aiohttp server gets wrong:
a close frame carrying a code that must never be sent on the wire (1004-1006, 1015, below 1000,
1016-2999, 5000 and up) is a protocol error and is answered with 1002.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class CloseCode(IntEnum):
    """Close codes hubbub sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


#: The peer's close frame had no payload: aiohttp reports that as code 0.
NO_STATUS: Final = 0


def is_valid_wire_code(code: int) -> bool:
    """True for codes a peer may put in a close frame (RFC 6455 §7.4.1 and the IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_reply(peer_code: int) -> CloseCode | int:
    """The code to answer a peer's close frame with.

    A close without status is answered with 1000; a valid code is echoed (RFC 6455 §5.5.1
    suggests it, and browsers then report the code their own side sent); an invalid code gets
    1002 (protocol error).
    """
    if peer_code == NO_STATUS:
        return CloseCode.NORMAL
    if is_valid_wire_code(peer_code):
        return peer_code
    return CloseCode.PROTOCOL_ERROR
