"""Webhooks: signed, at-least-once HTTP notifications of what happens on the nodes.

This module is public: :func:`verify` checks a webhook request in a Python backend::

    from hubbub.webhooks import verify

    if not verify(body, request.headers.get("X-Hubbub-Signature"), secret):
        return 401

A webhook POST carries a JSON array of events; its ``X-Hubbub-Signature`` header is
``sha256=`` and the hex HMAC-SHA256 of the raw body keyed with ``webhook_secret``
(docs/recipes/webhooks.md). The rest of the package is hubbub's own:
:mod:`hubbub.webhooks.events` (the events' JSON), :mod:`hubbub.webhooks.emitter` (what the
node and the dialects call, writing to the outbox), :mod:`hubbub.webhooks.delivery` (the
deliverer: claims, POSTs, retries), :mod:`hubbub.webhooks.pusher` (the Pusher apps' webhooks,
targets of their own: Pusher's body, ``X-Pusher-Signature``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

#: The request header carrying the signature.
SIGNATURE_HEADER: Final = "X-Hubbub-Signature"
_PREFIX: Final = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hubbub-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` (the request's ``X-Hubbub-Signature``, None when missing) signs the
    raw request ``body`` with ``secret``; compared in constant time. Pass the body's bytes as
    received, before any JSON parsing."""
    if not header or not secret:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode())
