"""The client's address behind reverse proxies: which forwarding headers to believe.

Pure: no I/O, no aiohttp. Guarantees of :func:`client_address`:

- With no trusted networks (the default) the answer is always the TCP peer: headers a client
  sends itself (``X-Forwarded-For: 1.2.3.4``) never change it.
- The headers are read only when the peer is inside a trusted network. Then the
  ``X-Forwarded-For`` list (all its header lines, in order, comma-separated) is walked from
  the right, skipping addresses that are themselves trusted; the first untrusted address is
  the client. When every hop is trusted, the leftmost one is. Without ``X-Forwarded-For``,
  ``X-Real-IP`` is taken (nginx's ``$remote_addr``).
- A value that is not an IP address (``unknown``, an obfuscated ``_hidden``, garbage) ends the
  walk: the address to its right stays the answer, so a client cannot inject a name. So does
  an IPv6 address with a zone (``%eth0``) or a port that is not a number.
  ``Forwarded`` (RFC 7239) is not read.
- Addresses come back normalized (``::ffff:10.0.0.1`` stays as written by ``ipaddress``;
  ports and brackets are removed: ``[2001:db8::1]:443`` -> ``2001:db8::1``).

:func:`parse_networks` turns the ``trusted_proxies`` setting into networks
(``"10.0.0.0/8"``, ``"::1"``; a bare address is a /32 or /128).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeAlias

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Most addresses of an X-Forwarded-For list looked at (a long chain is cut, from the left).
MAX_HOPS: Final = 32


def parse_network(text: str) -> Network:
    """A CIDR (or a bare address) as a network; host bits are allowed (``10.1.2.3/8`` is
    ``10.0.0.0/8``). ``ValueError`` with a readable message otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP network (write e.g. 10.0.0.0/8 or ::1)") from None


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    return tuple(parse_network(text) for text in texts)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_address(text: str) -> Address | None:
    """An address from a header value: bare, ``[v6]``, ``[v6]:port`` or ``v4:port``; None for
    anything else, an IPv6 zone (``fe80::1%eth0``: free text after ``%``) included."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text, _, port = text.partition(":")
        if not _is_port(port):
            return None
    if "%" in text:  # ipaddress takes any zone text: spaces, quotes, a forged log line
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in trusted)


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The hops of every ``X-Forwarded-For`` header line, in order (at most the last
    :data:`MAX_HOPS`)."""
    hops = [hop.strip() for value in values for hop in value.split(",")]
    return [hop for hop in hops if hop][-MAX_HOPS:]


def client_address(
    peer: str, headers: Mapping[str, str], trusted: Sequence[Network], *, xff: Iterable[str] = ()
) -> str:
    """The client's address for a request from ``peer`` with ``headers`` (see the module
    docstring). ``xff``: every ``X-Forwarded-For`` line when the mapping keeps only one (a
    multidict's ``getall``); else ``headers["X-Forwarded-For"]`` is read."""
    if not trusted or not is_trusted(parse_address(peer), trusted):
        return peer
    lines = list(xff)
    if not lines:
        value = headers.get("X-Forwarded-For")
        lines = [value] if value else []
    hops = forwarded_for(lines)
    if not hops:
        real = parse_address(headers.get("X-Real-IP", ""))
        return str(real) if real is not None else peer
    client = peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        client = str(address)
        if not is_trusted(address, trusted):
            break
    return client
