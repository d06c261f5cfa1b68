"""The client address of an aiohttp request, with ``trusted_proxies`` applied.

:func:`client_of` is :func:`hubbub.server.forwarded.client_address` for a request: the TCP
peer, unless the peer is one of the application's trusted proxies (:data:`TRUSTED_KEY`, set
by :func:`trust`), then what its ``X-Forwarded-For`` / ``X-Real-IP`` say. An application
without the key trusts nobody, and so does a request aiohttp refused before routing it (a
malformed request's 400, still given to the access log): it belongs to no application yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.server.forwarded import (
    Network,
    client_address,
    is_trusted,
    parse_address,
    parse_networks,
)

TRUSTED_KEY: Final = web.AppKey("trusted_proxies", tuple[Network, ...])


def trust(app: web.Application, settings: Settings) -> None:
    """Make ``app`` believe the forwarding headers of ``settings.trusted_proxies``."""
    app[TRUSTED_KEY] = parse_networks(settings.trusted_proxies)


def peer_of(request: web.BaseRequest) -> str:
    """The TCP peer's address (``"-"`` when the connection is gone)."""
    return request.remote or "-"


def trusted_of(request: web.BaseRequest) -> tuple[Network, ...]:
    """The trusted networks of the request's application (none before routing: aiohttp's
    ``config_dict`` asserts a route match, which a request refused with 400 has not)."""
    if not isinstance(request, web.Request) or request._match_info is None:
        return ()
    return request.config_dict.get(TRUSTED_KEY, ())


def client_of(request: web.BaseRequest) -> str:
    """The client's address (see the module docstring)."""
    peer = peer_of(request)
    trusted = trusted_of(request)
    if not trusted:
        return peer
    xff = request.headers.getall("X-Forwarded-For", ())
    return client_address(peer, request.headers, trusted, xff=xff)


def client_named(headers: Mapping[str, str]) -> bool:
    """Whether the headers carry a forwarded client address hubbub reads."""
    return "X-Forwarded-For" in headers or "X-Real-IP" in headers


def via_trusted_proxy(request: web.BaseRequest) -> bool:
    """Whether the request's peer is one of the trusted proxies."""
    return is_trusted(parse_address(peer_of(request)), trusted_of(request))
