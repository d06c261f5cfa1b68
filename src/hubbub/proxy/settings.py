"""The HTTP proxy's settings (``proxy_*``): their types, bounds and descriptions.

:class:`hubbub.config.Settings` declares each key with one of these types and its default (as
it does the outbox consumer's, :mod:`hubbub.outboxsettings`), so that the keys live in the one
settings model and the generated configuration reference, while their meaning is written here,
beside the proxy's other parts. The namespace options (``proxy_subscribe``, ...) are
:class:`hubbub.channeloptions.ChannelOptions` fields.

Guarantees: endpoints are absolute ``http://`` or ``https://`` URLs (``""`` is None); header
names are lowercased (a comma-separated string is a list); a namespace or ``[channel]`` that
asks a proxy (``proxy_subscribe``, ``proxy_publish``, ``proxy_sub_refresh``) without an
endpoint for it, its own or the global one, is refused (:func:`check_proxied_namespaces`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from hubbub.channeloptions import Namespace, check_proxy_url


def _header_names(value: Any) -> Any:
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.lower() for v in value)
    return value


ProxyConnectEndpoint = Annotated[
    str | None,
    AfterValidator(check_proxy_url),
    Field(
        description=(
            "URL the connect proxy is POSTed to when a client connects without a token: the "
            "backend answers who it is (Centrifugo's connect proxy; see the HTTP proxy recipe)."
        )
    ),
]
ProxyRefreshEndpoint = Annotated[
    str | None,
    AfterValidator(check_proxy_url),
    Field(
        description=(
            "URL asked when a connection's `expire_at` comes: the backend extends it or says "
            "it expired (the server refreshes, not the client)."
        )
    ),
]
ProxySubscribeEndpoint = Annotated[
    str | None,
    AfterValidator(check_proxy_url),
    Field(description="URL asked about subscribes to channels of `proxy_subscribe` namespaces."),
]
ProxyPublishEndpoint = Annotated[
    str | None,
    AfterValidator(check_proxy_url),
    Field(
        description="URL asked about client publishes to channels of `proxy_publish` namespaces."
    ),
]
ProxySubRefreshEndpoint = Annotated[
    str | None,
    AfterValidator(check_proxy_url),
    Field(description="URL asked when a subscription of a `proxy_sub_refresh` namespace expires."),
]
ProxyRpcEndpoint = Annotated[
    str | None,
    AfterValidator(check_proxy_url),
    Field(description="URL that answers the RPC methods no `@hub.rpc` handler takes."),
]
ProxyTimeout = Annotated[
    float,
    Field(
        gt=0,
        le=300,
        description=(
            "Seconds a proxy request may take; a backend slower than that, down, or answering "
            "other than 200 with JSON gives the client error 100 (temporary: SDKs retry)."
        ),
    ),
]
ProxyHttpHeaders = Annotated[
    tuple[str, ...],
    BeforeValidator(_header_names),
    Field(
        description=(
            "Headers of the client's handshake request forwarded to every proxy request "
            "(e.g. ['Cookie', 'Authorization']); names case-insensitive."
        )
    ),
]
ProxyEmulatedHeaders = Annotated[
    tuple[str, ...],
    BeforeValidator(_header_names),
    Field(
        description=(
            "Headers the client put in its connect command (centrifuge-js `headers`) "
            "forwarded to proxy requests, as Centrifugo's `emulated_headers`; a real "
            "handshake header of the same name in `proxy_http_headers` wins."
        )
    ),
]
ProxyMaxConnections = Annotated[
    int,
    Field(
        ge=1,
        le=10_000,
        description="Most connections open at once to the proxy backends (one pool per node).",
    ),
]


def check_proxied_namespaces(settings: Any) -> Any:
    """The settings' model validator: every namespace (and ``[channel]``) asking a proxy has
    an endpoint for it, its own or the global one; returns ``settings``."""
    for ns in (settings.channel, *settings.namespaces):
        for kind in ("subscribe", "publish", "sub_refresh"):
            asks = getattr(ns, f"proxy_{kind}")
            own = getattr(ns, f"proxy_{kind}_endpoint")
            if asks and own is None and getattr(settings, f"proxy_{kind}_endpoint") is None:
                where = f"namespace {ns.name!r}" if isinstance(ns, Namespace) else "[channel]"
                raise ValueError(
                    f"{where} sets proxy_{kind} but no proxy_{kind}_endpoint is configured"
                )
    return settings
