"""The HTTP proxy's settings: keys of :class:`hubbub.config.Settings`, which inherits them
(flat keys like every other, in every layer: TOML, ``HUBBUB_*``, flags), kept here as one
group. The namespace options (``proxy_subscribe``, ...) are
:class:`hubbub.channeloptions.ChannelOptions` fields.

Guarantees: endpoints are absolute ``http://`` or ``https://`` URLs (``""`` is None); header
names are lowercased (a comma-separated string is a list); a namespace or ``[channel]`` that
asks a proxy (``proxy_subscribe``, ``proxy_publish``, ``proxy_sub_refresh``) without an
endpoint for it, its own or the global one, is refused.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hubbub.channeloptions import ChannelOptions, Namespace, check_proxy_url


class ProxySettings(BaseModel):
    """The HTTP proxy's keys (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    proxy_connect_endpoint: str | None = Field(
        None,
        description=(
            "URL the connect proxy is POSTed to when a client connects without a token: the "
            "backend answers who it is (Centrifugo's connect proxy; see the HTTP proxy recipe)."
        ),
    )
    proxy_refresh_endpoint: str | None = Field(
        None,
        description=(
            "URL asked when a connection's `expire_at` comes: the backend extends it or says "
            "it expired (the server refreshes, not the client)."
        ),
    )
    proxy_subscribe_endpoint: str | None = Field(
        None,
        description="URL asked about subscribes to channels of `proxy_subscribe` namespaces.",
    )
    proxy_publish_endpoint: str | None = Field(
        None,
        description="URL asked about client publishes to channels of `proxy_publish` namespaces.",
    )
    proxy_sub_refresh_endpoint: str | None = Field(
        None,
        description=("URL asked when a subscription of a `proxy_sub_refresh` namespace expires."),
    )
    proxy_rpc_endpoint: str | None = Field(
        None,
        description="URL that answers the RPC methods no `@hub.rpc` handler takes.",
    )
    proxy_timeout: float = Field(
        1.0,
        gt=0,
        le=300,
        description=(
            "Seconds a proxy request may take; a backend slower than that, down, or answering "
            "other than 200 with JSON gives the client error 100 (temporary: SDKs retry)."
        ),
    )
    proxy_http_headers: tuple[str, ...] = Field(
        (),
        description=(
            "Headers of the client's handshake request forwarded to every proxy request "
            "(e.g. ['Cookie', 'Authorization']); names case-insensitive."
        ),
    )
    proxy_emulated_headers: tuple[str, ...] = Field(
        (),
        description=(
            "Headers the client put in its connect command (centrifuge-js `headers`) "
            "forwarded to proxy requests, as Centrifugo's `emulated_headers`; a real "
            "handshake header of the same name in `proxy_http_headers` wins."
        ),
    )
    proxy_max_connections: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Most connections open at once to the proxy backends (one pool per node).",
    )

    @field_validator(
        "proxy_connect_endpoint",
        "proxy_refresh_endpoint",
        "proxy_subscribe_endpoint",
        "proxy_publish_endpoint",
        "proxy_sub_refresh_endpoint",
        "proxy_rpc_endpoint",
    )
    @classmethod
    def _check_proxy_urls(cls, value: str | None) -> str | None:
        return check_proxy_url(value)

    @field_validator("proxy_http_headers", "proxy_emulated_headers", mode="before")
    @classmethod
    def _proxy_header_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(v.lower() for v in value)
        return value

    @model_validator(mode="after")
    def _proxied_namespaces_have_endpoints(self) -> Self:
        """A namespace (or ``[channel]``) asking a proxy has an endpoint for it (its own or
        the global one); ``channel`` and ``namespaces`` are the settings' (this model is
        only ever a base of :class:`hubbub.config.Settings`)."""
        channel: ChannelOptions = getattr(self, "channel", None) or ChannelOptions()
        for ns in (channel, *getattr(self, "namespaces", ())):
            for kind in ("subscribe", "publish", "sub_refresh"):
                asks = getattr(ns, f"proxy_{kind}")
                own = getattr(ns, f"proxy_{kind}_endpoint")
                if asks and own is None and getattr(self, f"proxy_{kind}_endpoint") is None:
                    where = f"namespace {ns.name!r}" if isinstance(ns, Namespace) else "[channel]"
                    raise ValueError(
                        f"{where} sets proxy_{kind} but no proxy_{kind}_endpoint is configured"
                    )
        return self
