"""The client address behind proxies: forwarding headers count only from trusted peers."""

from __future__ import annotations

import pytest

from hubbub.server.forwarded import client_address, parse_address, parse_networks

LOCAL = parse_networks(["127.0.0.1/32", "::1"])
LAN = parse_networks(["10.0.0.0/8", "fd00::/8"])


def test_nobody_trusted_by_default() -> None:
    """Without trusted networks the peer is the client, whatever the headers say."""
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.8"}
    assert client_address("127.0.0.1", headers, ()) == "127.0.0.1"


def test_untrusted_peer_headers_ignored() -> None:
    """A client talking to hubbub directly cannot spoof its address."""
    headers = {"X-Forwarded-For": "203.0.113.9"}
    assert client_address("198.51.100.7", headers, LOCAL) == "198.51.100.7"


def test_trusted_peer_forwarded_for() -> None:
    """From a trusted proxy the last X-Forwarded-For hop is the client."""
    assert client_address("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, LOCAL) == "203.0.113.9"


def test_walk_from_the_right_skipping_trusted_hops() -> None:
    """Spoofed hops a client put on the left are not reached: the first untrusted from the
    right is the client."""
    headers = {"X-Forwarded-For": "1.1.1.1, 203.0.113.9, 10.1.2.3"}
    assert client_address("10.0.0.5", headers, LAN) == "203.0.113.9"


def test_every_line_of_the_header() -> None:
    """Several X-Forwarded-For lines are one list, in order."""
    lines = ["1.1.1.1", "203.0.113.9, 10.0.0.2"]
    assert client_address("10.0.0.5", {}, LAN, xff=lines) == "203.0.113.9"


def test_all_trusted_gives_the_leftmost() -> None:
    assert client_address("10.0.0.5", {"X-Forwarded-For": "10.0.0.9, 10.0.0.8"}, LAN) == "10.0.0.9"


def test_real_ip_without_forwarded_for() -> None:
    assert client_address("::1", {"X-Real-IP": "2001:db8::7"}, LOCAL) == "2001:db8::7"


def test_garbage_ends_the_walk() -> None:
    """A hop that is not an address stops at the address to its right."""
    headers = {"X-Forwarded-For": "evil, 10.0.0.9"}
    assert client_address("10.0.0.5", headers, LAN) == "10.0.0.9"
    assert client_address("10.0.0.5", {"X-Forwarded-For": "unknown"}, LAN) == "10.0.0.5"
    assert client_address("10.0.0.5", {"X-Real-IP": "x"}, LAN) == "10.0.0.5"


def test_ipv6_and_ports() -> None:
    """IPv6 peers and networks; ports and brackets are dropped; v4-mapped peers match v4."""
    headers = {"X-Forwarded-For": "[2001:db8::1]:443"}
    assert client_address("fd00::3", headers, LAN) == "2001:db8::1"
    mapped = client_address("::ffff:10.0.0.5", {"X-Forwarded-For": "192.0.2.1:80"}, LAN)
    assert mapped == "192.0.2.1"
    assert parse_address("[::1") is None


def test_bad_network_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks(["10.0.0.0/33"])
    assert [str(n) for n in parse_networks(["10.1.2.3/8", "::1"])] == ["10.0.0.0/8", "::1/128"]


def test_zones_and_trailing_text_are_not_addresses() -> None:
    """An IPv6 zone (``%...``: any text but ``%``, spaces and quotes included), a port that is
    not a number or text after ``]`` make a hop garbage: nothing of it reaches the address."""
    for hop in ["fe80::1%eth0", '::1%x" 200 0 B', "[fe80::1%1]:80", "1.2.3.4:abc", "[::1]x"]:
        assert parse_address(hop) is None, hop
        headers = {"X-Forwarded-For": f"{hop}, 10.0.0.9"}
        assert client_address("10.0.0.5", headers, LAN) == "10.0.0.9"
        assert client_address("10.0.0.5", {"X-Real-IP": hop}, LAN) == "10.0.0.5"
    assert str(parse_address("[2001:db8::1]")) == "2001:db8::1"
    assert str(parse_address("192.0.2.1:8080")) == "192.0.2.1"
