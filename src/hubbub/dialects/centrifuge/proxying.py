"""The HTTP proxy's questions about one client of the channel protocol (:mod:`hubbub.proxy`).

Each function builds the request of one proxy kind from the client, asks the endpoint
(with the headers :func:`forwarded` kept at connect) and returns the backend's answer; it
changes nothing itself: the callers (admission, the subscribe permit, publish, rpc, the
token deadlines) apply it. What they raise: the backend's ``error`` as
:class:`hubbub.errors.ClientError` and its ``disconnect`` as
:class:`hubbub.errors.DisconnectError`, unchanged; a backend that is down, slow (over
``proxy_timeout``), answers other than 200 or with a malformed body:
:class:`hubbub.proxy.caller.ProxyFailed` (error 100, temporary).

Which endpoint: the settings' ``proxy_<kind>_endpoint``; for subscribe, publish and
sub_refresh only where the channel's namespace sets ``proxy_<kind>``, its own
``proxy_<kind>_endpoint`` first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from hubbub.config import ChannelOptions, Settings
from hubbub.core import messages as m
from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError
from hubbub.proxy import bodies
from hubbub.proxy.bodies import Caller

if TYPE_CHECKING:
    from hubbub.dialects.centrifuge.client import Client

log = logging.getLogger(__name__)

NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


def forwarded(client: Client, emulated: Mapping[str, str]) -> Mapping[str, str]:
    """The headers every proxy request about ``client`` carries (see
    :func:`hubbub.proxy.bodies.forwarded_headers`); made at connect, while the handshake's
    headers are still there, and kept with the connection. Empty when no proxy is in use."""
    settings = client.node.settings
    if not client.node.proxy.in_use:
        return NO_HEADERS
    return MappingProxyType(
        bodies.forwarded_headers(
            client.headers,
            emulated,
            settings.proxy_http_headers,
            settings.proxy_emulated_headers,
            client.address,
        )
    )


def endpoint(settings: Settings, options: ChannelOptions, kind: str) -> str | None:
    """The endpoint of ``kind`` (subscribe, publish, sub_refresh) for a channel with
    ``options``; None when its namespace does not ask the proxy."""
    if not getattr(options, f"proxy_{kind}"):
        return None
    own: str | None = getattr(options, f"proxy_{kind}_endpoint")
    return own or getattr(settings, f"proxy_{kind}_endpoint")


def caller(client: Client) -> Caller:
    return Caller(
        client.client_id, client.transport_name, client.wire.name, client.user, client.meta
    )


def for_wire(client: Client, data: m.Data | None, kind: str) -> m.Data | None:
    """The backend's data for the client: bytes that are not JSON reach Protobuf clients
    only; for a JSON client they are error 100, logged."""
    if isinstance(data, bytes) and not client.wire.binary:
        log.error("the %s proxy answered bytes that are not JSON for a JSON client", kind)
        raise ClientError(ErrorCode.INTERNAL)
    return data


async def connect(
    client: Client, request: m.Connect, headers: Mapping[str, str]
) -> bodies.ConnectAnswer | None:
    """Ask the connect proxy who the client of ``request`` is (it has no token)."""
    url = client.node.settings.proxy_connect_endpoint
    assert url is not None
    who = Caller(client.client_id, client.transport_name, client.wire.name)
    body = bodies.connect_request(
        who, request.data, request.name, request.version, list(request.subs)
    )
    answer = await client.node.proxy.ask("connect", url, body, headers, bodies.connect_answer)
    if answer is not None and answer.data is not None:
        for_wire(client, answer.data, "connect")
    return answer


async def refresh(client: Client) -> bodies.RefreshAnswer:
    url = client.node.settings.proxy_refresh_endpoint
    assert url is not None
    body = bodies.refresh_request(caller(client))
    return await client.node.proxy.ask(
        "refresh", url, body, client.forwarded, bodies.refresh_answer
    )


async def subscribe(
    client: Client, url: str, channel: str, request: m.Subscribe
) -> bodies.SubscribeAnswer:
    body = bodies.subscribe_request(caller(client), channel, request.token, request.data)
    answer = await client.node.proxy.ask(
        "subscribe", url, body, client.forwarded, bodies.subscribe_answer
    )
    for_wire(client, answer.data, "subscribe")
    return answer


async def publish(client: Client, url: str, channel: str, data: m.Payload) -> bodies.PublishAnswer:
    body = bodies.publish_request(caller(client), channel, data)
    return await client.node.proxy.ask(
        "publish", url, body, client.forwarded, bodies.publish_answer
    )


async def rpc(client: Client, request: m.RPC) -> m.RPCResult:
    url = client.node.settings.proxy_rpc_endpoint
    assert url is not None
    body = bodies.rpc_request(caller(client), request.method, request.data)
    data = await client.node.proxy.ask("rpc", url, body, client.forwarded, bodies.rpc_answer)
    return m.RPCResult(for_wire(client, data, "rpc"))


async def sub_refresh(client: Client, url: str, channel: str) -> bodies.SubRefreshAnswer:
    body = bodies.sub_refresh_request(caller(client), channel)
    return await client.node.proxy.ask(
        "sub_refresh", url, body, client.forwarded, bodies.sub_refresh_answer
    )
