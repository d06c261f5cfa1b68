"""The settings of the production edge: TLS, the reverse proxies to believe, the access log.

:class:`EdgeSettings` is a base of :class:`hubbub.config.Settings` (its keys are ordinary
settings: ``tls_cert`` in TOML is ``HUBBUB_TLS_CERT`` and ``--tls-cert``). Guarantees, checked
when the settings are built (a :class:`hubbub.errors.ConfigError` names the key otherwise):

- ``tls_cert`` and ``tls_key`` come together or not at all. Whether the files can be read and
  hold a certificate and its key is checked when the server starts
  (:func:`hubbub.server.tls.server_context`), also a ``ConfigError``.
- ``trusted_proxies`` holds IP networks (IPv4 or IPv6, a bare address is a /32 or /128),
  written normalized; a comma-separated string (the environment) is split. Empty: nobody is
  trusted, forwarding headers are ignored (:mod:`hubbub.server.forwarded`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hubbub.server.forwarded import parse_network


class EdgeSettings(BaseModel):
    """TLS, trusted proxies and the access log (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    tls_cert: Path | None = Field(
        None,
        description=(
            "PEM file with the server's certificate (and its chain): hubbub serves https:// "
            "and wss:// (TLS 1.2 or later), on the API port too. Needs tls_key."
        ),
    )
    tls_key: Path | None = Field(
        None, description="PEM file with the private key of tls_cert (unencrypted)."
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description=(
            "Networks of the reverse proxies in front of hubbub (e.g. ['127.0.0.1/32']): only "
            "from a peer inside one are X-Forwarded-For and X-Real-IP believed for the client "
            "address (hooks, logs, the admin's local check). Empty: nobody, the TCP peer is "
            "the client."
        ),
    )
    access_log: bool = Field(
        False,
        description=(
            "Log one line per HTTP request and per WebSocket or stream session when it ends "
            "(logger hubbub.access: client address, method, path without secrets, status, "
            "bytes, duration)."
        ),
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(parse_network(text)) for text in value)

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> EdgeSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key")[:: 1 if self.tls_key is None else -1]
            raise ValueError(f"{given} is set but {missing} is not: give both or neither")
        return self
