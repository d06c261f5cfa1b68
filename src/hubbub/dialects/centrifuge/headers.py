"""Emulated headers: the HTTP headers a client puts in its connect command (centrifuge-js's
``headers`` option, for browsers, whose WebSocket cannot set headers of its own).

They are the client's word only: any client can put any name and value there, and no reverse
proxy in front of hubbub can set, strip or overwrite them. So they are never mixed into the
connection's own headers: an ``on_connect`` hook sees them apart, as
``ConnectContext.emulated_headers`` (Centrifugo, likewise, forwards them to its proxies only
by the separate ``emulated_headers`` list, and prefers the transport's value of a name both
have).

Names are lowercased (header names are case-insensitive; of two names differing in case one
is kept). They are held to the limits of a real request's headers: at most
:data:`MAX_EMULATED_HEADERS` of them and ``max_handshake_header_bytes`` bytes of names and
values (UTF-8); more is error 107 and the connect fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError

#: The most emulated headers one connect may carry (as many as a real request may have).
MAX_EMULATED_HEADERS: Final = 128

_NONE: Final[Mapping[str, str]] = MappingProxyType({})


def emulated_headers(headers: Mapping[str, str], max_bytes: int) -> Mapping[str, str]:
    """``headers`` from a connect command with their names lowercased, read-only; error 107
    when there are more than :data:`MAX_EMULATED_HEADERS` or more than ``max_bytes`` bytes."""
    if not headers:
        return _NONE
    if len(headers) > MAX_EMULATED_HEADERS:
        raise ClientError(
            ErrorCode.BAD_REQUEST, f"bad request: more than {MAX_EMULATED_HEADERS} headers"
        )
    size = sum(len(_utf8(name)) + len(_utf8(value)) for name, value in headers.items())
    if size > max_bytes:
        raise ClientError(ErrorCode.BAD_REQUEST, f"bad request: headers over {max_bytes} bytes")
    return MappingProxyType({name.lower(): value for name, value in headers.items()})


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # (the codecs refuse lone surrogates)
