"""The server's TLS context, from the ``tls_cert`` and ``tls_key`` settings.

:func:`server_context` gives ``None`` without them, else an ``ssl.SSLContext`` for a server:
TLS 1.2 or later, the ``ssl`` module's secure default ciphers, no compression, no
renegotiation, ALPN ``http/1.1`` (hubbub speaks HTTP/1.1 only: WebSockets, SSE, streams).
A file that cannot be read, a certificate or key that does not parse, or a key that does not
belong to the certificate is a :class:`hubbub.errors.ConfigError` naming the file, raised
before anything listens.

The TLS handshake of a connection is bounded by ``handshake_timeout`` (the acceptor hands the
context and the timeout to the event loop, :mod:`hubbub.server.listener`); the HTTP request's
own deadline starts once it is complete.
"""

from __future__ import annotations

import ssl

from hubbub.config import Settings
from hubbub.errors import ConfigError


def server_context(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None or key is None:
        return None
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ConfigError([f"{name}: cannot read {path}: {exc.strerror or exc}"]) from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:  # an encrypted key gets an empty password (and fails) instead of a prompt
        context.load_cert_chain(cert, key, password=_no_password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            [
                f"tls_cert/tls_key: {cert} and {key} are not a PEM certificate and its "
                f"unencrypted private key ({getattr(exc, 'reason', None) or exc})"
            ]
        ) from None
    return context


def _no_password() -> bytes:
    return b""
